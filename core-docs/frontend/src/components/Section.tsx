import { createContext, useContext, type ReactNode } from 'react'
import { hrefFor } from '../lib/router'

/** The slug of the page being rendered, so headings can link to themselves. */
export const PageSlug = createContext('')

/**
 * The `Section` component of a page whose headings are `headings` (id → title): each section is
 * an `<h2>` with its id and title taken from the page's definition, which the registry also
 * reads, so the search index, the "On this page" list and the page cannot disagree.
 */
export function sectionsOf<H extends Record<string, string>>(headings: H) {
  return function Section({ id, children }: { id: keyof H & string; children: ReactNode }) {
    const slug = useContext(PageSlug)
    return (
      <section aria-labelledby={id}>
        <h2 id={id} className="group">
          {headings[id]}
          <a
            href={hrefFor(slug, id)}
            className="ml-2 font-normal text-slate-300 no-underline opacity-0 transition group-hover:opacity-100 focus:opacity-100 dark:text-slate-600"
            aria-label={`Link to ${headings[id]}`}
          >
            #
          </a>
        </h2>
        {children}
      </section>
    )
  }
}

/** A highlighted aside: a tip, a warning, a note about behaviour. */
export function Callout({ kind = 'note', children }: { kind?: 'note' | 'warning' | 'tip'; children: ReactNode }) {
  const styles = {
    note: 'border-sky-300 bg-sky-50 text-sky-950 dark:border-sky-500/60 dark:bg-sky-500/10 dark:text-sky-100',
    tip: 'border-emerald-300 bg-emerald-50 text-emerald-950 dark:border-emerald-500/60 dark:bg-emerald-500/10 dark:text-emerald-100',
    warning: 'border-amber-300 bg-amber-50 text-amber-950 dark:border-amber-500/60 dark:bg-amber-500/10 dark:text-amber-100',
  }[kind]
  const label = { note: 'Note', tip: 'Tip', warning: 'Careful' }[kind]
  return (
    <aside className={`not-prose my-6 rounded-lg border-l-4 px-4 py-3 text-[15px] leading-relaxed ${styles}`}>
      <strong className="mr-1">{label}:</strong>
      {children}
    </aside>
  )
}
