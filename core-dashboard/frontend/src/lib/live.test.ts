import { afterEach, describe, expect, it, vi } from 'vitest'
import { subscribeJobs, subscribeQueues, type LiveMode } from './live'
import type { JobsReply } from './jobs'

const counts = { ready: 1, delayed: 0, running: 1, grouped_waiting: 0, pending_failures: 0, failed: 0 }
const replies: Record<string, unknown> = {
  'api/queues': { queues: [{ ...counts, queue: 'default' }], totals: counts, failed_all_queues: 0 },
  'api/jobs/running?limit=200': [{ id: 'a', name: 'mail', queue: 'default', attempt: 1, group: null, dispatched_at: null, lease_expires_at: '2026-12-05T10:00:30Z' }],
  'api/jobs/recent?limit=200': [],
}

afterEach(() => {
  vi.unstubAllGlobals()
})

describe('the live connection without an event stream', () => {
  it('polls once for every part of the page, jobs included', async () => {
    vi.stubGlobal('EventSource', undefined)
    const fetched: string[] = []
    vi.stubGlobal('fetch', async (path: string) => {
      fetched.push(path)
      return new Response(JSON.stringify({ data: replies[path] }), { status: 200 })
    })
    const modes: LiveMode[] = []
    let jobs: JobsReply | null = null
    let sawCounts = false
    const stopCounts = subscribeQueues({ onCounts: () => (sawCounts = true), onProblem: () => {}, onMode: (m) => modes.push(m) }, 60_000)
    const stopJobs = subscribeJobs((j) => (jobs = j), 60_000)
    await vi.waitFor(() => expect(jobs).not.toBeNull())
    expect(sawCounts).toBe(true)
    expect(modes).toEqual(['polling'])
    expect(jobs).toEqual({ queues: ['default'], running: replies['api/jobs/running?limit=200'], recent: [] })
    // One round: each route once, on one shared timer.
    expect([...fetched].sort()).toEqual(['api/jobs/recent?limit=200', 'api/jobs/running?limit=200', 'api/queues'])
    stopJobs()
    stopCounts()
  })

  it('a part that joins later is told the mode at once', async () => {
    vi.stubGlobal('EventSource', undefined)
    vi.stubGlobal('fetch', async (path: string) => new Response(JSON.stringify({ data: replies[path] }), { status: 200 }))
    const stop = subscribeJobs(() => {}, 60_000)
    const modes: LiveMode[] = []
    const stopCounts = subscribeQueues({ onCounts: () => {}, onProblem: () => {}, onMode: (m) => modes.push(m) }, 60_000)
    expect(modes).toEqual(['polling'])
    stopCounts()
    stop()
  })
})
