/**
 * The cookbook's chapters in reading order: the registry's "Cookbook" section and the overview's
 * cards both come from this list. A chapter is a page whose title starts `Chapter N:` and whose
 * headings are its steps (`step-0`, `step-1`, …) and its `decision-rule`.
 */
import type { PageDefinition } from '../define'
import chapter01 from './Chapter01FirstResource'
import chapter02 from './Chapter02Validation'
import chapter03 from './Chapter03Jobs'
import chapter04 from './Chapter04Webhooks'
import chapter05 from './Chapter05LiveEvents'
import chapter06 from './Chapter06ApiKeys'
import chapter07 from './Chapter07Cli'
import chapter08 from './Chapter08EndToEnd'
import chapter09 from './Chapter09Production'
import chapter10 from './Chapter10Caching'
import chapter11 from './Chapter11Testing'
import chapter12 from './Chapter12EventFanout'

export interface Chapter {
  slug: string
  page: PageDefinition
}

export const chapters: Chapter[] = [
  { slug: 'cookbook-chapter-1-first-resource', page: chapter01 },
  { slug: 'cookbook-chapter-2-validation', page: chapter02 },
  { slug: 'cookbook-chapter-3-jobs', page: chapter03 },
  { slug: 'cookbook-chapter-4-webhooks', page: chapter04 },
  { slug: 'cookbook-chapter-5-live-events', page: chapter05 },
  { slug: 'cookbook-chapter-6-api-keys', page: chapter06 },
  { slug: 'cookbook-chapter-7-cli', page: chapter07 },
  { slug: 'cookbook-chapter-8-end-to-end', page: chapter08 },
  { slug: 'cookbook-chapter-9-production', page: chapter09 },
  { slug: 'cookbook-chapter-10-caching', page: chapter10 },
  { slug: 'cookbook-chapter-11-testing', page: chapter11 },
  { slug: 'cookbook-chapter-12-event-fanout', page: chapter12 },
]
