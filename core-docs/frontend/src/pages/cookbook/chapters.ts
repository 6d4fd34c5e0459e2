/**
 * The cookbook's chapters in reading order: the registry's "Cookbook" section and the overview's
 * cards both come from this list. A chapter is a page whose title starts `Chapter N:` and whose
 * headings are its steps (`step-0`, `step-1`, …) and its `decision-rule`.
 */
import type { PageDefinition } from '../define'
import chapter10 from './Chapter10Caching'

export interface Chapter {
  slug: string
  page: PageDefinition
}

export const chapters: Chapter[] = [{ slug: 'cookbook-chapter-10-caching', page: chapter10 }]
