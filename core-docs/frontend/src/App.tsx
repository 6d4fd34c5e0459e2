import { useEffect, useState } from 'react'
import { NotFound } from './components/NotFound'
import { PrevNext } from './components/PrevNext'
import { Search } from './components/Search'
import { PageSlug } from './components/Section'
import { Sidebar } from './components/Sidebar'
import { hrefFor, parseHash, useHash } from './lib/router'
import { findPage, neighbours, pages, sections } from './registry'

export function App() {
  const hash = useHash()
  const location = parseHash(hash)
  const page = location.slug === '' ? pages[0] : findPage(location.slug)
  const [menuOpen, setMenuOpen] = useState(false)

  useEffect(() => {
    document.title = page ? `${page.title} · Rustforge docs` : 'Page not found · Rustforge docs'
  }, [page])

  useEffect(() => {
    setMenuOpen(false)
    const target = location.heading ? document.getElementById(location.heading) : null
    if (target) target.scrollIntoView()
    else window.scrollTo(0, 0)
  }, [hash]) // eslint-disable-line react-hooks/exhaustive-deps

  const { prev, next } = page ? neighbours(page.slug) : {}
  const Body = page?.component

  return (
    <div className="min-h-screen">
      <header className="sticky top-0 z-40 border-b border-slate-200 bg-white/90 backdrop-blur">
        <div className="mx-auto flex h-16 max-w-[90rem] items-center gap-4 px-4 sm:px-6">
          <button
            type="button"
            className="rounded-md p-2 text-slate-600 hover:bg-slate-100 lg:hidden"
            aria-label="Open navigation"
            aria-expanded={menuOpen}
            onClick={() => setMenuOpen((open) => !open)}
          >
            <svg aria-hidden="true" viewBox="0 0 20 20" className="h-5 w-5 fill-current">
              <path d="M3 5h14v1.5H3zm0 4.25h14v1.5H3zM3 13.5h14V15H3z" />
            </svg>
          </button>
          <a href={hrefFor(pages[0].slug)} className="flex items-center gap-2 font-semibold text-slate-900">
            <span className="grid h-8 w-8 place-items-center rounded-lg bg-orange-600 text-sm font-bold text-white">R</span>
            <span className="text-lg tracking-tight">Rustforge</span>
            <span className="rounded-full bg-slate-100 px-2 py-0.5 text-xs font-medium text-slate-500">docs</span>
          </a>
          <div className="ml-auto flex flex-1 justify-end">
            <Search sections={sections} />
          </div>
        </div>
      </header>

      {menuOpen && (
        <div className="fixed inset-0 top-16 z-30 overflow-y-auto bg-white px-4 py-6 lg:hidden">
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
              <p className="text-sm font-semibold text-orange-600">{page.section}</p>
              <h1 className="mt-1 text-4xl font-bold tracking-tight text-slate-900">{page.title}</h1>
              <p className="mt-4 text-lg leading-relaxed text-slate-600">{page.summary}</p>
              <div className="prose prose-slate mt-10 max-w-none prose-headings:tracking-tight prose-h2:mt-14 prose-h2:border-t prose-h2:border-slate-100 prose-h2:pt-10 prose-a:text-orange-700 prose-code:before:content-none prose-code:after:content-none">
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
            <p className="text-xs font-semibold uppercase tracking-wider text-slate-500">On this page</p>
            <ul className="mt-3 space-y-2 text-sm">
              {page.headings.map((heading) => (
                <li key={heading.id}>
                  <a
                    href={hrefFor(page.slug, heading.id)}
                    className={
                      heading.id === location.heading
                        ? 'font-medium text-orange-700'
                        : 'text-slate-600 hover:text-slate-900'
                    }
                  >
                    {heading.title}
                  </a>
                </li>
              ))}
            </ul>
          </aside>
        )}
      </div>
    </div>
  )
}
