import { describe, expect, it, vi } from 'vitest'
import { ApiError } from './api'
import { bulkFlow, changedCount, type BulkDeps } from './bulk'

const conflict = (count: number) =>
  new ApiError(409, 'BULK_COUNT_CHANGED', 'changed', new Headers({ 'x-matching-count': String(count) }))

function deps(overrides: Partial<BulkDeps>): BulkDeps & { confirm: ReturnType<typeof vi.fn>; run: ReturnType<typeof vi.fn> } {
  return {
    preview: vi.fn(async () => 3),
    run: vi.fn(async (_a, _f, count: number) => count),
    confirm: vi.fn(async () => true),
    ...overrides,
  } as never
}

describe('bulk actions', () => {
  it('confirm the previewed count, then act with it', async () => {
    const d = deps({})
    await expect(bulkFlow('forget', { queue: 'mail' }, d)).resolves.toEqual({ kind: 'done', count: 3 })
    expect(d.confirm).toHaveBeenCalledWith({ action: 'forget', count: 3, changed: undefined })
    expect(d.run).toHaveBeenCalledWith('forget', { queue: 'mail' }, 3)
  })

  it('do nothing when the user cancels', async () => {
    const d = deps({ confirm: vi.fn(async () => false) })
    await expect(bulkFlow('retry', {}, d)).resolves.toEqual({ kind: 'cancelled' })
    expect(d.run).not.toHaveBeenCalled()
  })

  it('ask nothing when no row matches', async () => {
    const d = deps({ preview: vi.fn(async () => 0) })
    await expect(bulkFlow('retry', {}, d)).resolves.toEqual({ kind: 'nothing' })
    expect(d.confirm).not.toHaveBeenCalled()
  })

  it('on 409 show the new count and ask again', async () => {
    const run = vi.fn().mockRejectedValueOnce(conflict(5)).mockResolvedValueOnce(5)
    const d = deps({ run })
    await expect(bulkFlow('forget', {}, d)).resolves.toEqual({ kind: 'done', count: 5 })
    expect(d.confirm).toHaveBeenNthCalledWith(2, { action: 'forget', count: 5, changed: 3 })
    expect(run).toHaveBeenNthCalledWith(2, 'forget', {}, 5)
  })

  it('stop when the user cancels the second confirmation', async () => {
    const confirm = vi.fn().mockResolvedValueOnce(true).mockResolvedValueOnce(false)
    const d = deps({ run: vi.fn().mockRejectedValue(conflict(1)), confirm })
    await expect(bulkFlow('retry', {}, d)).resolves.toEqual({ kind: 'cancelled' })
    expect(d.run).toHaveBeenCalledTimes(1)
  })

  it('pass other errors on', async () => {
    const d = deps({ run: vi.fn().mockRejectedValue(new ApiError(403, 'CSRF_TOKEN_INVALID', 'no', new Headers())) })
    await expect(bulkFlow('retry', {}, d)).rejects.toThrow('no')
  })

  it('read the count of a 409 from its header only', () => {
    expect(changedCount(conflict(7))).toBe(7)
    expect(changedCount(new ApiError(409, 'X', 'm', new Headers()))).toBeNull()
    expect(changedCount(new ApiError(400, 'X', 'm', new Headers({ 'x-matching-count': '2' })))).toBeNull()
    expect(changedCount(new Error('plain'))).toBeNull()
  })
})
