import { useEffect, useState, type FormEvent } from 'react'
import type { PageMeta } from '../lib/api'
import {
  followRecord,
  loadRows,
  viewHash,
  type Cell,
  type PanelColumn,
  type PanelRecord,
  type PanelSpec,
  type Section,
} from '../lib/panels'
import { buttonClass } from './ConfirmDialog'
import { formatDuration } from '../lib/format'
import { Alert, StatusBadge, TableHead, tableBoxClass } from './ui'

/** One value drawn as its column or field says. */
export function CellValue({ cell, value }: { cell: Cell; value: unknown }) {
  if (value === null || value === undefined || value === '') return <span className="text-slate-400">–</span>
  const text = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value)
  switch (cell) {
    case 'code':
      return <span className="font-mono break-all">{text}</span>
    case 'status':
      return <StatusBadge value={text} />
    case 'time': {
      const date = new Date(text)
      return <time dateTime={text}>{Number.isNaN(date.getTime()) ? text : date.toLocaleString()}</time>
    }
    case 'number':
      return <span className="tabular-nums">{text}</span>
    case 'duration':
      return <span className="tabular-nums">{formatDuration(Number(text))}</span>
    case 'link':
      return (
        <a className="text-blue-700 hover:underline dark:text-blue-400" href={text} rel="noreferrer" target="_blank">
          {text}
        </a>
      )
    default:
      return <span className="break-words">{text}</span>
  }
}

function cellAlign(cell: Cell): string {
  return cell === 'number' || cell === 'duration' ? 'text-right' : ''
}

