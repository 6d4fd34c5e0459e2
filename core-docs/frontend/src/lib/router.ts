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
