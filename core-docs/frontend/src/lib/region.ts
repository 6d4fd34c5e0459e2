/**
 * Snippets live in files that the test command checks: Rust under core-docs/snippets and the
 * app's own source (compiled by `cargo test`), the cookbook's verify scripts (run against the app),
 * SQL migrations, TOML manifests. A page shows the part between `region: NAME` and
 * `endregion: NAME` markers, written as a comment of the file's language: `// region: NAME`
 * (Rust, TypeScript), `# region: NAME` (shell, TOML, Python) or `-- region: NAME` (SQL).
 */

const MARKER = /^\s*(?:\/\/|#|--)\s*(region|endregion):\s*([\w-]+)\s*$/

/** The names of the regions in `source`, in order. */
export function regionNames(source: string): string[] {
  const names: string[] = []
  for (const line of source.split('\n')) {
    const match = MARKER.exec(line)
    if (match && match[1] === 'region') names.push(match[2])
  }
  return names
}

/**
 * The lines of region `name` in `source`, without any marker lines, dedented and without
 * leading or trailing blank lines. Throws when the region is missing, unterminated or repeated,
 * so a page can never silently show nothing.
 */
export function region(source: string, name: string): string {
  const lines = source.replace(/\r\n?/g, '\n').split('\n')
  let start = -1
  let end = -1
  lines.forEach((line, index) => {
    const match = MARKER.exec(line)
    if (!match || match[2] !== name) return
    if (match[1] === 'region') {
      if (start !== -1) throw new Error(`region "${name}" appears twice`)
      start = index
    } else if (start !== -1 && end === -1) {
      end = index
    }
  })
  if (start === -1) throw new Error(`no region "${name}"`)
  if (end === -1) throw new Error(`region "${name}" has no "endregion: ${name}" marker`)
  const body = lines.slice(start + 1, end).filter((line) => !MARKER.test(line))
  return trimBlankLines(dedent(body)).join('\n')
}

/** Removes the indentation every non-blank line shares. */
export function dedent(lines: string[]): string[] {
  const indents = lines
    .filter((line) => line.trim() !== '')
    .map((line) => /^[ \t]*/.exec(line)![0].length)
  const common = indents.length === 0 ? 0 : Math.min(...indents)
  return lines.map((line) => (line.trim() === '' ? '' : line.slice(common).replace(/\s+$/, '')))
}

function trimBlankLines(lines: string[]): string[] {
  let first = 0
  let last = lines.length
  while (first < last && lines[first] === '') first++
  while (last > first && lines[last - 1] === '') last--
  return lines.slice(first, last)
}

/**
 * The lines of `source` from the first that starts with `first` through the next (possibly the
 * same) that starts with `last`. For files that cannot carry region markers, such as an applied
 * migration: sqlx checksums every migration it applied, so editing one, even a comment, would
 * stop existing databases from migrating. Throws when either line is missing, so a change to the
 * file's text breaks the page's test instead of showing something else.
 */
export function excerpt(source: string, first: string, last: string): string {
  const lines = source.replace(/\r\n?/g, '\n').split('\n')
  const start = lines.findIndex((line) => line.startsWith(first))
  if (start === -1) throw new Error(`no line starting with "${first}"`)
  const end = lines.findIndex((line, index) => index >= start && line.startsWith(last))
  if (end === -1) throw new Error(`no line starting with "${last}" after "${first}"`)
  return lines.slice(start, end + 1).join('\n')
}