/** A table of rows drawn by `columns`. */
function RowsTable({
  label,
  columns,
  rows,
  empty,
  rowKey,
  open,
}: {
  label: string
  columns: PanelColumn[]
  rows: Record<string, unknown>[]
  empty: string
  rowKey?: string
  open?: (id: string) => string
}) {
  return (
    <div className={tableBoxClass}>
      <table className="w-full text-sm" aria-label={label}>
        <TableHead columns={columns.map((column) => ({ label: column.label, right: cellAlign(column.cell) !== '' }))} />
        <tbody>
          {rows.map((row, index) => {
            const id = rowKey ? String(row[rowKey] ?? '') : ''
            return (
              <tr key={id || index} data-row={id || undefined} className="border-t border-slate-200 align-top dark:border-slate-800">
                {columns.map((column, i) => (
                  <td key={column.key} className={`px-3 py-2 ${cellAlign(column.cell)} ${column.cell === 'time' ? 'whitespace-nowrap' : ''}`}>
                    {i === 0 && open && id ? (
                      <a className="font-mono text-blue-700 hover:underline dark:text-blue-400" href={open(id)}>
                        {String(row[column.key] ?? id)}
                      </a>
                    ) : (
                      <CellValue cell={column.cell} value={row[column.key]} />
                    )}
                  </td>
                ))}
              </tr>
            )
          })}
          {rows.length === 0 && (
            <tr>
              <td colSpan={columns.length} className="px-3 py-6 text-center text-slate-600 dark:text-slate-400">
                {empty}
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  )
}

const inputClass =
  'mt-1 block w-full rounded-md border border-slate-300 bg-white px-2 py-1.5 text-sm dark:border-slate-700 dark:bg-slate-950'

/** A panel's list: its filters (kept in the address), its rows, and the pages. */
export function PanelList({ spec, query, onQuery }: { spec: PanelSpec; query: URLSearchParams; onQuery: (query: URLSearchParams) => void }) {
  const [rows, setRows] = useState<Record<string, unknown>[] | null>(null)
  const [meta, setMeta] = useState<PageMeta | null>(null)
  const [problem, setProblem] = useState<string | null>(null)
  const queryText = query.toString()

  useEffect(() => {
    let live = true
    loadRows(spec, new URLSearchParams(queryText)).then(
      (reply) => {
        if (!live) return
        setRows(reply.data)
        setMeta(reply.meta ?? null)
        setProblem(null)
      },
      (error: unknown) => live && setProblem(error instanceof Error ? error.message : String(error)),
    )
    return () => {
      live = false
    }
  }, [spec, queryText])

  const submit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault()
    const next = new URLSearchParams()
    for (const [name, value] of new FormData(event.currentTarget)) {
      if (typeof value === 'string' && value.trim()) next.set(name, value.trim())
    }
    onQuery(next)
  }
  const page = (n: number) => {
    const next = new URLSearchParams(queryText)
    next.set('page', String(n))
    onQuery(next)
  }

  return (
    <section aria-labelledby="panel-title" className="space-y-3" data-panel={spec.id}>
      <div>
        <h2 id="panel-title" className="text-lg font-semibold">
          {spec.title}
        </h2>
        {spec.description && <p className="text-sm text-slate-600 dark:text-slate-400">{spec.description}</p>}
      </div>
      {spec.filters.length > 0 && (
        <form
          key={queryText}
          onSubmit={submit}
          aria-label={`Filter ${spec.title}`}
          className="grid grid-cols-1 gap-3 rounded-lg border border-slate-200 bg-white p-3 sm:grid-cols-2 lg:grid-cols-5 dark:border-slate-800 dark:bg-slate-900"
        >
          {spec.filters.map((filter) => (
            <label key={filter.param} className="block text-xs font-medium text-slate-700 dark:text-slate-300">
              {filter.label}
              {filter.kind === 'select' ? (
                <select name={filter.param} defaultValue={query.get(filter.param) ?? ''} className={inputClass}>
                  <option value="">Any</option>
                  {filter.options.map((option) => (
                    <option key={option} value={option}>
                      {option}
                    </option>
                  ))}
                </select>
              ) : (
                <input
                  name={filter.param}
                  type={filter.kind === 'date' ? 'date' : 'text'}
                  defaultValue={query.get(filter.param) ?? ''}
                  className={inputClass}
                />
              )}
            </label>
          ))}
          <div className="flex flex-wrap gap-2 sm:col-span-2 lg:col-span-5">
            <button type="submit" className={buttonClass('primary')}>
              Apply filters
            </button>
            <button type="button" className={buttonClass('plain')} onClick={() => onQuery(new URLSearchParams())}>
              Clear
            </button>
          </div>
        </form>
      )}
      {problem && <Alert>{problem}</Alert>}
      <RowsTable
        label={spec.title}
        columns={spec.columns}
        rows={rows ?? []}
        empty={rows === null ? 'Loading…' : 'Nothing matches these filters'}
        rowKey={spec.key}
        open={spec.record ? (id) => viewHash({ kind: 'record', panel: spec.id, id }) : undefined}
      />
      {meta && (
        <nav aria-label="Pages" className="flex flex-wrap items-center justify-between gap-2 text-sm">
          <span data-testid="panel-total">
            {meta.total} {meta.total === 1 ? 'row' : 'rows'} · page {meta.page} of {Math.max(meta.last_page, 1)}
          </span>
          <span className="flex gap-2">
            <button type="button" className={buttonClass('plain', true)} disabled={meta.page <= 1} onClick={() => page(meta.page - 1)}>
              Previous
            </button>
            <button
              type="button"
              className={buttonClass('plain', true)}
              disabled={meta.page >= meta.last_page}
              onClick={() => page(meta.page + 1)}
            >
              Next
            </button>
          </span>
        </nav>
      )}
    </section>
  )
}

function SectionView({ section }: { section: Section }) {
  return (
    <section className="space-y-2" data-section={section.title}>
      <h3 className="font-semibold">{section.title}</h3>
      {section.kind === 'table' && <RowsTable label={section.title} columns={section.columns} rows={section.rows} empty={section.empty} />}
      {section.kind === 'json' && (
        <pre className="max-h-96 overflow-auto rounded-md bg-slate-100 p-3 font-mono text-xs text-slate-900 dark:bg-slate-800 dark:text-slate-100">
          {JSON.stringify(section.value, null, 2)}
        </pre>
      )}
      {section.kind === 'links' &&
        (section.links.length === 0 ? (
          <p className="text-sm text-slate-600 dark:text-slate-400">{section.empty}</p>
        ) : (
          <ul className="space-y-1 text-sm">
            {section.links.map((link) => (
              <li key={link.href}>
                <a className="text-blue-700 hover:underline dark:text-blue-400" href={link.href} rel="noreferrer" target="_blank">
                  {link.label}
                </a>
                {link.detail && <span className="ml-2 text-slate-600 dark:text-slate-400">{link.detail}</span>}
              </li>
            ))}
          </ul>
        ))}
    </section>
  )
}

/** One record: status, fields, the timeline with the time between entries, sections; live. */
export function RecordView({ spec, id }: { spec: PanelSpec; id: string }) {
  const [record, setRecord] = useState<PanelRecord | null>(null)
  const [problem, setProblem] = useState<string | null>(null)
  const [live, setLive] = useState(false)

  useEffect(() => {
    setRecord(null)
    return followRecord(spec, id, { onRecord: setRecord, onProblem: setProblem, onLive: setLive })
  }, [spec, id])

  return (
    <article aria-labelledby="record-title" className="space-y-5" data-record={id}>
      <div className="flex flex-wrap items-center gap-3">
        <a className={buttonClass('plain', true)} href={viewHash({ kind: 'panel', panel: spec.id, query: new URLSearchParams() })}>
          ← {spec.title}
        </a>
        <h2 id="record-title" className="text-lg font-semibold break-all">
          {record?.title ?? id}
        </h2>
        {record?.status && <StatusBadge value={record.status} />}
        <span role="status" data-testid="record-live" className="text-xs text-slate-600 dark:text-slate-400">
          {record?.finished ? 'Finished' : live ? '● Live' : record ? 'Not live' : 'Loading…'}
        </span>
      </div>
      {problem && <Alert>{problem}</Alert>}
      {record && (
        <>
          <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1 text-sm">
            {record.fields.map((field) => (
              <div key={field.label} className="contents">
                <dt className="text-slate-600 dark:text-slate-400">{field.label}</dt>
                <dd data-field={field.label}>
                  <CellValue cell={field.cell} value={field.value} />
                </dd>
              </div>
            ))}
          </dl>
          <section className="space-y-2">
            <h3 className="font-semibold">Timeline</h3>
            {record.timeline.length === 0 ? (
              <p className="text-sm text-slate-600 dark:text-slate-400">Nothing yet</p>
            ) : (
              <ol aria-label="Timeline" className="space-y-0 border-l-2 border-slate-200 pl-4 text-sm dark:border-slate-700">
                {record.timeline.map((entry, index) => (
                  <li key={`${entry.at}-${index}`} data-timeline={entry.label} className="relative pb-3">
                    <span className="absolute top-1.5 -left-[1.3rem] h-2 w-2 rounded-full bg-slate-400 dark:bg-slate-500" />
                    {entry.since_previous_ms !== null && (
                      <div className="mb-1 text-xs text-slate-500 dark:text-slate-400" data-gap>
                        +{formatDuration(entry.since_previous_ms)}
                      </div>
                    )}
                    <div className="flex flex-wrap items-center gap-2">
                      <StatusBadge value={entry.label} />
                      <time dateTime={entry.at} className="text-slate-600 dark:text-slate-400">
                        {new Date(entry.at).toLocaleString()}
                      </time>
                    </div>
                    {entry.detail && <p className="mt-0.5 break-words">{entry.detail}</p>}
                  </li>
                ))}
              </ol>
            )}
          </section>
          {record.sections.map((section) => (
            <SectionView key={section.title} section={section} />
          ))}
        </>
      )}
    </article>
  )
}
