/**
 * The route registry: the one place a page is added. It feeds the router (App), the sidebar, the
 * previous/next links, the search index, the not-found page and the tests.
 */
import type { ComponentType } from 'react'
import caching from './pages/Caching'
import { chapters } from './pages/cookbook/chapters'
import cookbook from './pages/cookbook/Overview'
import configuration from './pages/Configuration'
import dashboard from './pages/Dashboard'
import database from './pages/Database'
import dataTable from './pages/DataTable'
import type { PageDefinition } from './pages/define'
import gettingStarted from './pages/GettingStarted'
import i18n from './pages/I18n'
import jobs from './pages/Jobs'
import middleware from './pages/Middleware'
import responses from './pages/Responses'
import storage from './pages/Storage'
import testing from './pages/Testing'
import validation from './pages/Validation'

export interface Heading {
  id: string
  title: string
}

export interface Page {
  /** The hash route: `#/{slug}`. */
  slug: string
  title: string
  summary: string
  /** The title of the section the page belongs to. */
  section: string
  headings: Heading[]
  component: ComponentType
}

export interface Section {
  title: string
  pages: Page[]
}

type Outline = { title: string; pages: [slug: string, page: PageDefinition][] }[]

const outline: Outline = [
  {
    title: 'Start here',
    pages: [
      ['getting-started', gettingStarted],
      ['configuration', configuration],
    ],
  },
  {
    title: 'HTTP',
    pages: [
      ['responses', responses],
      ['validation', validation],
      ['middleware', middleware],
      ['i18n', i18n],
      ['datatable', dataTable],
    ],
  },
  {
    title: 'Data',
    pages: [
      ['database', database],
      ['caching', caching],
      ['storage', storage],
    ],
  },
  {
    title: 'Background work',
    pages: [
      ['jobs', jobs],
      ['dashboard', dashboard],
    ],
  },
  {
    title: 'Testing',
    pages: [['testing', testing]],
  },
  {
    title: 'Cookbook',
    pages: [['cookbook', cookbook], ...chapters.map((chapter): [string, PageDefinition] => [chapter.slug, chapter.page])],
  },
]

export const sections: Section[] = outline.map((section) => ({
  title: section.title,
  pages: section.pages.map(([slug, page]) => ({
    slug,
    title: page.title,
    summary: page.summary,
    section: section.title,
    headings: Object.entries(page.headings).map(([id, title]) => ({ id, title })),
    component: page.component,
  })),
}))

/** Every page, in reading order. */
export const pages: Page[] = sections.flatMap((section) => section.pages)

export function findPage(slug: string): Page | undefined {
  return pages.find((page) => page.slug === slug)
}

/** The pages before and after `slug` in reading order. */
export function neighbours(slug: string): { prev?: Page; next?: Page } {
  const index = pages.findIndex((page) => page.slug === slug)
  if (index === -1) return {}
  return { prev: pages[index - 1], next: pages[index + 1] }
}
