import { hrefFor } from '../lib/router'
import type { Section } from '../registry'

/** Shown for a hash that names no page. */
export function NotFound({ slug, sections }: { slug: string; sections: Section[] }) {
  return (
    <div className="py-8">
      <p className="text-sm font-semibold text-orange-600 dark:text-orange-400">404</p>
      <h1 className="mt-2 text-3xl font-bold tracking-tight text-slate-900 dark:text-slate-50">Page not found</h1>
      <p className="mt-4 text-slate-600 dark:text-slate-400">
        There is no page called <code className="rounded bg-slate-100 px-1.5 py-0.5 text-sm break-all dark:bg-slate-800 dark:text-slate-200">{slug}</code>. It may have
        moved; these are the pages there are:
      </p>
      <ul className="mt-6 grid gap-3 sm:grid-cols-2">
        {sections.map((section) => (
          <li key={section.title} className="rounded-lg border border-slate-200 p-4 dark:border-slate-700">
            <p className="text-xs font-semibold uppercase tracking-wider text-slate-500 dark:text-slate-400">{section.title}</p>
            <ul className="mt-2 space-y-1">
              {section.pages.map((page) => (
                <li key={page.slug}>
                  <a className="text-orange-700 hover:underline dark:text-orange-300" href={hrefFor(page.slug)}>
                    {page.title}
                  </a>
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ul>
    </div>
  )
}
