import { useEffect, useState, type ReactNode } from 'react'
import { subscribeJobs } from '../lib/live'
import { formatDuration } from '../lib/format'
import { forQueue, leaseLapsed, relative, shortId, type JobsReply } from '../lib/jobs'
import { QueuePicker, StatusBadge, TableHead, tableBoxClass } from './ui'

/** How many rows each table shows at most. */
const MAX_ROWS = 50

const cell = 'px-3 py-2 whitespace-nowrap'
const row = 'border-t border-slate-200 dark:border-slate-800'
const muted = 'text-slate-600 dark:text-slate-400'

/** The jobs running now (every process) and the last ones this process's workers finished, per
 * shown queue, updated live from the `jobs` events. */
export function RecentJobs() {
  const [jobs, setJobs] = useState<JobsReply | null>(null)
  const [queue, setQueue] = useState('')
  // The relative times move on between events too.
  const [now, setNow] = useState(() => Date.now())

  useEffect(() => subscribeJobs(setJobs), [])
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), 1000)
    return () => window.clearInterval(timer)
  }, [])

  const picked = jobs !== null && jobs.queues.includes(queue) ? queue : null
  const running = forQueue(jobs?.running ?? [], picked, MAX_ROWS)
  const recent = forQueue(jobs?.recent ?? [], picked, MAX_ROWS)

  return (
    <section aria-labelledby="jobs-title" data-slot="jobs" className="space-y-3">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 id="jobs-title" className="text-lg font-semibold">
          Running and recent jobs
        </h2>
        <QueuePicker queues={jobs?.queues ?? []} value={picked ?? ''} onChange={setQueue} testId="jobs-queue" />
      </div>
      {jobs === null ? (
        <p className={`text-sm ${muted}`}>Loading the jobs…</p>
      ) : (
        <div className="grid gap-4 lg:grid-cols-2">
          <JobTable
            title="Running"
            count={running.length}
            columns={[{ label: 'Id' }, { label: 'Job' }, { label: 'Queue' }, { label: 'Attempt', right: true }, { label: 'Dispatched' }, { label: 'Lease' }]}
            empty="No job is running."
          >
            {running.map((job) => (
              <tr key={`${job.queue}/${job.id}`} className={row} data-running-id={job.id}>
                <IdAndName id={job.id} name={job.name} queue={job.queue} />
                <td className={`${cell} text-right tabular-nums`}>{job.attempt}</td>
                <td className={cell} title={job.dispatched_at ?? undefined}>
                  {relative(job.dispatched_at, now)}
                </td>
                <td
                  className={`${cell} ${leaseLapsed(job, now) ? 'text-amber-700 dark:text-amber-300' : ''}`}
                  title={`Lease until ${job.lease_expires_at}`}
                >
                  {leaseLapsed(job, now) ? `lapsed ${relative(job.lease_expires_at, now)}` : `ends ${relative(job.lease_expires_at, now)}`}
                </td>
              </tr>
            ))}
          </JobTable>
          <JobTable
            title="Recent"
            count={recent.length}
            columns={[{ label: 'Id' }, { label: 'Job' }, { label: 'Queue' }, { label: 'Outcome' }, { label: 'Took', right: true }, { label: 'Finished' }]}
            empty="No job finished in this process yet."
          >
            {recent.map((job, i) => (
              <tr key={`${job.finished_at}/${job.id}/${job.attempt}/${i}`} className={row} data-recent-id={job.id}>
                <IdAndName id={job.id} name={job.name} queue={job.queue} />
                <td className={cell}>
                  <span data-outcome={job.outcome}>
                    <StatusBadge value={job.outcome} title={`Attempt ${job.attempt}`} />
                  </span>
                </td>
                <td className={`${cell} text-right tabular-nums`}>{formatDuration(job.duration_ms)}</td>
                <td className={cell} title={job.finished_at}>
                  {relative(job.finished_at, now)}
                </td>
              </tr>
            ))}
          </JobTable>
        </div>
      )}
      <p className={`text-xs ${muted}`}>
        Running jobs are read from the queue, whichever process runs them. Recent jobs are those the workers in this server process
        finished; workers in other processes are not listed.
      </p>
    </section>
  )
}

/** One of the two tables: its heading with the row count, a scrolling box, and a row saying
 * `empty` when there are no rows. */
function JobTable({
  title,
  count,
  columns,
  empty,
  children,
}: {
  title: string
  count: number
  columns: { label: string; right?: boolean }[]
  empty: string
  children: ReactNode
}) {
  return (
    <div className="min-w-0 space-y-2">
      <h3 className="text-sm font-semibold">
        {title} <span className={`font-normal ${muted}`}>({count})</span>
      </h3>
      <div className={`${tableBoxClass} max-h-[28rem] overflow-y-auto`}>
        <table className="w-full text-sm" aria-label={`${title} jobs`}>
          <TableHead columns={columns} />
          <tbody>
            {count === 0 && (
              <tr className={row}>
                <td colSpan={columns.length} className={`px-3 py-2 ${muted}`}>
                  {empty}
                </td>
              </tr>
            )}
            {children}
          </tbody>
        </table>
      </div>
    </div>
  )
}

/** The cells both tables start with: the short id, the job's name (the row's heading), its queue. */
function IdAndName({ id, name, queue }: { id: string; name: string; queue: string }) {
  return (
    <>
      <td className={`${cell} font-mono`} title={id}>
        {shortId(id)}
      </td>
      <th scope="row" className={`${cell} text-left font-mono font-medium`} data-job-name>
        {name}
      </th>
      <td className={`${cell} font-mono`}>{queue}</td>
    </>
  )
}
