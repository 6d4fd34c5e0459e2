import { describe, expect, it } from 'vitest'
import { parseHash, rowsQuery, statusTone, viewHash, type PanelSpec } from './panels'

const spec: PanelSpec = {
  id: 'jobs',
  title: 'Jobs',
  description: null,
  key: 'job_id',
  filters: [
    { param: 'filter[state]', label: 'State', kind: 'select', options: ['QUEUED', 'RUNNING'] },
    { param: 'filter[client_id]', label: 'Client', kind: 'text' },
    { param: 'filter[created_at][gte]', label: 'From', kind: 'date' },
  ],
  columns: [],
  record: true,
  live: true,
}

describe('the address of a view', () => {
  it('reads the queues, a list with its filters and a record', () => {
    expect(parseHash('')).toEqual({ kind: 'queues' })
    expect(parseHash('#/')).toEqual({ kind: 'queues' })
    expect(parseHash('#/p/Bad')).toEqual({ kind: 'queues' })
    const list = parseHash('#/p/jobs?filter%5Bstate%5D=RUNNING&page=2')
    expect(list.kind).toBe('panel')
    if (list.kind === 'panel') {
      expect(list.panel).toBe('jobs')
      expect(list.query.get('filter[state]')).toBe('RUNNING')
      expect(list.query.get('page')).toBe('2')
    }
    expect(parseHash('#/p/jobs/r/a%2Fb%20c')).toEqual({ kind: 'record', panel: 'jobs', id: 'a/b c' })
  })

  it('writes what it reads', () => {
    for (const hash of ['#/', '#/p/jobs', '#/p/jobs?filter%5Bstate%5D=RUNNING', '#/p/jobs/r/a%2Fb%20c']) {
      expect(viewHash(parseHash(hash))).toBe(hash)
    }
  })
})

describe('the list query', () => {
  it('sends the declared filters that have a value, and the page past the first', () => {
    const values = new URLSearchParams({
      'filter[state]': 'RUNNING',
      'filter[client_id]': '  c-1 ',
      'filter[created_at][gte]': '',
      'filter[secret]': 'x',
      page: '3',
    })
    expect(rowsQuery(spec, values).toString()).toBe(
      new URLSearchParams({ 'filter[state]': 'RUNNING', 'filter[client_id]': 'c-1', page: '3' }).toString(),
    )
    expect(rowsQuery(spec, new URLSearchParams({ page: '1' })).toString()).toBe('')
    expect(rowsQuery(spec, new URLSearchParams({ page: 'two' })).toString()).toBe('')
  })
})

describe('statuses', () => {
  it('colours states and HTTP status codes', () => {
    expect(statusTone('SUCCEEDED')).toBe('good')
    expect(statusTone('delivered')).toBe('good')
    expect(statusTone('FAILED')).toBe('bad')
    expect(statusTone('RUNNING')).toBe('busy')
    expect(statusTone('QUEUED')).toBe('waiting')
    expect(statusTone('CANCELED')).toBe('neutral')
    expect(statusTone('204')).toBe('good')
    expect(statusTone('410')).toBe('bad')
    expect(statusTone('503')).toBe('bad')
  })
})
