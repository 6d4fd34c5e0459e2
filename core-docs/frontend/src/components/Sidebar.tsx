import { hrefFor } from '../lib/router'
import type { Section } from '../registry'

interface SidebarProps {
  sections: Section[]
  /** The slug of the page shown, highlighted. */
  current?: string
  onNavigate?: () => void
}

/** The navigation: every section of the registry with its pages, in order. */
export function Sidebar({ sections, current, onNavigate }: SidebarProps) {
  return (
    <nav aria-label="Documentation" className="space-y-8 text-[15px]">
      {sections.map((section) => (
        <div key={section.title}>
          <p className="mb-2 px-3 text-xs font-semibold uppercase tracking-wider text-slate-500 dark:text-slate-400">
            {section.title}
          </p>
          <ul className="space-y-0.5">
            {section.pages.map((page) => {
              const active = page.slug === current
              return (
                <li key={page.slug}>
                  <a
                    href={hrefFor(page.slug)}
                    onClick={onNavigate}
                    aria-current={active ? 'page' : undefined}
                    className={
                      'block rounded-md px-3 py-1.5 transition ' +
                      (active
                        ? 'bg-orange-50 font-medium text-orange-700 dark:bg-orange-500/10 dark:text-orange-300'
                        : 'text-slate-600 hover:bg-slate-100 hover:text-slate-900 dark:text-slate-400 dark:hover:bg-slate-800 dark:hover:text-slate-100')
                    }
                  >
                    {page.title}
                  </a>
                </li>
              )
            })}
          </ul>
        </div>
      ))}
    </nav>
  )
}
