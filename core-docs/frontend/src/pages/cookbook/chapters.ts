/**
 * The cookbook's chapters in reading order: the registry's "Cookbook" section and the overview's
 * cards both come from this list. A chapter is a page whose title starts `Chapter N:` and whose
 * headings are its steps (`step-0`, `step-1`, …) and its `decision-rule`.
 */
import type { PageDefinition } from '../define'
import chapter06 from './Chapter06ApiKeys'
import chapter07 from './Chapter07Cli'
import chapter08 from './Chapter08EndToEnd'
import chapter09 from './Chapter09Production'

export interface Chapter {
  slug: string
  page: PageDefinition
}

export const chapters: Chapter[] = [
  // Chapters 1–5 go here.
  { slug: 'cookbook-chapter-6-api-keys', page: chapter06 },
  { slug: 'cookbook-chapter-7-cli', page: chapter07 },
  { slug: 'cookbook-chapter-8-end-to-end', page: chapter08 },
  { slug: 'cookbook-chapter-9-production', page: chapter09 },
  // Chapters 10–12 go here.
]
