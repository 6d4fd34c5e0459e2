import { useMemo, useState } from 'react'
import { highlight, type Language } from '../lib/prism'
import { region } from '../lib/region'

interface CodeProps {
  code: string
  language?: Language
  /** A caption above the block: a file name or what the code is. */
  title?: string
}

/** A highlighted code block (Prism token spans, dark theme) with a copy button. */
export function Code({ code, language = 'rust', title }: CodeProps) {
  const html = useMemo(() => highlight(code, language), [code, language])
  const [copied, setCopied] = useState(false)
  const copy = () => {
    navigator.clipboard?.writeText(code).then(
      () => {
        setCopied(true)
        window.setTimeout(() => setCopied(false), 1500)
      },
      () => {},
    )
  }
  return (
    <figure className="code-block not-prose group relative my-6 overflow-hidden rounded-xl bg-slate-900 shadow-sm ring-1 ring-slate-900/10">
      {title && (
        <figcaption className="flex items-center justify-between border-b border-white/10 bg-slate-800/60 px-4 py-2 font-mono text-xs text-slate-400">
          <span>{title}</span>
          <span className="uppercase tracking-wide text-slate-500">{language}</span>
        </figcaption>
      )}
      <button
        type="button"
        onClick={copy}
        aria-label="Copy code"
        className="absolute right-2 top-2 z-10 rounded-md bg-slate-700/80 px-2 py-1 text-xs text-slate-200 opacity-0 transition group-hover:opacity-100 focus:opacity-100"
        style={title ? { top: '2.6rem' } : undefined}
      >
        {copied ? 'Copied' : 'Copy'}
      </button>
      <pre className={`language-${language} overflow-x-auto p-4 text-[13px] leading-relaxed`}>
        <code className={`language-${language}`} dangerouslySetInnerHTML={{ __html: html }} />
      </pre>
    </figure>
  )
}

interface SnippetProps {
  /**
   * A checked file imported with `?raw`: a Rust snippet from core-docs/snippets, the app's own
   * source, a verify script from core-docs/verify, a migration, a manifest.
   */
  source: string
  /** The region of it to show. */
  region: string
  /** The file's language; Rust unless said. */
  language?: Language
  title?: string
}

/** A region of a checked file (compiled, run or parsed by the test command). */
export function Snippet({ source, region: name, language = 'rust', title }: SnippetProps) {
  const code = useMemo(() => region(source, name), [source, name])
  return <Code code={code} language={language} title={title} />
}
