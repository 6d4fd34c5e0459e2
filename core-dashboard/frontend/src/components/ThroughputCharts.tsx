import { useState } from 'react'
import { rates, timeDomain, type ThroughputReply } from '../lib/throughput'
import { LineChart } from './LineChart'
import { QueuePicker } from './ui'

const seconds = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`)
const span = (ms: number) => (ms >= 3_600_000 && ms % 3_600_000 === 0 ? `${ms / 3_600_000} h` : `${Math.round(ms / 60_000)} min`)

/** Throughput and failure rate over the window, for all shown queues or one, updated live. */
export function ThroughputCharts({ data }: { data: ThroughputReply | null }) {
  const [queue, setQueue] = useState<string>('')
  if (data === null) {
    return (
      <>
        <h2 id="charts-title" className="text-lg font-semibold">
          Throughput
        </h2>
        <p className="text-sm text-slate-600 dark:text-slate-400">Loading the charts…</p>
      </>
    )
  }
  const selected = queue !== '' && data.queues.includes(queue) ? queue : null
  const points = data.points
  const r = rates(points, selected)
  const times = r.map((p) => p.at)
  const domain = timeDomain(points, data.window_ms, Date.now())
  const empty = `No samples yet: the first comes ${seconds(data.interval_ms)} after the server starts.`

  return (
    <>
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 id="charts-title" className="text-lg font-semibold">
          Throughput, last {span(data.window_ms)}
        </h2>
        <QueuePicker queues={data.queues} value={selected ?? ''} onChange={setQueue} testId="chart-queue" />
      </div>
      <div className="grid gap-3 lg:grid-cols-2">
        <LineChart
          id="throughput"
          title="Jobs finished"
          unit="jobs/min"
          times={times}
          domain={domain}
          floor={1}
          empty={empty}
          series={[
            { key: 'processed', label: 'succeeded', stroke: 'stroke-sky-600 dark:stroke-sky-400', swatch: 'bg-sky-600 dark:bg-sky-400', values: r.map((p) => p.processedPerMin) },
            { key: 'failed', label: 'failed', stroke: 'stroke-red-600 dark:stroke-red-400', swatch: 'bg-red-600 dark:bg-red-400', values: r.map((p) => p.failedPerMin) },
          ]}
        />
        <LineChart
          id="failure-rate"
          title="Failure rate"
          unit="% of finished jobs"
          times={times}
          domain={domain}
          floor={5}
          cap={100}
          empty={empty}
          series={[
            { key: 'failure', label: 'failed share', stroke: 'stroke-amber-600 dark:stroke-amber-400', swatch: 'bg-amber-600 dark:bg-amber-400', values: r.map((p) => p.failurePct) },
          ]}
        />
      </div>
      <p className="text-xs text-slate-600 dark:text-slate-400">
        Jobs finished by the workers running in this server process, sampled every {seconds(data.interval_ms)}; workers in other
        processes are not counted. The failure rate is left blank where no job finished.
      </p>
    </>
  )
}
