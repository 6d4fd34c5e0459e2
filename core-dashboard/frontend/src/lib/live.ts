// Live queue counts and throughput: server-sent events from `GET api/events`, or polling
// `GET api/queues` and `GET api/throughput` when the stream cannot be used (a proxy that buffers
// it, a browser without EventSource).

import { api, type Envelope, type QueuesReply } from './api'
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

/** Starts the updates; returns the function that stops them. */
export function subscribeQueues(handlers: LiveHandlers, pollEveryMs = 2000): () => void {
  let stopped = false
  let source: EventSource | null = null
  let timer: ReturnType<typeof setTimeout> | null = null
  let watchdog: ReturnType<typeof setTimeout> | null = null

  const poll = async () => {
    if (stopped) return
    try {
      const [reply, throughput] = await Promise.all([
        api<QueuesReply>('api/queues'),
        handlers.onThroughput ? api<ThroughputReply>('api/throughput') : null,
      ])
      handlers.onCounts(reply.data)
      if (throughput) handlers.onThroughput?.(throughput.data)
      handlers.onProblem(null)
    } catch (error) {
      handlers.onProblem(error instanceof Error ? error.message : String(error))
    }
    if (!stopped) timer = setTimeout(poll, pollEveryMs)
  }

  const fallBack = () => {
    if (stopped) return
    source?.close()
    source = null
    if (watchdog) clearTimeout(watchdog)
    handlers.onMode('polling')
    if (!timer) void poll()
  }

  if (typeof EventSource === 'undefined') {
    fallBack()
  } else {
    handlers.onMode('connecting')
    source = new EventSource('api/events')
    // No event within a few seconds: the stream is held up somewhere on the way.
    watchdog = setTimeout(fallBack, 5000)
    source.addEventListener('queues', (event) => {
      if (watchdog) clearTimeout(watchdog)
      watchdog = null
      handlers.onMode('live')
      handlers.onProblem(null)
      handlers.onCounts((JSON.parse((event as MessageEvent<string>).data) as Envelope<QueuesReply>).data)
    })
    source.addEventListener('throughput', (event) => {
      handlers.onThroughput?.((JSON.parse((event as MessageEvent<string>).data) as Envelope<ThroughputReply>).data)
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
        handlers.onProblem(message)
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
