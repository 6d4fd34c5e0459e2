import { useEffect, useState } from 'react'
import { csrfToken, logout, type QueuesReply } from './lib/api'
import { subscribeQueues, type LiveMode } from './lib/live'
import { mergeThroughput, type ThroughputReply } from './lib/throughput'
import { QueueCounts } from './components/QueueCounts'
import { ThroughputCharts } from './components/ThroughputCharts'
import { RecentJobs } from './components/RecentJobs'
import { FailedJobs } from './components/FailedJobs'
import { Schedule } from './components/Schedule'
import { buttonClass } from './components/ConfirmDialog'

/** The dashboard: live counts, throughput charts, the failed jobs and the schedule. */
export function App() {
  const [counts, setCounts] = useState<QueuesReply | null>(null)
  const [throughput, setThroughput] = useState<ThroughputReply | null>(null)
  const [mode, setMode] = useState<LiveMode>('connecting')
  const [problem, setProblem] = useState<string | null>(null)
  // A token login has a session (and a sign-out); an application's own hook has neither.
  const [signedIn, setSignedIn] = useState(false)

  useEffect(
    () =>
      subscribeQueues({
        onCounts: setCounts,
        onMode: setMode,
        onProblem: setProblem,
        onThroughput: (reply) => setThroughput((current) => mergeThroughput(current, reply)),
      }),
    [],
  )
  useEffect(() => {
    void csrfToken().then((token) => setSignedIn(token !== null))
  }, [])

  return (
    <div className="min-h-screen">
      <header className="border-b border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
        <div className="mx-auto flex max-w-6xl flex-wrap items-center justify-between gap-3 px-4 py-3">
          <h1 className="text-xl font-semibold">Jobs dashboard</h1>
          {signedIn && (
            <button type="button" className={buttonClass('plain')} onClick={() => void logout()}>
              Sign out
            </button>
          )}
        </div>
      </header>
      <main className="mx-auto max-w-6xl space-y-8 px-4 py-6">
        <QueueCounts counts={counts} mode={mode} problem={problem} />
        <section aria-labelledby="charts-title" data-slot="charts" className="space-y-3">
          <ThroughputCharts data={throughput} />
        </section>
        <RecentJobs />
        <FailedJobs failedTotal={counts?.failed_all_queues ?? null} />
        <Schedule />
      </main>
    </div>
  )
}
