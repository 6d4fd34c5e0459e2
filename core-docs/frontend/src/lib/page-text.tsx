import { renderToStaticMarkup } from 'react-dom/server'
import { PageSlug } from '../components/Section'
import type { Page } from '../registry'

/**
 * A page's body as static HTML: the component the reader sees, rendered without a DOM. The search
 * index is built from it, so it holds every word and every code identifier the page shows.
 * Loaded on demand (the first search), which keeps react-dom/server out of the first download.
 */
export function renderPage(page: Page): string {
  const Body = page.component
  return renderToStaticMarkup(
    <PageSlug.Provider value={page.slug}>
      <Body />
    </PageSlug.Provider>,
  )
}
