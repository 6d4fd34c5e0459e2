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
import { PanelList, RecordView } from './components/Panels'
import { Alert } from './components/ui'
import { loadPanels, parseHash, viewHash, type PanelSpec, type View } from './lib/panels'

/** The dashboard: live counts, throughput charts, the failed jobs and the schedule; and the
 * application's panels, each on its own view (`#/p/{panel}`). */
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
  const [panels, setPanels] = useState<PanelSpec[] | null>(null)
  const [view, setView] = useState<View>(() => parseHash(window.location.hash))
  useEffect(() => {
    const follow = () => setView(parseHash(window.location.hash))
    window.addEventListener('hashchange', follow)
    return () => window.removeEventListener('hashchange', follow)
  }, [])
  useEffect(() => {
    loadPanels().then(setPanels, () => setPanels([]))
  }, [])
  const panel = view.kind === 'queues' ? undefined : panels?.find((p) => p.id === view.panel)
  const current = view.kind === 'queues' ? 'queues' : view.panel

  return (
    <div className="min-h-screen">
      <header className="border-b border-slate-200 bg-white dark:border-slate-800 dark:bg-slate-900">
        <div className="mx-auto flex max-w-6xl flex-wrap items-center justify-between gap-3 px-4 py-3">
          <h1 className="text-xl font-semibold">Jobs dashboard</h1>
          {panels !== null && panels.length > 0 && (
            <nav aria-label="Dashboard" className="flex flex-wrap gap-1 text-sm">
              {[{ id: 'queues', title: 'Queues', href: viewHash({ kind: 'queues' }) }]
                .concat(panels.map((p) => ({ id: p.id, title: p.title, href: viewHash({ kind: 'panel', panel: p.id, query: new URLSearchParams() }) })))
                .map((item) => (
                  <a
                    key={item.id}
                    href={item.href}
                    aria-current={current === item.id ? 'page' : undefined}
                    className="rounded-md px-2.5 py-1.5 hover:bg-slate-100 aria-[current=page]:bg-slate-200 aria-[current=page]:font-semibold dark:hover:bg-slate-800 dark:aria-[current=page]:bg-slate-700"
                  >
                    {item.title}
                  </a>
                ))}
            </nav>
          )}
          {signedIn && (
            <button type="button" className={buttonClass('plain')} onClick={() => void logout()}>
              Sign out
            </button>
          )}
        </div>
      </header>
      {view.kind === 'queues' ? (
        <main className="mx-auto max-w-6xl space-y-8 px-4 py-6">
          <QueueCounts counts={counts} mode={mode} problem={problem} />
          <section aria-labelledby="charts-title" data-slot="charts" className="space-y-3">
            <ThroughputCharts data={throughput} />
          </section>
          <RecentJobs />
          <FailedJobs failedTotal={counts?.failed_all_queues ?? null} />
          <Schedule />
        </main>
      ) : (
        <main className="mx-auto max-w-6xl space-y-6 px-4 py-6">
          {panels === null && <p className="text-sm">Loading…</p>}
          {panels !== null && !panel && <Alert>This dashboard has no panel “{view.panel}”.</Alert>}
          {panel && view.kind === 'panel' && (
            <PanelList
              spec={panel}
              query={view.query}
              onQuery={(query) => {
                window.location.hash = viewHash({ kind: 'panel', panel: panel.id, query })
              }}
            />
          )}
          {panel && view.kind === 'record' && <RecordView spec={panel} id={view.id} />}
        </main>
      )}
    </div>
  )
}
