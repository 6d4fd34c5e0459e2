import { describe, expect, it } from 'vitest'
import { pages, sections } from '../registry'
import { renderPage } from './page-text'
import { buildIndex, htmlToText, PER_PAGE, search, splitSections, tokenize } from './search'

const index = buildIndex(sections, renderPage)
const hrefs = (query: string) => search(index, query, 100).map((result) => result.href)

describe('tokenize', () => {
  it('keeps identifiers whole and splits them into parts', () => {
    expect(tokenize('call remember_with_tags(…) then Cache::flush_prefix.')).toEqual(
      expect.arrayContaining(['remember_with_tags', 'remember', 'with', 'tags', 'cache::flush_prefix', 'flush_prefix', 'flush', 'prefix']),
    )
  })

  it('keeps hyphenated words whole, split and glued', () => {
    expect(tokenize('Event fan-out, stale-while-revalidate')).toEqual(
      expect.arrayContaining(['fan-out', 'fan', 'out', 'fanout', 'stale-while-revalidate', 'revalidate']),
    )
    expect(tokenize('an event-fan-out job')).toEqual(expect.arrayContaining(['event-fan-out', 'fan-out', 'out']))
  })

  it('drops punctuation at the ends of a word', () => {
    expect(tokenize('(set_json), "end."')).toEqual(expect.arrayContaining(['set_json', 'end']))
    expect(tokenize('end.')).not.toContain('end.')
  })
})

describe('htmlToText and splitSections', () => {
  it('drops tags, decodes entities and separates blocks', () => {
    expect(htmlToText('<p>a &amp; b</p><button type="button"><span>Copy</span></button><pre><code><span class="token">x</span>&lt;T&gt;</code></pre>')).toBe('a & b x<T>')
  })

  it('cuts markup at each <h2> and keeps the heading text out of the body', () => {
    const { intro, sections: parts } = splitSections('<p>intro</p><section><h2 id="one">One<a>#</a></h2><p>first</p></section><h2 id="two">Two</h2><p>second</p>')
    expect(htmlToText(intro)).toBe('intro')
    expect([...parts.keys()]).toEqual(['one', 'two'])
    expect(htmlToText(parts.get('one')!)).toBe('first')
  })
})

describe('renderPage', () => {
  it('renders every page of the registry with all of its headings', () => {
    for (const page of pages) {
      const html = renderPage(page)
      for (const heading of page.headings) expect(html, `#/${page.slug}`).toContain(`id="${heading.id}"`)
    }
  })
})

describe('search', () => {
  it('indexes every page and every heading', () => {
    const headings = pages.reduce((n, page) => n + page.headings.length, 0)
    expect(index).toHaveLength(pages.length + headings)
  })

  it('indexes the rendered text of every section, code included', () => {
    for (const entry of index.filter((e) => e.kind === 'heading' && e.page === 'Caching')) {
      expect(entry.text.length, `${entry.href} has text`).toBeGreaterThan(0)
    }
    const sections = index.filter((e) => e.kind === 'heading')
    expect(sections.filter((e) => e.text.length > 0).length).toBeGreaterThan(sections.length * 0.9)
    // Code blocks count: `CacheBuilder`-style identifiers appear only inside snippets.
    expect(index.find((e) => e.href === '#/caching/setup')!.text).toMatch(/Cache::/)
  })

  it('finds a page by its title, first', () => {
    const [first] = search(index, 'caching')
    expect(first).toMatchObject({ kind: 'page', title: 'Caching', href: '#/caching' })
    expect(search(index, 'testing')[0]).toMatchObject({ kind: 'page', title: 'Testing', href: '#/testing' })
  })

  it('finds a heading and links to it on its page', () => {
    const results = search(index, 'stale-while')
    expect(results[0]).toMatchObject({ kind: 'heading', page: 'Caching', href: '#/caching/flexible' })
  })

  it('finds code identifiers in the text, whole or by their parts', () => {
    expect(hrefs('set_json')).toContain('#/caching/json')
    expect(hrefs('set json')).toContain('#/caching/json')
    expect(hrefs('remember_with_tags').some((href) => href.startsWith('#/caching/'))).toBe(true)
    expect(hrefs('flush_prefix')).toContain('#/caching/bulk')
  })

  it('finds hyphenated words wherever a page says them', () => {
    const having = pages.filter((page) => /fan-out/i.test(htmlToText(renderPage(page))))
    expect(having.length).toBeGreaterThan(0)
    const found = hrefs('fan-out')
    for (const page of having) expect(found.some((href) => href === `#/${page.slug}` || href.startsWith(`#/${page.slug}/`))).toBe(true)
  })

  it('shows at most a few entries of one page, so other pages stay on the list', () => {
    const results = search(index, 'fan-out', 1000)
    const counts = new Map<string, number>()
    for (const r of results) counts.set(r.page, (counts.get(r.page) ?? 0) + 1)
    expect(Math.max(...counts.values())).toBeLessThanOrEqual(PER_PAGE)
    expect(counts.size).toBeGreaterThan(1)
  })

  it('ranks a title match above a heading above body text', () => {
    const results = search(index, 'tags', 100)
    const firstBody = results.findIndex((r) => !r.titleTokens.some((t) => t.startsWith('tags')))
    expect(firstBody).toBeGreaterThan(0)
    expect(results.slice(firstBody).every((r) => !r.titleTokens.some((t) => t.startsWith('tags')))).toBe(true)
  })

  it('shows the context of a body match', () => {
    const hit = search(index, 'set_json', 100).find((r) => r.href === '#/caching/json')!
    expect(hit.snippet?.match.toLowerCase()).toBe('set_json')
    expect(hit.snippet!.before.length + hit.snippet!.after.length).toBeGreaterThan(20)
  })

  it('needs every word to match', () => {
    expect(hrefs('tiered cache')).toContain('#/caching/tiered')
    expect(search(index, 'tiered zebraqx')).toEqual([])
  })

  it('returns nothing for an empty query', () => {
    expect(search(index, '   ')).toEqual([])
  })

  it('works on titles and headings alone without a renderer', () => {
    const light = buildIndex(sections)
    expect(search(light, 'stale-while')[0]).toMatchObject({ href: '#/caching/flexible' })
  })
})
