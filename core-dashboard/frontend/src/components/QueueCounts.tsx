import type { Counts, QueuesReply } from '../lib/api'
import type { LiveMode } from '../lib/live'
import { Alert, tableBoxClass, tableHeadClass } from './ui'

const COLUMNS: [keyof Counts, string][] = [
  ['ready', 'Ready'],
  ['delayed', 'Delayed'],
  ['running', 'Running'],
  ['failed', 'Failed'],
]

const MODE_LABEL: Record<LiveMode, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  polling: 'Polling',
}

/** The totals as tiles and every queue's counts as a table, updated live. */
export function QueueCounts({ counts, mode, problem }: { counts: QueuesReply | null; mode: LiveMode; problem: string | null }) {
  return (
    <section aria-labelledby="queues-title" className="space-y-3">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 id="queues-title" className="text-lg font-semibold">
          Queues
        </h2>
        <span className="inline-flex items-center gap-1.5 text-xs text-slate-600 dark:text-slate-400" data-testid="live-mode">
          <span
            aria-hidden="true"
            className={`h-2 w-2 rounded-full ${mode === 'live' ? 'bg-emerald-500' : mode === 'polling' ? 'bg-amber-500' : 'bg-slate-400'}`}
          />
          {MODE_LABEL[mode]}
        </span>
      </div>
      {problem && (
        <Alert>{problem}</Alert>
      )}
      <dl className="grid grid-cols-2 gap-2 sm:grid-cols-4" aria-label="Totals">
        {COLUMNS.map(([key, label]) => (
          <div key={key} className="rounded-lg border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900">
            <dt className="text-xs font-medium uppercase tracking-wide text-slate-600 dark:text-slate-400">{label}</dt>
            <dd className="mt-1 text-2xl font-semibold tabular-nums" data-testid={`total-${key}`}>
              {counts ? counts.totals[key] : '–'}
            </dd>
          </div>
        ))}
      </dl>
      <div className={tableBoxClass}>
        <table className="w-full text-sm" aria-label="Counts per queue">
          <thead className={tableHeadClass}>
            <tr>
              <th scope="col" className="px-3 py-2">
                Queue
              </th>
              {COLUMNS.map(([key, label]) => (
                <th key={key} scope="col" className="px-3 py-2 text-right">
                  {label}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {(counts?.queues ?? []).map((q) => (
              <tr key={q.queue} className="border-t border-slate-200 dark:border-slate-800" data-queue={q.queue}>
                <th scope="row" className="px-3 py-2 text-left font-mono font-medium">
                  {q.queue}
                </th>
                {COLUMNS.map(([key]) => (
                  <td key={key} className="px-3 py-2 text-right tabular-nums" data-count={key}>
                    {q[key]}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {counts && counts.failed_all_queues !== counts.totals.failed && (
        <p className="text-xs text-slate-600 dark:text-slate-400">
          {counts.failed_all_queues} failed jobs in all queues, including queues not shown here.
        </p>
      )}
    </section>
  )
}
