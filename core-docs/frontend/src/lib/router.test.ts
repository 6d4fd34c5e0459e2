import { afterEach, describe, expect, it } from 'vitest'
import { entryKey, rememberScroll, savedScroll } from './router'

describe('scroll memory', () => {
  let stop: (() => void) | undefined
  afterEach(() => stop?.())

  it('gives each history entry a key it keeps', () => {
    window.history.replaceState(null, '')
    const key = entryKey()
    expect(key).toMatch(/\S/)
    expect(entryKey()).toBe(key)
    expect((window.history.state as { scrollKey: string }).scrollKey).toBe(key)
  })

  it('records the scroll position of the entry shown, and only of that one', () => {
    stop = rememberScroll()
    expect(window.history.scrollRestoration).toBe('manual')
    window.history.replaceState(null, '')
    expect(savedScroll()).toBeUndefined()
    Object.defineProperty(window, 'scrollY', { value: 1234, configurable: true })
    window.dispatchEvent(new Event('scroll'))
    expect(savedScroll()).toBe(1234)
    const first = window.history.state
    window.history.pushState(null, '', '#/other')
    expect(savedScroll()).toBeUndefined()
    window.history.replaceState(first, '')
    expect(savedScroll()).toBe(1234)
  })
})
