import { render } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import { PageSlug } from './components/Section'
import errors from './generated/errors.json'
import { variantUse } from './pages/Responses'
import { findPage, neighbours, pages, sections } from './registry'

describe('the route registry', () => {
  it('has pages, each with a component, a title and a summary', () => {
    expect(pages.length).toBeGreaterThan(0)
    for (const page of pages) {
      expect(typeof page.component, page.slug).toBe('function')
      expect(page.title.trim(), page.slug).not.toBe('')
      expect(page.summary.trim(), page.slug).not.toBe('')
    }
  })

  it('gives every page a unique, URL-safe slug', () => {
    const slugs = pages.map((page) => page.slug)
    expect(new Set(slugs).size).toBe(slugs.length)
    for (const slug of slugs) expect(slug).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/)
  })

  it('has unique section titles and no empty section', () => {
    const titles = sections.map((section) => section.title)
    expect(new Set(titles).size).toBe(titles.length)
    for (const section of sections) expect(section.pages.length, section.title).toBeGreaterThan(0)
  })

  it('links pages in reading order', () => {
    expect(neighbours(pages[0].slug).prev).toBeUndefined()
    expect(neighbours(pages[pages.length - 1].slug).next).toBeUndefined()
    for (let i = 1; i < pages.length; i++) {
      expect(neighbours(pages[i].slug).prev).toBe(pages[i - 1])
      expect(neighbours(pages[i - 1].slug).next).toBe(pages[i])
    }
    expect(findPage('no-such-page')).toBeUndefined()
    expect(neighbours('no-such-page')).toEqual({})
  })

  describe.each(pages.map((page) => [page.slug, page] as const))('page %s', (_slug, page) => {
    it('renders exactly its registered headings, in order, with unique ids', () => {
      const { container } = render(
        <PageSlug.Provider value={page.slug}>
          <page.component />
        </PageSlug.Provider>,
      )
      const rendered = [...container.querySelectorAll('h2')].map((h2) => ({
        id: h2.id,
        title: (h2.firstChild?.textContent ?? '').trim(),
      }))
      expect(rendered).toEqual(page.headings)
      expect(new Set(rendered.map((h) => h.id)).size).toBe(rendered.length)
    })

    it('highlights its code blocks', () => {
      const { container } = render(<page.component />)
      const blocks = [...container.querySelectorAll('pre code')]
      // The cookbook's overview is prose and cards; every other page shows code.
      if (page.slug !== 'cookbook') expect(blocks.length).toBeGreaterThan(0)
      for (const block of blocks) {
        const language = block.className.replace('language-', '')
        if (language === 'text') continue
        expect(block.querySelector('.token'), `${page.slug}: ${block.textContent?.slice(0, 60)}`).not.toBeNull()
      }
    })
  })
})

describe('the cookbook', () => {
  const section = sections.find((s) => s.title === 'Cookbook')!

  it('opens with the overview, then lists its chapters in order', () => {
    expect(section.pages[0].slug).toBe('cookbook')
    section.pages.slice(1).forEach((page, index) => {
      expect(page.title, page.slug).toMatch(new RegExp(`^Chapter ${index + 1}: `))
      expect(page.slug, page.title).toMatch(new RegExp(`^cookbook-chapter-${index + 1}-`))
    })
  })

  it('gives every chapter numbered steps from Step 0 and a decision rule last', () => {
    for (const page of section.pages.slice(1)) {
      const ids = page.headings.map((h) => h.id)
      expect(ids[ids.length - 1], page.slug).toBe('decision-rule')
      const steps = ids.slice(0, -1)
      expect(steps.length, page.slug).toBeGreaterThan(1)
      steps.forEach((id, index) => expect(id, page.slug).toBe(`step-${index}`))
      page.headings.slice(0, -1).forEach((h, index) => expect(h.title, page.slug).toMatch(new RegExp(`^Step ${index}: `)))
    }
  })
})

describe('the generated error table', () => {
  it('has a description for every AppError variant', () => {
    expect(errors.length).toBeGreaterThan(0)
    for (const row of errors) expect(variantUse[row.variant], row.variant).toBeTruthy()
  })
})
