import { describe, expect, it } from 'vitest'
import {
  formatTime,
  formatValue,
  linePath,
  linear,
  mergeThroughput,
  niceMax,
  rates,
  timeDomain,
  timeTicks,
  type ThroughputPoint,
  type ThroughputReply,
} from './throughput'

const counts = (processed: number, failed = 0, retried = 0) => ({ processed, failed, retried })
const point = (at: number, processed: number, failed = 0, span_ms = 10_000): ThroughputPoint => ({
  at,
  span_ms,
  total: counts(processed, failed),
  queues: { default: counts(processed, failed), mail: counts(0) },
})
const reply = (points: ThroughputPoint[], replace: boolean, window_ms = 60_000): ThroughputReply => ({
  interval_ms: 10_000,
  window_ms,
  queues: ['default', 'mail'],
  replace,
  points,
})

describe('linePath', () => {
  const x = linear([0, 10], [0, 100])
  const y = linear([0, 5], [50, 0])

  it('maps the values through the scales, a move then lines', () => {
    expect(linePath([0, 5, 10], [0, 5, 2.5], x, y)).toBe('M0,50L50,0L100,25')
  })

  it('breaks the line at a missing value and draws a lone value as a dot', () => {
    expect(linePath([0, 2, 4, 6, 8], [1, 2, null, 3, null], x, y)).toBe('M0,40L20,30M60,20h0')
  })

  it('is empty with nothing to draw, and rounds to a tenth of a pixel', () => {
    expect(linePath([], [], x, y)).toBe('')
    expect(linePath([1], [null], x, y)).toBe('')
    expect(linePath([1 / 3], [1 / 3], x, y)).toBe('M3.3,46.7h0')
  })

  it('linear maps a zero-width domain to the middle of the range', () => {
    expect(linear([5, 5], [0, 100])(5)).toBe(50)
    expect(linear([0, 4], [200, 0])(1)).toBe(150)
  })
})

describe('rates', () => {
  it('turns counts per span into jobs per minute and a failure share', () => {
    const [r] = rates([point(1000, 9, 1, 30_000)], null)
    expect(r.processedPerMin).toBe(18)
    expect(r.failedPerMin).toBe(2)
    expect(r.failurePct).toBe(10)
  })

  it('has no failure rate where no job ended, and reads one queue', () => {
    const points = [point(1000, 0), point(2000, 4, 4)]
    expect(rates(points, null).map((r) => r.failurePct)).toEqual([null, 50])
    expect(rates(points, 'mail').map((r) => r.processedPerMin)).toEqual([0, 0])
    expect(rates(points, 'unknown')[1].failurePct).toBeNull()
  })
})

describe('mergeThroughput', () => {
  it('replaces on a full reply and appends only newer points on an update', () => {
    const full = mergeThroughput(null, reply([point(10_000, 1), point(20_000, 2)], true))
    expect(full.points.map((p) => p.at)).toEqual([10_000, 20_000])
    const more = mergeThroughput(full, reply([point(20_000, 2), point(30_000, 3)], false))
    expect(more.points.map((p) => p.at)).toEqual([10_000, 20_000, 30_000])
    const again = mergeThroughput(more, reply([point(5_000, 9)], true))
    expect(again.points.map((p) => p.at)).toEqual([5_000])
  })

  it('drops the points that left the window', () => {
    const full = mergeThroughput(null, reply([point(10_000, 1), point(40_000, 1)], true, 60_000))
    const later = mergeThroughput(full, reply([point(75_000, 1)], false, 60_000))
    expect(later.points.map((p) => p.at)).toEqual([40_000, 75_000])
  })
})

describe('axes', () => {
  it('niceMax rounds up to 1, 2, 2.5 or 5 times a power of ten', () => {
    expect(niceMax(0)).toBe(1)
    expect(niceMax(0.3, 0.1)).toBe(0.5)
    expect(niceMax(7)).toBe(10)
    expect(niceMax(11)).toBe(20)
    expect(niceMax(21)).toBe(25)
    expect(niceMax(250)).toBe(250)
    expect(niceMax(3_100)).toBe(5_000)
  })

  it('timeTicks picks a round step with at most `most` ticks', () => {
    const hour = 3_600_000
    const { step, ticks } = timeTicks(hour * 10 + 1, hour * 11, 4)
    expect(step).toBe(15 * 60_000)
    expect(ticks).toEqual([10.25, 10.5, 10.75, 11].map((h) => h * hour))
    expect(timeTicks(0, 50_000, 5).step).toBe(15_000)
  })

  it('formatTime shows seconds for steps under a minute', () => {
    const t = new Date(2026, 11, 5, 9, 5, 7).getTime()
    expect(formatTime(t, 60_000)).toBe('09:05')
    expect(formatTime(t, 15_000)).toBe('09:05:07')
  })

  it('formatValue keeps one decimal below a hundred', () => {
    expect(formatValue(2.5)).toBe('2.5')
    expect(formatValue(12.5)).toBe('12.5')
    expect(formatValue(33.333)).toBe('33.3')
    expect(formatValue(3)).toBe('3')
    expect(formatValue(660.4)).toBe('660')
  })

  it('timeDomain spans the window, or what there is when the dashboard just started', () => {
    const hour = 3_600_000
    expect(timeDomain([], hour, 5 * hour)).toEqual([4 * hour, 5 * hour])
    expect(timeDomain([point(100_000, 1), point(110_000, 1)], hour, 0)).toEqual([90_000, 110_000])
    expect(timeDomain([point(hour, 1), point(3 * hour, 1)], hour, 0)).toEqual([2 * hour, 3 * hour])
  })
})
