import { useEffect, useLayoutEffect, useState } from 'react'
import { NotFound } from './components/NotFound'
import { OnThisPage } from './components/OnThisPage'
import { PrevNext } from './components/PrevNext'
import { Search } from './components/Search'
import { PageSlug } from './components/Section'
import { Sidebar } from './components/Sidebar'
import { ThemeToggle } from './components/ThemeToggle'
import { hrefFor, parseHash, rememberScroll, savedScroll, useHash } from './lib/router'
import { findPage, neighbours, pages, sections } from './registry'

export function App() {
  const hash = useHash()
  const location = parseHash(hash)
  const page = location.slug === '' ? pages[0] : findPage(location.slug)
  const [menuOpen, setMenuOpen] = useState(false)

  useEffect(() => {
    document.title = page ? `${page.title} · Rustforge docs` : 'Page not found · Rustforge docs'
  }, [page])

  useEffect(rememberScroll, [])

  // Before paint: back to where this history entry was left (back, forward, reload), else to the
  // heading the hash names, else to the top.
  useLayoutEffect(() => {
    setMenuOpen(false)
    const saved = savedScroll()
    const target = location.heading ? document.getElementById(location.heading) : null
    if (saved !== undefined) window.scrollTo(0, saved)
    else if (target) target.scrollIntoView()
    else window.scrollTo(0, 0)
  }, [hash]) // eslint-disable-line react-hooks/exhaustive-deps

  const { prev, next } = page ? neighbours(page.slug) : {}
  const Body = page?.component

  return (
    <div className="min-h-screen">
      <header className="sticky top-0 z-40 border-b border-slate-200 bg-white/90 backdrop-blur dark:border-slate-800 dark:bg-slate-950/90">
        <div className="mx-auto flex h-16 max-w-[90rem] items-center gap-2 px-4 sm:gap-4 sm:px-6">
          <button
            type="button"
            className="flex-none rounded-md p-2 text-slate-600 hover:bg-slate-100 lg:hidden dark:text-slate-300 dark:hover:bg-slate-800"
            aria-label="Open navigation"
            aria-expanded={menuOpen}
            onClick={() => setMenuOpen((open) => !open)}
          >
            <svg aria-hidden="true" viewBox="0 0 20 20" className="h-5 w-5 fill-current">
              <path d="M3 5h14v1.5H3zm0 4.25h14v1.5H3zM3 13.5h14V15H3z" />
            </svg>
          </button>
          <a
            href={hrefFor(pages[0].slug)}
            className="flex min-w-0 items-center gap-2 font-semibold text-slate-900 dark:text-slate-100"
          >
            <span className="grid h-8 w-8 flex-none place-items-center rounded-lg bg-orange-600 text-sm font-bold text-white">R</span>
            <span className="text-lg tracking-tight">Rustforge</span>
            <span className="rounded-full bg-slate-100 px-2 py-0.5 text-xs font-medium text-slate-500 dark:bg-slate-800 dark:text-slate-400">
              docs
            </span>
          </a>
          <div className="ml-auto flex min-w-0 flex-1 items-center justify-end gap-1 sm:gap-2">
            <Search sections={sections} />
            <ThemeToggle />
          </div>
        </div>
      </header>

      {menuOpen && (
        <div className="fixed inset-0 top-16 z-30 overflow-y-auto bg-white px-4 py-6 lg:hidden dark:bg-slate-950">
          <Sidebar sections={sections} current={page?.slug} onNavigate={() => setMenuOpen(false)} />
        </div>
      )}

      <div className="mx-auto flex max-w-[90rem] px-4 sm:px-6">
        <aside className="sticky top-16 hidden h-[calc(100vh-4rem)] w-64 flex-none overflow-y-auto py-8 pr-6 lg:block">
          <Sidebar sections={sections} current={page?.slug} />
        </aside>

        <main className="min-w-0 flex-1 py-10 lg:pl-8">
          {page && Body ? (
            <article className="mx-auto max-w-3xl">
              <p className="text-sm font-semibold text-orange-600 dark:text-orange-400">{page.section}</p>
              <h1 className="mt-1 text-3xl font-bold tracking-tight break-words text-slate-900 sm:text-4xl dark:text-slate-50">
                {page.title}
              </h1>
              <p className="mt-4 text-lg leading-relaxed text-slate-600 dark:text-slate-400">{page.summary}</p>
              <div className="prose prose-slate mt-10 max-w-none dark:prose-invert prose-headings:tracking-tight prose-h2:mt-14 prose-h2:border-t prose-h2:border-slate-100 prose-h2:pt-10 prose-a:text-orange-700 prose-code:before:content-none prose-code:after:content-none dark:prose-h2:border-slate-800 dark:prose-a:text-orange-300">
                <PageSlug.Provider value={page.slug}>
                  <Body />
                </PageSlug.Provider>
              </div>
              <PrevNext prev={prev} next={next} />
            </article>
          ) : (
            <div className="mx-auto max-w-3xl">
              <NotFound slug={location.slug} sections={sections} />
            </div>
          )}
        </main>

        {page && page.headings.length > 0 && (
          <aside className="sticky top-16 hidden h-[calc(100vh-4rem)] w-56 flex-none overflow-y-auto py-10 pl-6 xl:block">
            <OnThisPage page={page} hashHeading={location.heading} />
          </aside>
        )}
      </div>
    </div>
  )
}
