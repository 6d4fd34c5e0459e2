// The application's panels (`GET api/panels`): their lists, their records and the records' live
// streams. The Rust side is `core_dashboard::panel`.

import { api, type Envelope } from './api'

/** How a value is drawn. */
export type Cell = 'text' | 'code' | 'status' | 'time' | 'number' | 'duration' | 'link'

export interface PanelColumn {
  key: string
  label: string
  cell: Cell
}

export type PanelFilter =
  | { param: string; label: string; kind: 'text' }
  | { param: string; label: string; kind: 'date' }
  | { param: string; label: string; kind: 'select'; options: string[] }

export interface PanelSpec {
  id: string
  title: string
  description: string | null
  key: string
  filters: PanelFilter[]
  columns: PanelColumn[]
  /** Whether rows open a record. */
  record: boolean
  /** Whether records have a live stream. */
  live: boolean
}

export interface Field {
  label: string
  value: string
  cell: Cell
}

export interface TimelineEntry {
  at: string
  label: string
  detail: string | null
  since_previous_ms: number | null
}

export type Section =
  | { kind: 'table'; title: string; columns: PanelColumn[]; rows: Record<string, unknown>[]; empty: string }
  | { kind: 'json'; title: string; value: unknown }
  | { kind: 'links'; title: string; links: { label: string; href: string; detail: string | null }[]; empty: string }

/** One record of a panel (named `PanelRecord` here, `Record` being TypeScript's own). */
export interface PanelRecord {
  id: string
  title: string
  status: string | null
  finished: boolean
  fields: Field[]
  timeline: TimelineEntry[]
  sections: Section[]
}

/** Where the page is: the queues, a panel's list, or one of its records. */
export type View =
  | { kind: 'queues' }
  | { kind: 'panel'; panel: string; query: URLSearchParams }
  | { kind: 'record'; panel: string; id: string }

/** Reads the location hash: `#/`, `#/p/{panel}?{query}`, `#/p/{panel}/r/{id}`. */
export function parseHash(hash: string): View {
  const path = hash.replace(/^#/, '')
  const match = /^\/p\/([a-z0-9-]+)(?:\/r\/([^?]+))?(?:\?(.*))?$/.exec(path)
  if (!match) return { kind: 'queues' }
  const [, panel, id, query] = match
  if (id !== undefined) return { kind: 'record', panel, id: decodeURIComponent(id) }
  return { kind: 'panel', panel, query: new URLSearchParams(query ?? '') }
}

/** The hash of a view (the inverse of {@link parseHash}). */
export function viewHash(view: View): string {
  switch (view.kind) {
    case 'queues':
      return '#/'
    case 'panel': {
      const query = view.query.toString()
      return `#/p/${view.panel}${query ? `?${query}` : ''}`
    }
    case 'record':
      return `#/p/${view.panel}/r/${encodeURIComponent(view.id)}`
  }
}

/**
 * The query of a list request: each filter of `spec` with a non-empty value in `values`, and
 * `page` when past the first. Parameters the panel does not declare are left out.
 */
export function rowsQuery(spec: PanelSpec, values: URLSearchParams): URLSearchParams {
  const query = new URLSearchParams()
  for (const filter of spec.filters) {
    const value = values.get(filter.param)?.trim()
    if (value) query.set(filter.param, value)
  }
  const page = Number(values.get('page'))
  if (Number.isInteger(page) && page > 1) query.set('page', String(page))
  return query
}

/** The colour family of a status badge. */
export type Tone = 'good' | 'bad' | 'busy' | 'waiting' | 'neutral'

/** The tone of a status value: final successes green, failures red, work in progress blue. */
export function statusTone(value: string): Tone {
  const v = value.trim().toLowerCase()
  if (/^\d{3}$/.test(v)) {
    const code = Number(v)
    return code < 300 ? 'good' : code < 400 ? 'neutral' : 'bad'
  }
  if (['succeeded', 'success', 'delivered', 'ok', 'done', 'processed'].includes(v)) return 'good'
  if (['failed', 'failure', 'error', 'gone', 'refused', 'disabled', 'dead'].includes(v)) return 'bad'
  if (['running', 'assigned', 'active', 'retrying', 'started'].includes(v)) return 'busy'
  if (['queued', 'pending', 'scheduled', 'created', 'delayed', 'waiting', 'retried'].includes(v)) return 'waiting'
  return 'neutral'
}

/** The panels the application added, in order. */
export async function loadPanels(): Promise<PanelSpec[]> {
  return (await api<PanelSpec[]>('api/panels')).data
}

/** One page of a panel's list. */
export function loadRows(spec: PanelSpec, values: URLSearchParams): Promise<Envelope<Record<string, unknown>[]>> {
  const query = rowsQuery(spec, values).toString()
  return api<Record<string, unknown>[]>(`api/panels/${spec.id}/rows${query ? `?${query}` : ''}`)
}

function recordPath(panel: string, id: string): string {
  return `api/panels/${panel}/records/${encodeURIComponent(id)}`
}

/** One record, read once. */
export async function loadRecord(panel: string, id: string): Promise<PanelRecord> {
  return (await api<PanelRecord>(recordPath(panel, id))).data
}

/**
 * Follows a record: its live stream when the panel has one (each `record` event replaces the
 * record; the stream ends after a finished one), else one read. A stream that fails before
 * the record is finished falls back to reading it every few seconds. Returns the unsubscribe.
 */
export function followRecord(
  spec: PanelSpec,
  id: string,
  handlers: { onRecord: (record: PanelRecord) => void; onProblem: (problem: string | null) => void; onLive: (live: boolean) => void },
): () => void {
  let stopped = false
  let source: EventSource | null = null
  let timer: number | undefined
  let finished = false
  const take = (record: PanelRecord) => {
    if (stopped) return
    finished = record.finished
    handlers.onRecord(record)
    handlers.onProblem(null)
  }
  const read = () =>
    loadRecord(spec.id, id).then(take, (error: unknown) => {
      if (!stopped) handlers.onProblem(error instanceof Error ? error.message : String(error))
    })
  const poll = () => {
    if (stopped || finished) return
    void read().finally(() => {
      if (!stopped && !finished) timer = window.setTimeout(poll, 3000)
    })
  }
  if (!spec.live || typeof EventSource === 'undefined') {
    handlers.onLive(false)
    void read()
  } else {
    source = new EventSource(`${recordPath(spec.id, id)}/live`)
    source.addEventListener('open', () => handlers.onLive(true))
    source.addEventListener('record', (event) => {
      const envelope = JSON.parse((event as MessageEvent<string>).data) as Envelope<PanelRecord>
      take(envelope.data)
      if (envelope.data.finished) {
        source?.close()
        handlers.onLive(false)
      }
    })
    source.addEventListener('error', (event) => {
      const data = (event as MessageEvent<string | undefined>).data
      if (typeof data === 'string') {
        // An `error` event the server sent: the stream goes on.
        try {
          handlers.onProblem((JSON.parse(data) as { message?: string }).message ?? data)
        } catch {
          handlers.onProblem(data)
        }
        return
      }
      // The connection itself failed or ended: poll unless the record is finished.
      source?.close()
      handlers.onLive(false)
      if (!finished) poll()
    })
  }
  return () => {
    stopped = true
    source?.close()
    window.clearTimeout(timer)
  }
}
