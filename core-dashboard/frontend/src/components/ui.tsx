import type { ReactNode } from 'react'

/** The box around a table: scrolls sideways inside itself at narrow widths. */
export const tableBoxClass =
  'relative overflow-x-auto rounded-lg border border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900'

/** A table's header row group. */
export const tableHeadClass =
  'bg-slate-100 text-left text-xs uppercase tracking-wide text-slate-600 dark:bg-slate-800 dark:text-slate-300'

/** A problem to show above a section's content, announced to screen readers. */
export function Alert({ children }: { children: ReactNode }) {
  return (
    <p role="alert" className="rounded-md bg-red-50 px-3 py-2 text-sm text-red-800 dark:bg-red-950 dark:text-red-200">
      {children}
    </p>
  )
}
