import { useEffect, useMemo, useState } from 'react'
import { hrefFor } from '../lib/router'
import type { Page } from '../registry'

/**
 * How far below the top of the window a heading counts as "being read": where a heading lands
 * when a link jumps to it (html's scroll-padding-top, under the sticky header) and a bit.
 */
const READING_LINE = 140

/**
 * The id of the `<h2>` being read: the last one whose top has passed the reading line. At the very
 * bottom of the page (where the last short sections can never reach that line) the heading the
 * hash points to wins if it is on screen, else the last heading on screen.
 */
export function useCurrentHeading(ids: string[], hashHeading?: string): string | undefined {
  const [current, setCurrent] = useState<string | undefined>(hashHeading)
  useEffect(() => {
    let frame = 0
    const measure = () => {
      frame = 0
      const tops = ids
        .map((id) => [id, document.getElementById(id)?.getBoundingClientRect().top] as const)
        .filter((pair): pair is readonly [string, number] => pair[1] !== undefined)
      let found: string | undefined
      for (const [id, top] of tops) if (top <= READING_LINE) found = id
      const atBottom = window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 2
      if (atBottom && window.scrollY > 0) {
        const visible = tops.filter(([, top]) => top >= 0 && top < window.innerHeight)
        const hashed = visible.find(([id]) => id === hashHeading)
        found = hashed?.[0] ?? visible.at(-1)?.[0] ?? found
      }
      setCurrent(found)
    }
    const schedule = () => {
      if (!frame) frame = window.requestAnimationFrame(measure)
    }
    measure()
    window.addEventListener('scroll', schedule, { passive: true })
    window.addEventListener('resize', schedule)
    return () => {
      window.removeEventListener('scroll', schedule)
      window.removeEventListener('resize', schedule)
      if (frame) window.cancelAnimationFrame(frame)
    }
  }, [ids, hashHeading])
  return current
}

/** The page's sections, the one being read marked (`aria-current="true"`). */
export function OnThisPage({ page, hashHeading }: { page: Page; hashHeading?: string }) {
  const ids = useMemo(() => page.headings.map((heading) => heading.id), [page])
  const current = useCurrentHeading(ids, hashHeading)
  return (
    <nav aria-label="On this page">
      <p className="text-xs font-semibold uppercase tracking-wider text-slate-500 dark:text-slate-400">On this page</p>
      <ul className="mt-3 space-y-2 border-l border-slate-200 text-sm dark:border-slate-800">
        {page.headings.map((heading) => {
          const active = heading.id === current
          return (
            <li key={heading.id}>
              <a
                href={hrefFor(page.slug, heading.id)}
                aria-current={active ? 'true' : undefined}
                className={
                  '-ml-px block border-l py-0.5 pl-3 transition ' +
                  (active
                    ? 'border-orange-600 font-medium text-orange-700 dark:border-orange-400 dark:text-orange-300'
                    : 'border-transparent text-slate-600 hover:border-slate-400 hover:text-slate-900 dark:text-slate-400 dark:hover:border-slate-500 dark:hover:text-slate-200')
                }
              >
                {heading.title}
              </a>
            </li>
          )
        })}
      </ul>
    </nav>
  )
}
