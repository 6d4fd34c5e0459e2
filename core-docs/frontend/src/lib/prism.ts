import './prism-manual'
import Prism from 'prismjs'
import 'prismjs/components/prism-rust'
import 'prismjs/components/prism-toml'
import 'prismjs/components/prism-bash'
import 'prismjs/components/prism-json'
import 'prismjs/components/prism-sql'
import 'prismjs/components/prism-jsx'
import 'prismjs/components/prism-typescript'
import 'prismjs/components/prism-tsx'
import 'prismjs/components/prism-python'

/** The languages code blocks may use. */
export type Language = 'rust' | 'toml' | 'bash' | 'json' | 'sql' | 'tsx' | 'python' | 'text'

/** `code` as highlighted HTML (Prism token spans), or escaped text for `text`. */
export function highlight(code: string, language: Language): string {
  const grammar = language === 'text' ? undefined : Prism.languages[language]
  if (!grammar) return escapeHtml(code)
  return Prism.highlight(code, grammar, language)
}

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}
