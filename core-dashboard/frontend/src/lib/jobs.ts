// The running and recent jobs: the rows of `GET api/jobs/running`, `GET api/jobs/recent` and
// of the `jobs` events, and what the page shows of them. No React here, so all of it is
// unit-tested.

import type { QueuesReply } from './api'
import { formatDuration } from './format'

/** A job a worker runs now (in any process). */
export interface RunningJob {
  id: string
  name: string
  queue: string
  /** 1 for the first run. */
  attempt: number
  group: string | null
  /** RFC 3339, null when the job's envelope does not say. */
  dispatched_at: string | null
  /** RFC 3339: when the lease ends unless the worker extends it. */
  lease_expires_at: string
}

export type Outcome = 'succeeded' | 'failed' | 'retried'

/** A job a worker of the dashboard's process finished. */
export interface RecentJob {
  id: string
  name: string
  queue: string
  outcome: Outcome
  attempt: number
  /** RFC 3339. */
  finished_at: string
  duration_ms: number
}

/** A `jobs` event: both lists for every shown queue. */
export interface JobsReply {
  queues: string[]
  running: RunningJob[]
  recent: RecentJob[]
}

/** The `jobs` event's data from the polled routes (when the event stream cannot be used). */
export function jobsFromPolls(queues: QueuesReply, running: RunningJob[], recent: RecentJob[]): JobsReply {
  return {
    queues: queues.queues.map((q) => q.queue ?? '').filter((q) => q !== ''),
    running,
    recent,
  }
}

/** The rows of `queue` (all of them for null), at most `max`, in the order given. */
export function forQueue<T extends { queue: string }>(rows: T[], queue: string | null, max: number): T[] {
  const picked = queue === null ? rows : rows.filter((r) => r.queue === queue)
  return picked.slice(0, max)
}

/** How long ago (or, negative, how far ahead) `iso` is from `now`, for people: `12 s ago`,
 * `in 25 s`. */
export function relative(iso: string | null, now: number): string {
  if (iso === null) return '–'
  const at = Date.parse(iso)
  if (Number.isNaN(at)) return '–'
  const ms = now - at
  if (Math.abs(ms) < 1000) return 'now'
  return ms > 0 ? `${formatDuration(ms)} ago` : `in ${formatDuration(-ms)}`
}

/** Whether a running job's lease has run out at `now` (its worker is likely gone). */
export function leaseLapsed(job: RunningJob, now: number): boolean {
  const at = Date.parse(job.lease_expires_at)
  return !Number.isNaN(at) && at < now
}

/** An id short enough for a narrow table: its first 8 characters. */
export function shortId(id: string): string {
  return id.length > 8 ? id.slice(0, 8) : id === '' ? '–' : id
}
