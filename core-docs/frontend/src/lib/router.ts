import { useSyncExternalStore } from 'react'

/** Where a hash points: `#/caching` → page `caching`; `#/caching/tags` → its heading `tags`. */
export interface Location {
  slug: string
  heading?: string
}

export function parseHash(hash: string): Location {
  const path = hash.replace(/^#/, '').replace(/^\/+/, '')
  const [slug = '', heading] = path.split('/').map((part) => safeDecode(part))
  return heading ? { slug, heading } : { slug }
}

export function hrefFor(slug: string, heading?: string): string {
  return heading ? `#/${slug}/${heading}` : `#/${slug}`
}

function safeDecode(part: string): string {
  try {
    return decodeURIComponent(part)
  } catch {
    return part
  }
}

function subscribe(onChange: () => void): () => void {
  window.addEventListener('hashchange', onChange)
  return () => window.removeEventListener('hashchange', onChange)
}

/** The current hash, re-rendering on every `hashchange` (links, back and forward buttons). */
export function useHash(): string {
  return useSyncExternalStore(
    subscribe,
    () => window.location.hash,
    () => '',
  )
}

/*
 * Scroll positions per history entry. Each entry gets a key in `history.state` the first time it is
 * shown; every scroll records `scrollY` under the current entry's key (kept in sessionStorage, so a
 * reload keeps it too). When the hash changes to an entry that has a position (back, forward,
 * reload), the layout restores it instead of jumping to the top. The browser's own restoration is
 * off: with a hash router it would fight the layout's scrolling.
 */
const STORE = 'rustforge-docs:scroll'
let positions: Record<string, number> | undefined

function load(): Record<string, number> {
  if (!positions) {
    try {
      positions = JSON.parse(sessionStorage.getItem(STORE) ?? '{}') ?? {}
    } catch {
      positions = {}
    }
  }
  return positions!
}

/** The key of the history entry shown, given to it now if it has none. */
export function entryKey(): string {
  const state: unknown = window.history.state
  const key = state && typeof state === 'object' ? (state as { scrollKey?: unknown }).scrollKey : undefined
  if (typeof key === 'string') return key
  const fresh = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
  window.history.replaceState({ ...(state && typeof state === 'object' ? state : {}), scrollKey: fresh }, '')
  return fresh
}

/** The scroll position the current history entry was left at, if it was shown before. */
export function savedScroll(): number | undefined {
  return load()[entryKey()]
}

/** Records scroll positions per history entry until the returned function is called. */
export function rememberScroll(): () => void {
  if ('scrollRestoration' in window.history) window.history.scrollRestoration = 'manual'
  let persist = 0
  const onScroll = () => {
    load()[entryKey()] = window.scrollY
    window.clearTimeout(persist)
    persist = window.setTimeout(save, 200)
  }
  const save = () => {
    try {
      const all = load()
      // Keep the newest entries only: keys start with their creation time.
      const keys = Object.keys(all).sort()
      for (const old of keys.slice(0, Math.max(0, keys.length - 200))) delete all[old]
      sessionStorage.setItem(STORE, JSON.stringify(all))
    } catch {
      // Storage full or denied: positions still live for this page load.
    }
  }
  window.addEventListener('scroll', onScroll, { passive: true })
  window.addEventListener('pagehide', save)
  return () => {
    window.removeEventListener('scroll', onScroll)
    window.removeEventListener('pagehide', save)
    window.clearTimeout(persist)
  }
}
