import { describe, expect, it } from 'vitest'
import { formatDuration } from './format'
import { forQueue, jobsFromPolls, leaseLapsed, relative, shortId, type RunningJob } from './jobs'

const running = (id: string, queue: string, lease = '2026-12-05T10:00:30Z'): RunningJob => ({
  id,
  name: 'mail',
  queue,
  attempt: 1,
  group: null,
  dispatched_at: '2026-12-05T10:00:00Z',
  lease_expires_at: lease,
})

describe('the running and recent jobs', () => {
  it('builds the jobs event from the polled routes', () => {
    const counts = { ready: 0, delayed: 0, running: 0, grouped_waiting: 0, pending_failures: 0, failed: 0 }
    const queues = { queues: [{ ...counts, queue: 'default' }, { ...counts, queue: 'mail' }], totals: counts, failed_all_queues: 0 }
    const rows = [running('a', 'default')]
    expect(jobsFromPolls(queues, rows, [])).toEqual({ queues: ['default', 'mail'], running: rows, recent: [] })
  })

  it('keeps the rows of the queue picked, in order, up to the maximum', () => {
    const rows = [running('a', 'default'), running('b', 'mail'), running('c', 'default'), running('d', 'default')]
    expect(forQueue(rows, null, 10).map((r) => r.id)).toEqual(['a', 'b', 'c', 'd'])
    expect(forQueue(rows, 'default', 2).map((r) => r.id)).toEqual(['a', 'c'])
    expect(forQueue(rows, 'mail', 10).map((r) => r.id)).toEqual(['b'])
    expect(forQueue(rows, 'other', 10)).toEqual([])
  })

  it('says how long a run took', () => {
    expect(formatDuration(0)).toBe('0 ms')
    expect(formatDuration(850)).toBe('850 ms')
    expect(formatDuration(3_249)).toBe('3.2 s')
    expect(formatDuration(42_000)).toBe('42 s')
    expect(formatDuration(125_000)).toBe('2 min 5 s')
    expect(formatDuration(120_000)).toBe('2 min')
    expect(formatDuration(3_840_000)).toBe('1 h 4 min')
    expect(formatDuration(-1)).toBe('–')
  })

  it('says when, relative to now', () => {
    const now = Date.parse('2026-12-05T10:00:20Z')
    expect(relative('2026-12-05T10:00:08Z', now)).toBe('12 s ago')
    expect(relative('2026-12-05T10:00:45Z', now)).toBe('in 25 s')
    expect(relative('2026-12-05T10:00:20.300Z', now)).toBe('now')
    expect(relative(null, now)).toBe('–')
    expect(relative('not a time', now)).toBe('–')
  })

  it('tells a lapsed lease', () => {
    const now = Date.parse('2026-12-05T10:00:20Z')
    expect(leaseLapsed(running('a', 'q', '2026-12-05T10:00:10Z'), now)).toBe(true)
    expect(leaseLapsed(running('a', 'q', '2026-12-05T10:00:30Z'), now)).toBe(false)
  })

  it('shortens ids', () => {
    expect(shortId('0193a6c2-7f1e-7c3b')).toBe('0193a6c2')
    expect(shortId('abc')).toBe('abc')
    expect(shortId('')).toBe('–')
  })
})
