import { useCallback, useEffect, useState, type FormEvent } from 'react'
import { api, type BulkAction, type FailedRow, type PageMeta } from '../lib/api'
import { bulkFlow } from '../lib/bulk'
import { EMPTY_FILTER, filterBody, isFiltered, listQuery, type Filter, type SortOrder } from '../lib/filter'
import { buttonClass, useConfirm } from './ConfirmDialog'
import { JobDetail } from './JobDetail'
import { Alert, tableBoxClass, tableHeadClass } from './ui'

const PER_PAGE = 25

const inputClass =
  'mt-1 w-full rounded-md border border-slate-300 bg-white px-2 py-1.5 text-sm text-slate-900 dark:border-slate-600 dark:bg-slate-950 dark:text-slate-100'

const plural = (n: number) => `${n} failed job${n === 1 ? '' : 's'}`

/** The failed jobs: filters, a sortable paged table, the detail view, and the (bulk) actions. */
export function FailedJobs({ failedTotal }: { failedTotal: number | null }) {
  const [draft, setDraft] = useState<Filter>(EMPTY_FILTER)
  const [filter, setFilter] = useState<Filter>(EMPTY_FILTER)
  const [page, setPage] = useState(1)
  const [sort, setSort] = useState<SortOrder>('-failed_at')
  const [rows, setRows] = useState<FailedRow[] | null>(null)
  const [meta, setMeta] = useState<PageMeta | null>(null)
  const [error, setError] = useState<string | null>(null)
  const [notice, setNotice] = useState<string | null>(null)
  const [busy, setBusy] = useState(false)
  const [detail, setDetail] = useState<number | null>(null)
  const [reloads, setReloads] = useState(0)
  const [confirm, dialog] = useConfirm()

  const reload = useCallback(() => setReloads((n) => n + 1), [])

  useEffect(() => {
    let live = true
    api<FailedRow[]>(`api/failed?${listQuery(filter, page, sort, PER_PAGE)}`).then(
      (reply) => {
        if (!live) return
        setRows(reply.data)
        setMeta(reply.meta ?? null)
        setError(null)
        // The last page emptied by an action: show the one before.
        if (reply.data.length === 0 && page > 1) setPage(Math.max(1, reply.meta?.last_page ?? 1))
      },
      (e: Error) => live && setError(e.message),
    )
    return () => {
      live = false
    }
  }, [filter, page, sort, reloads, failedTotal])

  const act = async (what: () => Promise<string>) => {
    setBusy(true)
    setNotice(null)
    try {
      setNotice(await what())
      setError(null)
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e))
    } finally {
      setBusy(false)
      reload()
    }
  }

  const retry = (id: number) =>
    act(async () => {
      await api(`api/failed/${id}/retry`, { method: 'POST' })
      setDetail(null)
      return `Failed job #${id} re-dispatched.`
    })

  const forget = async (id: number) => {
    const ok = await confirm({
      title: `Forget failed job #${id}?`,
      body: 'Its row, payload and error are deleted; the job is not run again.',
      confirmLabel: 'Forget',
      danger: true,
    })
    if (!ok) return
    await act(async () => {
      await api(`api/failed/${id}/forget`, { method: 'POST' })
      setDetail(null)
      return `Failed job #${id} forgotten.`
    })
  }

  const bulk = (action: BulkAction) =>
    act(async () => {
      const body = filterBody(filter)
      const outcome = await bulkFlow(action, body, {
        preview: async (a, f) =>
          (await api<{ count: number }>('api/failed/bulk/preview', { method: 'POST', body: { action: a, filter: f } })).data
            .count,
        run: async (a, f, count) =>
          (
            await api<{ count: number }>('api/failed/bulk', {
              method: 'POST',
              body: { action: a, filter: f, confirm_count: count },
            })
          ).data.count,
        confirm: ({ action: a, count, changed }) =>
          confirm({
            title: a === 'retry' ? `Retry ${plural(count)}?` : `Forget ${plural(count)}?`,
            body: (
              <>
                {changed !== undefined && (
                  <p className="mb-2 font-medium text-amber-800 dark:text-amber-300">
                    The rows changed meanwhile: the filter now matches {count}, not {changed}.
                  </p>
                )}
                <p data-testid="bulk-count">
                  This {a === 'retry' ? 're-dispatches and removes' : 'deletes'} exactly{' '}
                  <strong>{count}</strong> {count === 1 ? 'row' : 'rows'}
                  {isFiltered(filter) ? ' matching the current filter' : ': every failed job'}.
                </p>
              </>
            ),
            confirmLabel: a === 'retry' ? `Retry ${count}` : `Forget ${count}`,
            danger: a === 'forget',
          }),
      })
      switch (outcome.kind) {
        case 'done':
          return `${outcome.count} ${outcome.count === 1 ? 'job' : 'jobs'} ${action === 'retry' ? 're-dispatched' : 'forgotten'}.`
        case 'nothing':
          return 'No failed job matches the filter: nothing to do.'
        case 'cancelled':
          return 'Cancelled: nothing was changed.'
      }
    })

  const apply = (e: FormEvent) => {
    e.preventDefault()
    setPage(1)
    setFilter({ ...draft })
  }
  const clear = () => {
    setDraft(EMPTY_FILTER)
    setFilter(EMPTY_FILTER)
    setPage(1)
  }
  const field = (key: keyof Filter, label: string, type = 'text') => (
    <label className="block text-xs font-medium text-slate-700 dark:text-slate-300">
      {label}
      <input
        type={type}
        name={key}
        value={draft[key]}
        onChange={(e) => setDraft({ ...draft, [key]: e.target.value })}
        className={inputClass}
      />
    </label>
  )

  return (
    <section aria-labelledby="failed-title" className="space-y-3">
      <h2 id="failed-title" className="text-lg font-semibold">
        Failed jobs
      </h2>
      <form
        onSubmit={apply}
        aria-label="Filter failed jobs"
        className="grid grid-cols-1 gap-3 rounded-lg border border-slate-200 bg-white p-3 sm:grid-cols-2 lg:grid-cols-5 dark:border-slate-800 dark:bg-slate-900"
      >
        {field('job_name', 'Job name')}
        {field('queue', 'Queue')}
        {field('error', 'Error contains')}
        {field('failed_from', 'Failed from', 'datetime-local')}
        {field('failed_before', 'Failed before', 'datetime-local')}
        <div className="flex flex-wrap gap-2 sm:col-span-2 lg:col-span-5">
          <button type="submit" className={buttonClass('primary')}>
            Apply filter
          </button>
          <button type="button" className={buttonClass('plain')} onClick={clear}>
            Clear
          </button>
          <span className="grow" />
          <button type="button" className={buttonClass('plain')} disabled={busy} onClick={() => bulk('retry')}>
            Bulk retry
          </button>
          <button type="button" className={buttonClass('danger')} disabled={busy} onClick={() => bulk('forget')}>
            Bulk forget
          </button>
        </div>
      </form>
      {notice && (
        <p role="status" className="rounded-md bg-emerald-50 px-3 py-2 text-sm text-emerald-900 dark:bg-emerald-950 dark:text-emerald-100">
          {notice}
        </p>
      )}
      {error && (
        <Alert>{error}</Alert>
      )}
      <div className={tableBoxClass}>
        <table className="w-full text-sm" aria-label="Failed jobs">
          <thead className={tableHeadClass}>
            <tr>
              <th scope="col" className="px-3 py-2">
                Job
              </th>
              <th scope="col" className="px-3 py-2">
                Queue
              </th>
              <th scope="col" className="px-3 py-2">
                Error
              </th>
              <th scope="col" className="px-3 py-2 text-right">
                Attempts
              </th>
              <th scope="col" className="px-3 py-2" aria-sort={sort === 'failed_at' ? 'ascending' : 'descending'}>
                <button
                  type="button"
                  className="uppercase hover:underline"
                  onClick={() => {
                    setSort(sort === 'failed_at' ? '-failed_at' : 'failed_at')
                    setPage(1)
                  }}
                >
                  Failed at {sort === 'failed_at' ? '↑' : '↓'}
                </button>
              </th>
              <th scope="col" className="px-3 py-2 text-right">
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {rows?.map((row) => (
              <tr key={row.id} data-id={row.id} className="border-t border-slate-200 align-top dark:border-slate-800">
                <td className="px-3 py-2 font-mono whitespace-nowrap">
                  <button type="button" className="text-blue-700 hover:underline dark:text-blue-400" onClick={() => setDetail(row.id)}>
                    {row.job_name}
                  </button>
                  <div className="text-xs text-slate-500 dark:text-slate-400">#{row.id}</div>
                </td>
                <td className="px-3 py-2 font-mono">{row.queue}</td>
                <td className="max-w-xs px-3 py-2">
                  <span className="line-clamp-2 break-words">{row.error}</span>
                </td>
                <td className="px-3 py-2 text-right tabular-nums">{row.attempts}</td>
                <td className="px-3 py-2 whitespace-nowrap">{new Date(row.failed_at).toLocaleString()}</td>
                <td className="px-3 py-2">
                  <div className="flex justify-end gap-1.5">
                    <button type="button" className={buttonClass('plain', true)} disabled={busy} onClick={() => retry(row.id)}>
                      Retry
                    </button>
                    <button type="button" className={buttonClass('danger', true)} disabled={busy} onClick={() => forget(row.id)}>
                      Forget
                    </button>
                  </div>
                </td>
              </tr>
            ))}
            {rows?.length === 0 && (
              <tr>
                <td colSpan={6} className="px-3 py-6 text-center text-slate-600 dark:text-slate-400">
                  {isFiltered(filter) ? 'No failed job matches the filter.' : 'No failed jobs.'}
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </div>
      {meta && (
        <nav aria-label="Pages" className="flex flex-wrap items-center justify-between gap-2 text-sm">
          <span data-testid="failed-total">
            {plural(meta.total)}
            {meta.last_page > 1 && ` · page ${meta.page} of ${meta.last_page}`}
          </span>
          <span className="flex gap-2">
            <button type="button" className={buttonClass('plain', true)} disabled={page <= 1} onClick={() => setPage(page - 1)}>
              Previous
            </button>
            <button
              type="button"
              className={buttonClass('plain', true)}
              disabled={page >= meta.last_page}
              onClick={() => setPage(page + 1)}
            >
              Next
            </button>
          </span>
        </nav>
      )}
      {detail !== null && <JobDetail id={detail} onClose={() => setDetail(null)} onRetry={retry} onForget={forget} />}
      {dialog}
    </section>
  )
}

