// The failed-jobs filter: the same names in the list's query string and in the bulk routes'
// `filter` object, so a bulk action touches exactly the rows the list shows.

export interface Filter {
  job_name: string
  queue: string
  error: string
  /** A `datetime-local` value (the browser's time zone), or empty. */
  failed_from: string
  /** Likewise. */
  failed_before: string
}

export const EMPTY_FILTER: Filter = { job_name: '', queue: '', error: '', failed_from: '', failed_before: '' }

export type SortOrder = 'failed_at' | '-failed_at'

/** A `datetime-local` value as RFC 3339 in UTC (empty stays empty; a bad value is kept as is for
 * the server to refuse with its message). */
export function localToIso(value: string): string {
  const trimmed = value.trim()
  if (!trimmed) return ''
  const date = new Date(trimmed)
  return Number.isNaN(date.getTime()) ? trimmed : date.toISOString()
}

/** The filter as the API takes it: trimmed, times in UTC, empty values left out. */
export function filterBody(filter: Filter): Partial<Filter> {
  const out: Partial<Filter> = {}
  const text = (['job_name', 'queue', 'error'] as const)
  for (const key of text) {
    const value = filter[key].trim()
    if (value) out[key] = value
  }
  for (const key of ['failed_from', 'failed_before'] as const) {
    const value = localToIso(filter[key])
    if (value) out[key] = value
  }
  return out
}

/** The query string of `GET api/failed` for a filter, page and sort. */
export function listQuery(filter: Filter, page: number, sort: SortOrder, perPage = 25): string {
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(filterBody(filter))) params.set(key, value)
  if (page > 1) params.set('page', String(page))
  params.set('per_page', String(perPage))
  params.set('sort', sort)
  return params.toString()
}

/** Whether any condition is set. */
export function isFiltered(filter: Filter): boolean {
  return Object.keys(filterBody(filter)).length > 0
}
