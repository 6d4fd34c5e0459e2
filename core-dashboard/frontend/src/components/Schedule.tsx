import { useEffect, useState } from 'react'
import { api, type ScheduleEntry } from '../lib/api'
import { Alert, TableHead, tableBoxClass } from './ui'

/** How often the next runs are read again (they move on as ticks pass). */
const REFRESH_MS = 30_000

/** The application's scheduled jobs with their cron expressions and next runs. */
export function Schedule() {
  const [entries, setEntries] = useState<ScheduleEntry[] | null>(null)
  const [problem, setProblem] = useState<string | null>(null)

  useEffect(() => {
    let stopped = false
    const load = () =>
      api<ScheduleEntry[]>('api/schedule').then(
        (reply) => {
          if (stopped) return
          setEntries(reply.data)
          setProblem(null)
        },
        (error: unknown) => {
          if (!stopped) setProblem(error instanceof Error ? error.message : String(error))
        },
      )
    void load()
    const timer = window.setInterval(() => void load(), REFRESH_MS)
    return () => {
      stopped = true
      window.clearInterval(timer)
    }
  }, [])

  if (entries !== null && entries.length === 0 && problem === null) return null
  return (
    <section aria-labelledby="schedule-title" className="space-y-3">
      <h2 id="schedule-title" className="text-lg font-semibold">
        Schedule
      </h2>
      {problem && (
        <Alert>{problem}</Alert>
      )}
      <div className={tableBoxClass}>
        <table className="w-full text-sm" aria-label="Scheduled jobs">
          <TableHead columns={[{ label: 'Job' }, { label: 'Cron' }, { label: 'Next run' }]} />
          <tbody>
            {(entries ?? []).map((entry) => (
              <tr key={entry.name} className="border-t border-slate-200 dark:border-slate-800" data-schedule={entry.name}>
                <th scope="row" className="px-3 py-2 text-left font-mono font-medium">
                  {entry.name}
                  {entry.without_overlapping && (
                    <span className="ml-2 rounded bg-slate-100 px-1.5 py-0.5 font-sans text-xs font-normal text-slate-600 dark:bg-slate-800 dark:text-slate-300">
                      no overlap
                    </span>
                  )}
                </th>
                <td className="px-3 py-2 font-mono whitespace-nowrap">{entry.cron}</td>
                <td className="px-3 py-2 whitespace-nowrap" data-next-run>
                  {entry.next_run ? new Date(entry.next_run).toLocaleString() : 'never'}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  )
}
