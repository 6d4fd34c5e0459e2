import { hrefFor } from '../lib/router'
import type { Page } from '../registry'

/** Links to the previous and next pages in registry order. */
export function PrevNext({ prev, next }: { prev?: Page; next?: Page }) {
  return (
    <nav aria-label="Previous and next pages" className="mt-16 grid gap-4 border-t border-slate-200 pt-8 dark:border-slate-800 sm:grid-cols-2">
      {prev ? (
        <a href={hrefFor(prev.slug)} rel="prev" className="group rounded-lg border border-slate-200 p-4 transition hover:border-orange-300 dark:border-slate-700 dark:hover:border-orange-400/60">
          <span className="text-xs text-slate-500 dark:text-slate-400">Previous</span>
          <span className="mt-1 block font-medium text-slate-900 group-hover:text-orange-700 dark:text-slate-100 dark:group-hover:text-orange-300">← {prev.title}</span>
        </a>
      ) : (
        <span />
      )}
      {next && (
        <a href={hrefFor(next.slug)} rel="next" className="group rounded-lg border border-slate-200 p-4 text-right transition hover:border-orange-300 dark:border-slate-700 dark:hover:border-orange-400/60">
          <span className="text-xs text-slate-500 dark:text-slate-400">Next</span>
          <span className="mt-1 block font-medium text-slate-900 group-hover:text-orange-700 dark:text-slate-100 dark:group-hover:text-orange-300">{next.title} →</span>
        </a>
      )}
    </nav>
  )
}
