import { hrefFor } from './router'
import type { Page, Section } from '../registry'

/**
 * Full-text search over the rendered pages.
 *
 * Each page is rendered to static markup (the same components the reader sees, code blocks
 * included) and cut at its `<h2>`s: one entry for the page (its title, summary and the text before
 * the first heading) and one per section, linking to `#/{slug}/{heading}`. Words are matched by
 * prefix against tokens; an identifier such as `set_json` or a word such as `fan-out` is a token
 * whole and its parts (`set`, `json`) are tokens too, so either form finds it.
 */

/** One thing search can find: a page, or a section (an `<h2>`) of a page. */
export interface SearchEntry {
  kind: 'page' | 'heading'
  /** What is shown: the page title, or the heading's. */
  title: string
  /** The page it belongs to (its own title for a page). */
  page: string
  section: string
  href: string
  /** The plain text of the entry (the page's intro, or the section's body). */
  text: string
  /** Tokens of the title (and, for a heading, of its page title). */
  titleTokens: string[]
  /** Tokens of the text. */
  bodyTokens: string[]
}

/** A search hit: the entry and a short piece of its text around the first match. */
export interface SearchResult extends SearchEntry {
  snippet?: { before: string; match: string; after: string }
}

/** Renders a page's body to HTML; `renderPage` in ./page-text does it with react-dom/server. */
export type RenderPage = (page: Page) => string

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ' }

/**
 * The text of an HTML fragment: tags dropped (block ends become spaces), entities decoded, buttons
 * (a code block's "Copy") left out.
 */
