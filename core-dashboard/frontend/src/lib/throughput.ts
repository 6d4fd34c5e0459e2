// The throughput charts' data and geometry: the points of `GET api/throughput` and of the
// `throughput` events, the rates drawn from them, and the SVG path math. No React here, so
// all of it is unit-tested.

/** How many jobs ended which way during a point's span. */
export interface JobCounts {
  processed: number
  failed: number
  retried: number
}

/** One sample: the jobs that ended during the `span_ms` before `at` (Unix ms). */
export interface ThroughputPoint {
  at: number
  span_ms: number
  total: JobCounts
  queues: Record<string, JobCounts>
}

/** `GET api/throughput`, and each `throughput` event (`replace: false` appends `points`). */
export interface ThroughputReply {
  interval_ms: number
  window_ms: number
  queues: string[]
  replace: boolean
  points: ThroughputPoint[]
}

/** Folds a reply into what the page has: replaces it, or appends the newer points and drops
 * those that left the window. */
export function mergeThroughput(current: ThroughputReply | null, update: ThroughputReply): ThroughputReply {
  if (update.replace || current === null) return { ...update, replace: true }
  const last = current.points.length > 0 ? current.points[current.points.length - 1].at : -Infinity
  const points = current.points.concat(update.points.filter((p) => p.at > last))
  const newest = points.length > 0 ? points[points.length - 1].at : 0
  return {
    ...update,
    replace: true,
    points: points.filter((p) => p.at > newest - update.window_ms),
  }
}

/** One point's rates: jobs per minute, and the failed share of the jobs that ended. */
export interface Rate {
  at: number
  /** Succeeded jobs per minute. */
  processedPerMin: number
  /** Failed jobs (ended in failed_jobs) per minute. */
  failedPerMin: number
  /** failed / (processed + failed), in percent; null when no job ended in the span. */
  failurePct: number | null
}

/** The rates of every point, for `queue` or (null) the total of the shown queues. */
export function rates(points: ThroughputPoint[], queue: string | null): Rate[] {
  return points.map((p) => {
    const c = queue === null ? p.total : (p.queues[queue] ?? { processed: 0, failed: 0, retried: 0 })
    const perMin = p.span_ms > 0 ? 60_000 / p.span_ms : 0
    const ended = c.processed + c.failed
    return {
      at: p.at,
      processedPerMin: c.processed * perMin,
      failedPerMin: c.failed * perMin,
      failurePct: ended > 0 ? (100 * c.failed) / ended : null,
    }
  })
}

/** A linear map from `domain` to `range` (a zero-width domain maps to the range's middle). */
export function linear([d0, d1]: [number, number], [r0, r1]: [number, number]): (v: number) => number {
  if (d1 === d0) return () => (r0 + r1) / 2
  const k = (r1 - r0) / (d1 - d0)
  return (v) => r0 + (v - d0) * k
}

const round = (v: number) => Math.round(v * 10) / 10

/** An SVG path through (`xs[i]`, `ys[i]`): a null value breaks the line; a point alone between
 * breaks is drawn as a dot (`h0` with a round line cap). Empty when there is nothing to draw. */
export function linePath(
  xs: number[],
  ys: (number | null)[],
  x: (v: number) => number,
  y: (v: number) => number,
): string {
  const out: string[] = []
  let run: string[] = []
  const flush = () => {
    if (run.length === 1) out.push(`${run[0]}h0`)
    else if (run.length > 1) out.push(run.join(''))
    run = []
  }
  for (let i = 0; i < xs.length; i++) {
    const v = ys[i]
    if (v === null || v === undefined || !Number.isFinite(v)) {
      flush()
      continue
    }
    run.push(`${run.length === 0 ? 'M' : 'L'}${round(x(xs[i]))},${round(y(v))}`)
  }
  flush()
  return out.join('')
}

/** The smallest of 1, 2, 2.5, 5 × 10ⁿ at or above `v` (at least `floor`). */
export function niceMax(v: number, floor = 1): number {
  const target = Math.max(v, floor)
  const power = 10 ** Math.floor(Math.log10(target))
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * power >= target - 1e-9) return m * power
  }
  return 10 * power
}

const STEPS_MS = [1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].map((s) => s * 1000)

/** Times for the x axis's labels: multiples of a round step, at most `most` of them. */
export function timeTicks(start: number, end: number, most: number): { step: number; ticks: number[] } {
  const span = Math.max(end - start, 1)
  const step = STEPS_MS.find((s) => span / s < most) ?? Math.ceil(span / most / 3_600_000) * 3_600_000
  const ticks: number[] = []
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) ticks.push(t)
  return { step, ticks }
}

/** A tick's label in local time: hours and minutes, and seconds when the step is under one. */
export function formatTime(ms: number, step: number): string {
  const d = new Date(ms)
  const two = (n: number) => String(n).padStart(2, '0')
  const hm = `${two(d.getHours())}:${two(d.getMinutes())}`
  return step < 60_000 ? `${hm}:${two(d.getSeconds())}` : hm
}

/** A value's label: at most one decimal, and none from 100 on. */
export function formatValue(v: number): string {
  if (v >= 100) return String(Math.round(v))
  return String(Math.round(v * 10) / 10)
}

/** The x domain: the window before the newest point, but no earlier than the first span's
 * start (so a dashboard that just started fills the width with what it has). */
export function timeDomain(points: ThroughputPoint[], windowMs: number, now: number): [number, number] {
  if (points.length === 0) return [now - windowMs, now]
  const end = points[points.length - 1].at
  const first = points[0].at - points[0].span_ms
  return [Math.max(end - windowMs, first), end]
}
