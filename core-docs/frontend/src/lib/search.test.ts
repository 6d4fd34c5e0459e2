import { describe, expect, it } from 'vitest'
import { pages, sections } from '../registry'
import { buildIndex, search } from './search'

const index = buildIndex(sections)

describe('search', () => {
  it('indexes every page and every heading', () => {
    const headings = pages.reduce((n, page) => n + page.headings.length, 0)
    expect(index).toHaveLength(pages.length + headings)
  })

  it('finds a page by its title, first', () => {
    const [first] = search(index, 'caching')
    expect(first).toMatchObject({ kind: 'page', title: 'Caching', href: '#/caching' })
  })

  it('finds a heading and links to it on its page', () => {
    const results = search(index, 'stale-while')
    expect(results[0]).toMatchObject({ kind: 'heading', page: 'Caching', href: '#/caching/flexible' })
  })

  it('needs every word to match', () => {
    expect(search(index, 'tiered cache').map((r) => r.href)).toContain('#/caching/tiered')
    expect(search(index, 'tiered zebra')).toEqual([])
  })

  it('returns nothing for an empty query', () => {
    expect(search(index, '   ')).toEqual([])
  })
})
