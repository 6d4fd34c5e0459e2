import type { ReactNode } from 'react'

/** The repository file a cookbook step changes or reads, shown above its code. */
export function FileRef({ path, children }: { path: string; children?: ReactNode }) {
  return (
    <p className="not-prose mt-4 flex flex-wrap items-baseline gap-x-2 text-sm text-slate-600 dark:text-slate-400">
      <span className="font-semibold text-slate-800 dark:text-slate-200">File:</span>
      <code className="rounded bg-slate-100 px-1.5 py-0.5 font-mono text-[13px] text-slate-800 dark:bg-slate-800 dark:text-slate-200">
        {path}
      </code>
      {children}
    </p>
  )
}

/**
 * A chapter's decision rule: each row is a situation and what to do in it. Rendered as a list of
 * cards, so it reads on a phone without sideways scrolling.
 */
export function DecisionRule({ rules }: { rules: [when: ReactNode, then: ReactNode][] }) {
  return (
    <dl className="not-prose my-6 divide-y divide-slate-200 rounded-xl border border-slate-200 dark:divide-slate-700 dark:border-slate-700">
      {rules.map(([when, then], index) => (
        <div key={index} className="grid gap-1 px-4 py-3 sm:grid-cols-[minmax(0,2fr)_minmax(0,3fr)] sm:gap-4">
          <dt className="text-[15px] font-semibold text-slate-900 dark:text-slate-100">{when}</dt>
          <dd className="text-[15px] leading-relaxed text-slate-700 dark:text-slate-300">{then}</dd>
        </div>
      ))}
    </dl>
  )
}
