import { useEffect, useMemo, useRef, useState } from 'react'
import { buildIndex, search } from '../lib/search'
import type { Section } from '../registry'

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
        className="flex w-full max-w-xs items-center gap-3 rounded-lg border border-slate-200 bg-slate-50 px-3 py-1.5 text-sm text-slate-500 transition hover:border-slate-300 hover:bg-white"
        aria-label="Search the docs"
        aria-keyshortcuts="Control+K"
      >
        <SearchIcon />
        <span className="flex-1 text-left">Search…</span>
        <kbd className="hidden rounded border border-slate-200 bg-white px-1.5 font-sans text-xs text-slate-400 sm:inline">Ctrl K</kbd>
      </button>
      {open && <SearchDialog sections={sections} onClose={() => setOpen(false)} />}
    </>
  )
}

function SearchDialog({ sections, onClose }: { sections: Section[]; onClose: () => void }) {
  const index = useMemo(() => buildIndex(sections), [sections])
  const [query, setQuery] = useState('')
  const [active, setActive] = useState(0)
  const input = useRef<HTMLInputElement>(null)
  const results = useMemo(() => search(index, query), [index, query])

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
      className="fixed inset-0 z-50 flex items-start justify-center bg-slate-900/40 px-4 pt-[12vh] backdrop-blur-sm"
      onMouseDown={(event) => event.target === event.currentTarget && onClose()}
    >
      <div role="dialog" aria-modal="true" aria-label="Search" className="w-full max-w-xl overflow-hidden rounded-xl bg-white shadow-2xl ring-1 ring-slate-900/10">
        <div className="flex items-center gap-3 border-b border-slate-200 px-4">
          <SearchIcon />
          <input
            ref={input}
            type="search"
            value={query}
            onChange={(event) => setQuery(event.target.value)}
            onKeyDown={onKeyDown}
            placeholder="Search pages and headings"
            aria-label="Search pages and headings"
            className="h-12 flex-1 bg-transparent text-base text-slate-900 outline-none placeholder:text-slate-400"
          />
          <kbd className="rounded border border-slate-200 px-1.5 text-xs text-slate-400">Esc</kbd>
        </div>
        <ul role="listbox" aria-label="Results" className="max-h-[60vh] overflow-y-auto p-2">
          {query.trim() !== '' && results.length === 0 && (
            <li className="px-3 py-6 text-center text-sm text-slate-500">Nothing matches “{query}”.</li>
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
                  'flex flex-col rounded-lg px-3 py-2 ' + (i === active ? 'bg-orange-50 text-orange-900' : 'text-slate-700')
                }
              >
                <span className="font-medium">{result.title}</span>
                <span className="text-xs text-slate-500">
                  {result.kind === 'page' ? result.section : `${result.section} › ${result.page}`}
                </span>
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
    <svg aria-hidden="true" viewBox="0 0 20 20" className="h-4 w-4 flex-none fill-slate-400">
      <path d="M8.5 2a6.5 6.5 0 0 1 5.18 10.43l3.95 3.95a.75.75 0 1 1-1.06 1.06l-3.95-3.95A6.5 6.5 0 1 1 8.5 2Zm0 1.5a5 5 0 1 0 0 10 5 5 0 0 0 0-10Z" />
    </svg>
  )
}
