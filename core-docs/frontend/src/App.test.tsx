import { act, fireEvent, render, screen } from '@testing-library/react'
import { describe, expect, it } from 'vitest'
import { App } from './App'
import { pages } from './registry'

function go(hash: string) {
  act(() => {
    window.location.hash = hash
    window.dispatchEvent(new HashChangeEvent('hashchange'))
  })
}

describe('the app', () => {
  it('shows the first page for an empty hash', () => {
    render(<App />)
    expect(screen.getByRole('heading', { level: 1 }).textContent).toBe(pages[0].title)
  })

  it('renders every route with its title', () => {
    render(<App />)
    for (const page of pages) {
      go(`#/${page.slug}`)
      expect(screen.getByRole('heading', { level: 1 }).textContent).toBe(page.title)
      expect(document.title).toBe(`${page.title} · Rustforge docs`)
    }
  })

  it('shows the not-found page for an unknown hash', () => {
    render(<App />)
    go('#/no-such-page')
    expect(screen.getByRole('heading', { level: 1 }).textContent).toBe('Page not found')
    expect(screen.getByText('no-such-page')).toBeTruthy()
  })

  it('opens search with Ctrl-K and navigates to a heading', () => {
    render(<App />)
    fireEvent.keyDown(window, { key: 'k', ctrlKey: true })
    const input = screen.getByRole('searchbox', { name: 'Search pages and headings' })
    fireEvent.change(input, { target: { value: 'stale-while' } })
    fireEvent.keyDown(input, { key: 'Enter' })
    expect(window.location.hash).toBe('#/caching/flexible')
  })
})
