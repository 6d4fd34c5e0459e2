import { describe, expect, it } from 'vitest'
import { EMPTY_FILTER, filterBody, isFiltered, listQuery, localToIso } from './filter'

describe('the filter as the API takes it', () => {
  it('leaves out empty values and trims text', () => {
    expect(filterBody(EMPTY_FILTER)).toEqual({})
    expect(filterBody({ ...EMPTY_FILTER, job_name: '  mail ', error: ' ' })).toEqual({ job_name: 'mail' })
    expect(isFiltered({ ...EMPTY_FILTER, queue: '   ' })).toBe(false)
    expect(isFiltered({ ...EMPTY_FILTER, queue: 'mail' })).toBe(true)
  })

  it('sends times as RFC 3339 in UTC', () => {
    const local = '2026-12-05T10:30'
    expect(localToIso(local)).toBe(new Date(local).toISOString())
    expect(filterBody({ ...EMPTY_FILTER, failed_from: local })).toEqual({ failed_from: new Date(local).toISOString() })
    // A value the browser cannot read goes as it is, for the server to refuse with its message.
    expect(localToIso('yesterday')).toBe('yesterday')
    expect(localToIso('')).toBe('')
  })

  it('builds the list query with the same names, paging and sort', () => {
    const query = new URLSearchParams(
      listQuery({ ...EMPTY_FILTER, job_name: 'mail', error: '100% & more', queue: 'a b' }, 3, 'failed_at', 25),
    )
    expect(Object.fromEntries(query)).toEqual({
      job_name: 'mail',
      queue: 'a b',
      error: '100% & more',
      page: '3',
      per_page: '25',
      sort: 'failed_at',
    })
    expect(listQuery(EMPTY_FILTER, 1, '-failed_at')).toBe('per_page=25&sort=-failed_at')
  })
})
