// Bulk retry or forget on a filter, never in one click: preview the count, have the user confirm
// exactly that count, act with `confirm_count`, and when the rows changed meanwhile (409), show
// the new count and ask again.

import { ApiError, type BulkAction } from './api'
import type { Filter } from './filter'

export interface BulkDeps {
  /** `POST api/failed/bulk/preview`: how many rows the action would touch now. */
  preview: (action: BulkAction, filter: Partial<Filter>) => Promise<number>
  /** `POST api/failed/bulk` with `confirm_count`: the rows touched. */
  run: (action: BulkAction, filter: Partial<Filter>, confirmCount: number) => Promise<number>
  /** Asks the user; `changed` is the count that was confirmed before, when the rows changed. */
  confirm: (request: { action: BulkAction; count: number; changed?: number }) => Promise<boolean>
}

export type BulkOutcome =
  | { kind: 'done'; count: number }
  | { kind: 'cancelled' }
  | { kind: 'nothing' }

/** The count a 409 `BULK_COUNT_CHANGED` carries (its `x-matching-count` header), else null. */
export function changedCount(error: unknown): number | null {
  if (!(error instanceof ApiError) || error.status !== 409) return null
  const header = error.headers.get('x-matching-count')
  const count = header === null ? NaN : Number(header)
  return Number.isInteger(count) && count >= 0 ? count : null
}

/** Runs the whole flow; at most `maxRounds` confirmations before giving up with the error. */
export async function bulkFlow(
  action: BulkAction,
  filter: Partial<Filter>,
  deps: BulkDeps,
  maxRounds = 5,
): Promise<BulkOutcome> {
  let count = await deps.preview(action, filter)
  if (count === 0) return { kind: 'nothing' }
  let changed: number | undefined
  for (let round = 0; ; round++) {
    if (!(await deps.confirm({ action, count, changed }))) return { kind: 'cancelled' }
    try {
      return { kind: 'done', count: await deps.run(action, filter, count) }
    } catch (error) {
      const now = changedCount(error)
      if (now === null || round + 1 >= maxRounds) throw error
      if (now === 0) return { kind: 'nothing' }
      changed = count
      count = now
    }
  }
}
