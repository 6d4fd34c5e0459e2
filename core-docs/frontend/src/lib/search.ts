import { hrefFor } from './router'
import type { Section } from '../registry'

/** One thing search can find: a page, or a heading on a page. */
export interface SearchEntry {
  kind: 'page' | 'heading'
  /** What is shown and matched. */
  title: string
  /** The page it belongs to (its own title for a page). */
  page: string
  section: string
  href: string
  /** Lower-case text matched against the query. */
  haystack: string
}

/** Every page title and every heading of the registry. */
export function buildIndex(sections: Section[]): SearchEntry[] {
  const entries: SearchEntry[] = []
  for (const section of sections) {
    for (const page of section.pages) {
      entries.push({
        kind: 'page',
        title: page.title,
        page: page.title,
        section: section.title,
        href: hrefFor(page.slug),
        haystack: `${page.title} ${page.summary}`.toLowerCase(),
      })
      for (const heading of page.headings) {
        entries.push({
          kind: 'heading',
          title: heading.title,
          page: page.title,
          section: section.title,
          href: hrefFor(page.slug, heading.id),
          haystack: `${heading.title} ${page.title}`.toLowerCase(),
        })
      }
    }
  }
  return entries
}

/**
 * Entries containing every word of `query`, best first: titles that start with the query, then
 * titles that contain it, then the rest; pages before headings within each group.
 */
export function search(index: SearchEntry[], query: string, limit = 12): SearchEntry[] {
  const q = query.trim().toLowerCase()
  if (!q) return []
  const words = q.split(/\s+/)
  const score = (entry: SearchEntry) => {
    const title = entry.title.toLowerCase()
    const base = title.startsWith(q) ? 0 : title.includes(q) ? 2 : 4
    return base + (entry.kind === 'page' ? 0 : 1)
  }
  return index
    .filter((entry) => words.every((word) => entry.haystack.includes(word)))
    .map((entry, order) => ({ entry, order, score: score(entry) }))
    .sort((a, b) => a.score - b.score || a.order - b.order)
    .slice(0, limit)
    .map(({ entry }) => entry)
}
