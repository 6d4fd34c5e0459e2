import { useLayoutEffect, useRef, useState } from 'react'
import { formatTime, formatValue, linePath, linear, niceMax, timeTicks } from '../lib/throughput'

/** One line of a chart: its values at the chart's times (null: no value there). */
export interface Series {
  key: string
  label: string
  /** Tailwind stroke and fill classes for light and dark. */
  stroke: string
  swatch: string
  values: (number | null)[]
}

const HEIGHT = 180
const MARGIN = { top: 10, right: 12, bottom: 24, left: 40 }

/** The width the element is laid out at, following resizes. */
function useWidth<T extends HTMLElement>(): [React.RefObject<T | null>, number] {
  const ref = useRef<T>(null)
  const [width, setWidth] = useState(0)
  useLayoutEffect(() => {
    const el = ref.current
    if (!el) return
    setWidth(el.clientWidth)
    if (typeof ResizeObserver === 'undefined') return
    const observer = new ResizeObserver(() => setWidth(el.clientWidth))
    observer.observe(el)
    return () => observer.disconnect()
  }, [])
  return [ref, width]
}

/** A line chart drawn as inline SVG at the width it is given: time along the bottom, values up
 * the left (from zero to a round maximum), one path per series. */
export function LineChart({
  id,
  title,
  unit,
  times,
  domain,
  series,
  floor,
  cap,
  empty,
}: {
  id: string
  title: string
  unit: string
  times: number[]
  domain: [number, number]
  series: Series[]
  /** The y axis reaches at least this far. */
  floor: number
  /** …and no further than this. */
  cap?: number
  /** Shown instead of the lines when there are no points. */
  empty: string
}) {
  const [ref, measured] = useWidth<HTMLDivElement>()
  const width = Math.max(measured, 200)
  const innerW = width - MARGIN.left - MARGIN.right
  const innerH = HEIGHT - MARGIN.top - MARGIN.bottom
  const highest = Math.max(0, ...series.flatMap((s) => s.values.filter((v): v is number => v !== null)))
  const yMax = Math.min(niceMax(highest, floor), cap ?? Infinity)
  const x = linear(domain, [MARGIN.left, MARGIN.left + innerW])
  const y = linear([0, yMax], [MARGIN.top + innerH, MARGIN.top])
  const { step, ticks } = timeTicks(domain[0], domain[1], Math.max(2, Math.floor(innerW / 64)))
  const yTicks = [0, yMax / 2, yMax]
  const latest = (s: Series) => {
    for (let i = s.values.length - 1; i >= 0; i--) if (s.values[i] !== null) return s.values[i]
    return null
  }

  return (
    <figure className="min-w-0 rounded-lg border border-slate-200 bg-white p-3 dark:border-slate-800 dark:bg-slate-900" data-testid={`chart-${id}`}>
      <figcaption className="flex flex-wrap items-baseline justify-between gap-x-3 gap-y-1">
        <span className="text-sm font-semibold">
          {title} <span className="font-normal text-slate-600 dark:text-slate-400">({unit})</span>
        </span>
        <span className="flex flex-wrap gap-x-3 text-xs text-slate-600 dark:text-slate-400">
          {series.map((s) => {
            const v = latest(s)
            return (
              <span key={s.key} className="inline-flex items-center gap-1" data-legend={s.key}>
                <span aria-hidden="true" className={`inline-block h-0.5 w-3 ${s.swatch}`} />
                {s.label}
                <span className="tabular-nums text-slate-900 dark:text-slate-100">{v === null ? '–' : formatValue(v)}</span>
              </span>
            )
          })}
        </span>
      </figcaption>
      <div ref={ref} className="relative mt-2 w-full">
        <svg
          role="img"
          aria-label={`${title} in ${unit}, over time`}
          width={width}
          height={HEIGHT}
          viewBox={`0 0 ${width} ${HEIGHT}`}
          className="block max-w-full text-[11px]"
        >
          {yTicks.map((v) => (
            <g key={`y${v}`}>
              <line x1={MARGIN.left} x2={MARGIN.left + innerW} y1={y(v)} y2={y(v)} className="stroke-slate-200 dark:stroke-slate-700" strokeWidth={1} />
              <text x={MARGIN.left - 6} y={y(v)} dy="0.32em" textAnchor="end" className="fill-slate-600 dark:fill-slate-400">
                {formatValue(v)}
              </text>
            </g>
          ))}
          {ticks.map((t) => (
            <g key={`x${t}`}>
              <line x1={x(t)} x2={x(t)} y1={MARGIN.top + innerH} y2={MARGIN.top + innerH + 4} className="stroke-slate-400 dark:stroke-slate-500" />
              {/* A label near the right edge ends at its tick, so it is not cut off. */}
              <text
                x={x(t)}
                y={HEIGHT - 6}
                textAnchor={x(t) > MARGIN.left + innerW - 30 ? 'end' : 'middle'}
                className="fill-slate-600 dark:fill-slate-400"
                data-tick="x"
              >
                {formatTime(t, step)}
              </text>
            </g>
          ))}
          {times.length > 0 &&
            series.map((s) => (
              <path
                key={s.key}
                d={linePath(times, s.values, x, y)}
                data-series={s.key}
                fill="none"
                strokeWidth={2}
                strokeLinecap="round"
                strokeLinejoin="round"
                className={s.stroke}
              />
            ))}
        </svg>
        {times.length === 0 && (
          <p className="absolute inset-0 flex items-center justify-center px-6 text-center text-sm text-slate-600 dark:text-slate-400">{empty}</p>
        )}
      </div>
    </figure>
  )
}
