import type { ComponentType } from 'react'

/** What a page file exports; the registry adds its slug and section. */
export interface PageDefinition<H extends Record<string, string> = Record<string, string>> {
  /** The page's `<h1>` and sidebar label. */
  title: string
  /** One sentence under the title, also shown in search results. */
  summary: string
  /** The page's `<h2>` sections, id → title, in order. */
  headings: H
  /** The page body (the layout renders the title and summary). */
  component: ComponentType
}

export function definePage<H extends Record<string, string>>(page: PageDefinition<H>): PageDefinition<H> {
  return page
}
