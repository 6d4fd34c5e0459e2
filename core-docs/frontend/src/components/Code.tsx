import { useMemo, useState } from 'react'
import { highlight, type Language } from '../lib/prism'
import { region } from '../lib/region'

interface CodeProps {
  code: string
  language?: Language
  /** A caption above the block: a file name or what the code is. */
  title?: string
}

/**
 * A highlighted code block (Prism token spans, dark theme) with a copy button that is always
 * visible (hover does not exist on a touch screen) and never covers code: it sits in the caption
 * bar when the block has a title, else in a column of its own beside the scrolling <pre>.
 */
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
  const button = (
    <button
      type="button"
      onClick={copy}
      aria-label={copied ? 'Copied' : 'Copy code'}
      className="copy-button flex-none rounded-md bg-slate-700/70 px-2 py-1 font-sans text-xs text-slate-200 transition hover:bg-slate-600 focus-visible:outline-2 focus-visible:outline-orange-400"
    >
      <span aria-live="polite">{copied ? 'Copied' : 'Copy'}</span>
    </button>
  )
  const pre = (
    <pre className={`language-${language} min-w-0 flex-1 overflow-x-auto p-4 text-[13px] leading-relaxed`}>
      <code className={`language-${language}`} dangerouslySetInnerHTML={{ __html: html }} />
    </pre>
  )
  return (
    <figure className="code-block not-prose my-6 overflow-hidden rounded-xl bg-slate-900 shadow-sm ring-1 ring-slate-900/10 dark:bg-slate-900/80 dark:ring-white/10">
      {title ? (
        <>
          <figcaption className="flex items-center gap-3 border-b border-white/10 bg-slate-800/60 py-1.5 pr-2 pl-4 font-mono text-xs text-slate-400">
            <span className="min-w-0 flex-1 truncate" title={title}>
              {title}
            </span>
            <span className="flex-none uppercase tracking-wide text-slate-500">{language}</span>
            {button}
          </figcaption>
          {pre}
        </>
      ) : (
        <div className="flex items-start">
          {pre}
          <div className="flex-none py-2.5 pr-2">{button}</div>
        </div>
      )}
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
