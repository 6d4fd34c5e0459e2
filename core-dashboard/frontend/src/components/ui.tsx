import type { ReactNode } from 'react'
import { statusTone, type Tone } from '../lib/panels'

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

/** A table's header row: one column heading per label, numbers' headings on the right. */
export function TableHead({ columns }: { columns: { label: string; right?: boolean }[] }) {
  return (
    <thead className={tableHeadClass}>
      <tr>
        {columns.map((column) => (
          <th key={column.label} scope="col" className={column.right ? 'px-3 py-2 text-right' : 'px-3 py-2'}>
            {column.label}
          </th>
        ))}
      </tr>
    </thead>
  )
}

const toneClass: Record<Tone, string> = {
  good: 'bg-emerald-100 text-emerald-900 dark:bg-emerald-950 dark:text-emerald-200',
  bad: 'bg-red-100 text-red-900 dark:bg-red-950 dark:text-red-200',
  busy: 'bg-blue-100 text-blue-900 dark:bg-blue-950 dark:text-blue-200',
  waiting: 'bg-amber-100 text-amber-900 dark:bg-amber-950 dark:text-amber-200',
  neutral: 'bg-slate-100 text-slate-700 dark:bg-slate-800 dark:text-slate-300',
}

/** A queue picker: "All queues" (the empty value) or one of `queues`. */
export function QueuePicker({
  queues,
  value,
  onChange,
  testId,
}: {
  queues: string[]
  value: string
  onChange: (queue: string) => void
  testId: string
}) {
  return (
    <label className="flex items-center gap-2 text-sm">
      <span className="text-slate-600 dark:text-slate-400">Queue</span>
      <select
        value={value}
        onChange={(e) => onChange(e.target.value)}
        className="rounded-md border border-slate-300 bg-white px-2 py-1 text-sm dark:border-slate-700 dark:bg-slate-900"
        data-testid={testId}
      >
        <option value="">All queues</option>
        {queues.map((q) => (
          <option key={q} value={q}>
            {q}
          </option>
        ))}
      </select>
    </label>
  )
}

/** A status badge coloured by its value (see `statusTone`). */
export function StatusBadge({ value, title }: { value: string; title?: string }) {
  return (
    <span data-status={value} title={title} className={`inline-block rounded px-1.5 py-0.5 text-xs font-medium ${toneClass[statusTone(value)]}`}>
      {value}
    </span>
  )
}
