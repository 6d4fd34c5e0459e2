// Live queue counts, throughput and running/recent jobs: server-sent events from
// `GET api/events`, or polling `GET api/queues`, `GET api/throughput` and `GET api/jobs/…` when
// the stream cannot be used (a proxy that buffers it, a browser without EventSource).
//
// One connection serves every part of the page: the first subscriber opens it (or starts
// polling), each later one joins it, and the last one to leave closes it.

import { api, type Envelope, type QueuesReply } from './api'
import { jobsFromPolls, type JobsReply, type RecentJob, type RunningJob } from './jobs'
import type { ThroughputReply } from './throughput'

export type LiveMode = 'connecting' | 'live' | 'polling'

export interface LiveHandlers {
  onCounts: (counts: QueuesReply) => void
  /** A message when the counts could not be read (null once they can again). */
  onProblem: (message: string | null) => void
  onMode: (mode: LiveMode) => void
  /** The throughput series (`replace: true`) or new points to append (`replace: false`). */
  onThroughput?: (reply: ThroughputReply) => void
}

/** What one part of the page listens to; every handler is optional. */
interface Listener {
  onCounts?: (counts: QueuesReply) => void
  onProblem?: (message: string | null) => void
  onMode?: (mode: LiveMode) => void
  onThroughput?: (reply: ThroughputReply) => void
  onJobs?: (jobs: JobsReply) => void
}

const listeners = new Set<Listener>()
let mode: LiveMode = 'connecting'
let stopHub: (() => void) | null = null

const each = (call: (l: Listener) => void) => {
  for (const l of [...listeners]) call(l)
}
const setMode = (next: LiveMode) => {
  mode = next
  each((l) => l.onMode?.(next))
}

/** Opens the event stream, or polls every `pollEveryMs` when it cannot be used; returns the
 * function that stops it. */
function startHub(pollEveryMs: number): () => void {
  let stopped = false
  let source: EventSource | null = null
  let timer: ReturnType<typeof setTimeout> | null = null
  let watchdog: ReturnType<typeof setTimeout> | null = null

  const poll = async () => {
    // Read who listens after the subscribers of this same tick have joined.
    await Promise.resolve()
    if (stopped) return
    const all = [...listeners]
    const wantsJobs = all.some((l) => l.onJobs)
    const wantsCounts = wantsJobs || all.some((l) => l.onCounts)
    const wantsThroughput = all.some((l) => l.onThroughput)
    try {
      const [queues, throughput, running, recent] = await Promise.all([
        wantsCounts ? api<QueuesReply>('api/queues') : null,
        wantsThroughput ? api<ThroughputReply>('api/throughput') : null,
        wantsJobs ? api<RunningJob[]>('api/jobs/running?limit=200') : null,
        wantsJobs ? api<RecentJob[]>('api/jobs/recent?limit=200') : null,
      ])
      if (queues) each((l) => l.onCounts?.(queues.data))
      if (throughput) each((l) => l.onThroughput?.(throughput.data))
      if (queues && running && recent) {
        const jobs = jobsFromPolls(queues.data, running.data, recent.data)
        each((l) => l.onJobs?.(jobs))
      }
      each((l) => l.onProblem?.(null))
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error)
      each((l) => l.onProblem?.(message))
    }
    if (!stopped) timer = setTimeout(poll, pollEveryMs)
  }

  const fallBack = () => {
    if (stopped) return
    source?.close()
    source = null
    if (watchdog) clearTimeout(watchdog)
    setMode('polling')
    if (!timer) void poll()
  }

  const data = <T>(event: Event) => (JSON.parse((event as MessageEvent<string>).data) as Envelope<T>).data

  if (typeof EventSource === 'undefined') {
    fallBack()
  } else {
    setMode('connecting')
    source = new EventSource('api/events')
    // No event within a few seconds: the stream is held up somewhere on the way.
    watchdog = setTimeout(fallBack, 5000)
    source.addEventListener('queues', (event) => {
      if (watchdog) clearTimeout(watchdog)
      watchdog = null
      setMode('live')
      const counts = data<QueuesReply>(event)
      each((l) => {
        l.onProblem?.(null)
        l.onCounts?.(counts)
      })
    })
    source.addEventListener('throughput', (event) => {
      const reply = data<ThroughputReply>(event)
      each((l) => l.onThroughput?.(reply))
    })
    source.addEventListener('jobs', (event) => {
      const jobs = data<JobsReply>(event)
      each((l) => l.onJobs?.(jobs))
    })
    source.addEventListener('error', (event) => {
      // The server's own `error` event carries the error body; the stream goes on.
      if (event instanceof MessageEvent && typeof event.data === 'string') {
        let message = 'The counts could not be read'
        try {
          message = (JSON.parse(event.data) as { message?: string }).message ?? message
        } catch {
          // keep the generic message
        }
        each((l) => l.onProblem?.(message))
        return
      }
      // The connection failed: EventSource retries by itself unless the server refused it.
      if (source?.readyState === EventSource.CLOSED) fallBack()
    })
  }

  return () => {
    stopped = true
    source?.close()
    if (timer) clearTimeout(timer)
    if (watchdog) clearTimeout(watchdog)
  }
}

/** Joins the page's one live connection (opening it if none is open); returns the function
 * that leaves it (closing it when nobody else listens). */
function subscribe(listener: Listener, pollEveryMs: number): () => void {
  listeners.add(listener)
  if (stopHub === null) {
    stopHub = startHub(pollEveryMs)
  } else {
    listener.onMode?.(mode)
  }
  return () => {
    if (!listeners.delete(listener)) return
    if (listeners.size === 0 && stopHub) {
      stopHub()
      stopHub = null
      mode = 'connecting'
    }
  }
}

/** Starts the updates of the counts (and throughput); returns the function that stops them. */
export function subscribeQueues(handlers: LiveHandlers, pollEveryMs = 2000): () => void {
  return subscribe({ ...handlers }, pollEveryMs)
}

/** Starts the updates of the running and recent jobs (the `jobs` events, or polling);
 * returns the function that stops them. */
export function subscribeJobs(onJobs: (jobs: JobsReply) => void, pollEveryMs = 2000): () => void {
  return subscribe({ onJobs }, pollEveryMs)
}
