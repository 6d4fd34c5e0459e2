// The dashboard's JSON API, relative to the page (`{prefix}/`), so it works under any mount point.

/** An error answer of the API, in the framework's shape `{message, error_code, errors?}`. */
export class ApiError extends Error {
  readonly status: number
  readonly code: string
  readonly headers: Headers

  constructor(status: number, code: string, message: string, headers: Headers) {
    super(message)
    this.status = status
    this.code = code
    this.headers = headers
  }
}

/** The envelope of a successful answer. */
export interface Envelope<T> {
  data: T
  message?: string
  meta?: PageMeta
}

export interface PageMeta {
  page: number
  per_page: number
  total: number
  last_page: number
}

/** One queue's counts (or the totals, without `queue`). */
export interface Counts {
  queue?: string
  ready: number
  delayed: number
  running: number
  grouped_waiting: number
  pending_failures: number
  failed: number
}

export interface QueuesReply {
  queues: Counts[]
  totals: Counts
  failed_all_queues: number
}

/** An entry of `GET api/schedule`. */
export interface ScheduleEntry {
  name: string
  cron: string
  /** RFC 3339, or null when the expression has no tick within five years. */
  next_run: string | null
  without_overlapping: boolean
}

/** A row of `GET api/failed` (no payload). */
export interface FailedRow {
  id: number
  job_id: string
  job_name: string
  queue: string
  error: string
  attempts: number
  group_id: string | null
  failed_at: string
}

/** `GET api/failed/{id}`: the row with its payload. */
export interface FailedJob extends FailedRow {
  payload: string
}

export type BulkAction = 'retry' | 'forget'

/** Where the sign-in page is, relative to the page. */
export const LOGIN_PATH = 'login'

let csrf: Promise<string | null> | null = null

/** The session's CSRF token, read once from `GET api/session` (null without a token login). */
export function csrfToken(): Promise<string | null> {
  csrf ??= fetch('api/session', { headers: { accept: 'application/json' }, credentials: 'same-origin' }).then(
    async (response) => {
      if (!response.ok) return null
      const body = (await response.json()) as Envelope<{ csrf_token: string }>
      return body.data.csrf_token
    },
    () => null,
  )
  return csrf
}

/** Forgets the cached CSRF token (after a 403, say). */
export function resetCsrf(): void {
  csrf = null
}

/** What happens when the session is gone: back to the sign-in page. */
let onUnauthorized = () => {
  window.location.assign(LOGIN_PATH)
}

/** Replaces the 401 handler (tests). */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler
}

/** Calls the API: GETs as they are, POSTs with the CSRF token and a JSON body. */
export async function api<T>(path: string, init: { method?: 'GET' | 'POST'; body?: unknown } = {}): Promise<Envelope<T>> {
  const method = init.method ?? 'GET'
  const headers: Record<string, string> = { accept: 'application/json' }
  if (method !== 'GET') {
    const token = await csrfToken()
    if (token) headers['x-csrf-token'] = token
  }
  if (init.body !== undefined) headers['content-type'] = 'application/json'
  const response = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  })
  const text = await response.text()
  let json: unknown = null
  try {
    json = text ? JSON.parse(text) : null
  } catch {
    json = null
  }
  if (!response.ok) {
    if (response.status === 401) onUnauthorized()
    const error = (json ?? {}) as { message?: string; error_code?: string }
    throw new ApiError(
      response.status,
      error.error_code ?? `HTTP_${response.status}`,
      error.message ?? `The dashboard answered ${response.status}`,
      response.headers,
    )
  }
  return json as Envelope<T>
}

/** Signs out (`POST logout` with the CSRF token), then goes to the sign-in page. */
export async function logout(): Promise<void> {
  const token = await csrfToken()
  const response = await fetch('logout', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { accept: 'application/json', ...(token ? { 'x-csrf-token': token } : {}) },
  })
  // Read to the end before leaving, so the request is not cut off by the navigation.
  await response.text()
  resetCsrf()
  window.location.assign(LOGIN_PATH)
}
