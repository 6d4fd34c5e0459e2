import { useEffect, useMemo, useRef, useState } from 'react'
import { buildIndex, search, type SearchEntry } from '../lib/search'
import type { Section } from '../registry'

/** The full-text index, built once (at the first search) from every page's rendered text. */
let fullIndex: Promise<SearchEntry[]> | undefined
function loadFullIndex(sections: Section[]): Promise<SearchEntry[]> {
  fullIndex ??= import('../lib/page-text').then(({ renderPage }) => buildIndex(sections, renderPage))
  return fullIndex
}

/** The search button in the header and its dialog (Ctrl-K or ⌘K anywhere). */
export function Search({ sections }: { sections: Section[] }) {
  const [open, setOpen] = useState(false)
  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'k') {
        event.preventDefault()
        setOpen((was) => !was)
      }
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [])
  return (
    <>
      <button
        type="button"
        onClick={() => setOpen(true)}
        className="flex items-center gap-3 rounded-lg p-2 text-sm text-slate-500 transition hover:bg-slate-100 sm:w-full sm:max-w-xs sm:border sm:border-slate-200 sm:bg-slate-50 sm:px-3 sm:py-1.5 sm:hover:border-slate-300 sm:hover:bg-white dark:text-slate-400 dark:hover:bg-slate-800 sm:dark:border-slate-700 sm:dark:bg-slate-900 sm:dark:hover:border-slate-600 sm:dark:hover:bg-slate-800"
        aria-label="Search the docs"
        aria-keyshortcuts="Control+K"
      >
        <SearchIcon />
        <span className="hidden flex-1 text-left sm:inline">Search…</span>
        <kbd className="hidden rounded border border-slate-200 bg-white px-1.5 font-sans text-xs text-slate-400 sm:inline dark:border-slate-700 dark:bg-slate-800">Ctrl K</kbd>
      </button>
      {open && <SearchDialog sections={sections} onClose={() => setOpen(false)} />}
    </>
  )
}

function SearchDialog({ sections, onClose }: { sections: Section[]; onClose: () => void }) {
  // Titles and headings at once; the full text as soon as it is built.
  const [index, setIndex] = useState(() => buildIndex(sections))
  const [indexing, setIndexing] = useState(true)
  useEffect(() => {
    let live = true
    loadFullIndex(sections).then(
      (full) => {
        if (!live) return
        setIndex(full)
        setIndexing(false)
      },
      (error) => {
        console.warn('search: the full-text index could not be built', error)
        if (live) setIndexing(false)
      },
    )
    return () => {
      live = false
    }
  }, [sections])
  const [query, setQuery] = useState('')
  const [active, setActive] = useState(0)
  const input = useRef<HTMLInputElement>(null)
  const results = useMemo(() => search(index, query, 30), [index, query])

  useEffect(() => input.current?.focus(), [])
  useEffect(() => setActive(0), [query])

  const go = (href: string) => {
    window.location.hash = href
    onClose()
  }
  const onKeyDown = (event: React.KeyboardEvent) => {
    if (event.key === 'Escape') {
      event.preventDefault()
      onClose()
    } else if (event.key === 'ArrowDown') {
      event.preventDefault()
      setActive((i) => Math.min(i + 1, results.length - 1))
    } else if (event.key === 'ArrowUp') {
      event.preventDefault()
      setActive((i) => Math.max(i - 1, 0))
    } else if (event.key === 'Enter' && results[active]) {
      event.preventDefault()
      go(results[active].href)
    }
  }

  return (
    <div
      className="fixed inset-0 z-50 flex items-start justify-center bg-slate-900/40 px-4 pt-[12vh] backdrop-blur-sm dark:bg-slate-950/70"
      onMouseDown={(event) => event.target === event.currentTarget && onClose()}
    >
      <div role="dialog" aria-modal="true" aria-label="Search" className="w-full max-w-xl overflow-hidden rounded-xl bg-white shadow-2xl ring-1 ring-slate-900/10 dark:bg-slate-900 dark:ring-white/10">
        <div className="flex items-center gap-3 border-b border-slate-200 px-4 dark:border-slate-700">
          <SearchIcon />
          <input
            ref={input}
            type="search"
            value={query}
            onChange={(event) => setQuery(event.target.value)}
            onKeyDown={onKeyDown}
            placeholder="Search the docs: pages, headings, text, code"
            aria-label="Search pages and headings"
            aria-busy={indexing}
            className="h-12 min-w-0 flex-1 bg-transparent text-base text-slate-900 outline-none placeholder:text-slate-400 dark:text-slate-100 dark:placeholder:text-slate-500"
          />
          <kbd className="rounded border border-slate-200 px-1.5 text-xs text-slate-400 dark:border-slate-700">Esc</kbd>
        </div>
        <ul role="listbox" aria-label="Results" className="max-h-[60vh] overflow-y-auto p-2">
          {query.trim() !== '' && results.length === 0 && (
            <li className="px-3 py-6 text-center text-sm text-slate-500 dark:text-slate-400">
              {indexing ? 'Searching…' : `Nothing matches “${query}”.`}
            </li>
          )}
          {results.map((result, i) => (
            <li key={result.href} role="option" aria-selected={i === active}>
              <a
                href={result.href}
                onClick={(event) => {
                  event.preventDefault()
                  go(result.href)
                }}
                onMouseMove={() => setActive(i)}
                className={
                  'flex flex-col rounded-lg px-3 py-2 ' +
                  (i === active
                    ? 'bg-orange-50 text-orange-900 dark:bg-orange-500/15 dark:text-orange-100'
                    : 'text-slate-700 dark:text-slate-300')
                }
              >
                <span className="font-medium">{result.title}</span>
                <span className="text-xs text-slate-500 dark:text-slate-400">
                  {result.kind === 'page' ? result.section : `${result.section} › ${result.page}`}
                </span>
                {result.snippet && (
                  <span className="mt-1 line-clamp-2 text-[13px] leading-snug text-slate-600 dark:text-slate-400">
                    {result.snippet.before}
                    <mark className="rounded-sm bg-orange-100 px-0.5 text-orange-900 dark:bg-orange-400/25 dark:text-orange-100">
                      {result.snippet.match}
                    </mark>
                    {result.snippet.after}
                  </span>
                )}
              </a>
            </li>
          ))}
        </ul>
      </div>
    </div>
  )
}

function SearchIcon() {
  return (
    <svg aria-hidden="true" viewBox="0 0 20 20" className="h-4 w-4 flex-none fill-slate-400 dark:fill-slate-500">
      <path d="M8.5 2a6.5 6.5 0 0 1 5.18 10.43l3.95 3.95a.75.75 0 1 1-1.06 1.06l-3.95-3.95A6.5 6.5 0 1 1 8.5 2Zm0 1.5a5 5 0 1 0 0 10 5 5 0 0 0 0-10Z" />
    </svg>
  )
}
