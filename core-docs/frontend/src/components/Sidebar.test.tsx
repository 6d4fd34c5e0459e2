import { render, screen, within } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import { pages, sections } from '../registry'
import { Sidebar } from './Sidebar'

describe('the sidebar', () => {
  it('shows exactly the registry: every page, in order, and nothing else', () => {
    render(<Sidebar sections={sections} />)
    const nav = screen.getByRole('navigation', { name: 'Documentation' })
    const links = within(nav).getAllByRole('link')
    expect(links.map((link) => [link.textContent, link.getAttribute('href')])).toEqual(
      pages.map((page) => [page.title, `#/${page.slug}`]),
    )
  })

  it('groups pages under their section titles', () => {
    const { container } = render(<Sidebar sections={sections} />)
    const groups = [...container.querySelectorAll('nav > div')]
    expect(groups.map((group) => group.querySelector('p')?.textContent)).toEqual(sections.map((s) => s.title))
    groups.forEach((group, i) => {
      expect([...group.querySelectorAll('a')].map((a) => a.textContent)).toEqual(sections[i].pages.map((p) => p.title))
    })
  })

  it('marks the current page', () => {
    render(<Sidebar sections={sections} current="caching" />)
    const current = screen.getByRole('link', { current: 'page' })
    expect(current.textContent).toBe('Caching')
  })
})