export function htmlToText(html: string): string {
  return html
    .replace(/<(script|style|button)[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<\/?(p|div|li|ul|ol|pre|h[1-6]|tr|td|th|table|section|figure|figcaption|aside|dt|dd|dl|br)\b[^>]*>/gi, ' ')
    .replace(/<[^>]+>/g, '')
    .replace(/&(#x[0-9a-f]+|#\d+|[a-z]+);/gi, (whole, code: string) => {
      if (code[0] === '#') {
        const n = code[1].toLowerCase() === 'x' ? parseInt(code.slice(2), 16) : parseInt(code.slice(1), 10)
        return Number.isFinite(n) ? String.fromCodePoint(n) : whole
      }
      return ENTITIES[code.toLowerCase()] ?? whole
    })
    .replace(/\s+/g, ' ')
    .trim()
}

/**
 * The tokens of `text`, lower-case: every run of letters, digits, `_`, `-`, `:` and `.` between
 * other characters (trimmed of punctuation at its ends), and its parts split at those joiners, and
 * the parts glued together (`fan-out` → `fan-out`, `fan`, `out`, `fanout`), and every tail after a
 * joiner (`Cache::flush_prefix` → `flush_prefix`, `event-fan-out` → `fan-out`).
 */
export function tokenize(text: string): string[] {
  const tokens = new Set<string>()
  for (const raw of text.toLowerCase().match(/[\p{L}\p{N}_\-:.#]+/gu) ?? []) {
    const word = raw.replace(/^[-:.#_]+|[-:.#]+$/g, '')
    if (!word) continue
    tokens.add(word)
    // Every tail that starts after a joiner (`Cache::flush_prefix` → `flush_prefix`, `prefix`;
    // `event-fan-out` → `fan-out`), so a query matches from any part on.
    for (const joiner of word.matchAll(/[-:.#_]+/g)) tokens.add(word.slice(joiner.index + joiner[0].length))
    const parts = word.split(/[-:.#_]+/).filter(Boolean)
    if (parts.length > 1) {
      for (const part of parts) tokens.add(part)
      tokens.add(parts.join(''))
    }
  }
  return [...tokens]
}

/** The query's words: split at spaces, trimmed of punctuation at their ends, lower-case. */
function queryWords(query: string): string[] {
  return query
    .toLowerCase()
    .split(/\s+/)
    .map((word) => word.replace(/^[^\p{L}\p{N}_]+|[^\p{L}\p{N}_]+$/gu, ''))
    .filter(Boolean)
}

/** Cuts a page's markup at each `<h2 id="…">`: the intro, then one piece per heading id. */
export function splitSections(html: string): { intro: string; sections: Map<string, string> } {
  const parts = html.split(/(?=<h2\b)/i)
  const intro = parts[0].startsWith('<h2') ? '' : parts.shift()!
  const sections = new Map<string, string>()
  for (const part of parts) {
    const id = /^<h2\b[^>]*\bid="([^"]*)"/i.exec(part)?.[1]
    if (id === undefined) continue
    // The heading's own text (and its "#" self-link) is the title, not the body.
    const body = part.replace(/^<h2\b[\s\S]*?<\/h2>/i, '')
    sections.set(id, (sections.get(id) ?? '') + body)
  }
  return { intro, sections }
}

/**
 * Every page of the registry and every section of each page. Without `render` only titles,
 * summaries and headings are indexed.
 */
export function buildIndex(sections: Section[], render?: RenderPage): SearchEntry[] {
  const entries: SearchEntry[] = []
  for (const section of sections) {
    for (const page of section.pages) {
      const { intro, sections: bodies } = splitSections(renderSafely(render, page))
      const pageText = `${page.summary} ${htmlToText(intro)}`.trim()
      entries.push({
        kind: 'page',
        title: page.title,
        page: page.title,
        section: section.title,
        href: hrefFor(page.slug),
        text: pageText,
        titleTokens: tokenize(page.title),
        bodyTokens: tokenize(`${section.title} ${pageText}`),
      })
      for (const heading of page.headings) {
        const text = htmlToText(bodies.get(heading.id) ?? '')
        entries.push({
          kind: 'heading',
          title: heading.title,
          page: page.title,
          section: section.title,
          href: hrefFor(page.slug, heading.id),
          text,
          titleTokens: tokenize(heading.title),
          bodyTokens: tokenize(`${page.title} ${text}`),
        })
      }
    }
  }
  return entries
}

/** The page's markup, or nothing (titles and headings still indexed) if it cannot be rendered. */
function renderSafely(render: RenderPage | undefined, page: Page): string {
  if (!render) return ''
  try {
    return render(page)
  } catch (error) {
    console.warn(`search: #/${page.slug} could not be rendered for the index`, error)
    return ''
  }
}

const matches = (tokens: string[], word: string) => tokens.some((token) => token.startsWith(word))

/** Where a query word first occurs in `text`, as a short snippet. */
function snippetOf(text: string, words: string[]): SearchResult['snippet'] {
  const lower = text.toLowerCase()
  for (const word of words) {
    // The word at a token start: `json` finds `set_json`'s part, not the middle of a word.
    const re = new RegExp(`(^|[^\\p{L}\\p{N}])${word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`, 'u')
    const hit = re.exec(lower)
    if (!hit) continue
    const at = hit.index + hit[1].length
    const start = Math.max(0, at - 60)
    const end = Math.min(text.length, at + word.length + 80)
    const lead = text.slice(start, at)
    return {
      before: start > 0 ? '…' + lead.replace(/^\S*\s/, '') : lead,
      match: text.slice(at, at + word.length),
      after: text.slice(at + word.length, end) + (end < text.length ? '…' : ''),
    }
  }
  return undefined
}

/**
 * Entries containing every word of `query` (each word a prefix of some token), best first: a
 * title that starts with the query, then a title that contains it, then titles that hold every
 * word, then entries that match partly in the title, then body-only matches; pages before
 * sections within each rank, then registry order. At most `PER_PAGE` entries of one page are
 * returned, so a word one page repeats in every section does not push other pages off the list.
 */
/** The most entries of one page in a result list. */
export const PER_PAGE = 3

export function search(index: SearchEntry[], query: string, limit = 12): SearchResult[] {
  const phrase = query.trim().toLowerCase()
  const words = queryWords(query)
  if (!phrase || words.length === 0) return []
  const scored: { entry: SearchEntry; order: number; score: number }[] = []
  index.forEach((entry, order) => {
    let inTitle = 0
    for (const word of words) {
      if (matches(entry.titleTokens, word)) inTitle++
      else if (!matches(entry.bodyTokens, word)) return
    }
    const title = entry.title.toLowerCase()
    const rank = title.startsWith(phrase)
      ? 0
      : title.includes(phrase)
        ? 1
        : inTitle === words.length
          ? 2
          : inTitle > 0
            ? 3
            : 4
    scored.push({ entry, order, score: rank * 2 + (entry.kind === 'page' ? 0 : 1) })
  })
  const perPage = new Map<string, number>()
  return scored
    .sort((a, b) => a.score - b.score || a.order - b.order)
    .filter(({ entry }) => {
      const seen = perPage.get(entry.page) ?? 0
      perPage.set(entry.page, seen + 1)
      return seen < PER_PAGE
    })
    .slice(0, limit)
    .map(({ entry, score }) => ({
      ...entry,
      snippet: score >= 6 ? snippetOf(entry.text, words) : undefined,
    }))
}
