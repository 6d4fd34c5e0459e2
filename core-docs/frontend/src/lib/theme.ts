import { useCallback, useEffect, useState } from 'react'

/**
 * Light or dark. The reader's choice is kept in localStorage; without one the site follows
 * `prefers-color-scheme`. index.html applies the same rule in an inline script before the first
 * paint, so a dark page never flashes white; this module keeps it up to date afterwards.
 */
export type Theme = 'light' | 'dark'

export const THEME_KEY = 'rustforge-docs:theme'
const query = '(prefers-color-scheme: dark)'

function stored(): Theme | undefined {
  try {
    const value = localStorage.getItem(THEME_KEY)
    return value === 'dark' || value === 'light' ? value : undefined
  } catch {
    return undefined
  }
}

function systemTheme(): Theme {
  return window.matchMedia?.(query).matches ? 'dark' : 'light'
}

/** Sets the `dark` class (Tailwind's `dark:` variant) and the colour scheme of form controls. */
export function applyTheme(theme: Theme) {
  const root = document.documentElement
  root.classList.toggle('dark', theme === 'dark')
  root.style.colorScheme = theme
}

/** The theme shown, and a toggle that remembers the reader's choice. */
export function useTheme(): [Theme, () => void] {
  const [theme, setTheme] = useState<Theme>(() => stored() ?? systemTheme())

  useEffect(() => applyTheme(theme), [theme])

  // Follow the system while the reader has not chosen.
  useEffect(() => {
    const media = window.matchMedia?.(query)
    if (!media) return
    const onChange = () => {
      if (!stored()) setTheme(media.matches ? 'dark' : 'light')
    }
    media.addEventListener('change', onChange)
    return () => media.removeEventListener('change', onChange)
  }, [])

  const toggle = useCallback(() => {
    setTheme((current) => {
      const next: Theme = current === 'dark' ? 'light' : 'dark'
      try {
        localStorage.setItem(THEME_KEY, next)
      } catch {
        // Not remembered, still applied.
      }
      return next
    })
  }, [])

  return [theme, toggle]
}
