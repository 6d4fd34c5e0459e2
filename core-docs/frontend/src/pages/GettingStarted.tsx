import gettingStarted from '../../../snippets/getting_started.rs?raw'
import hello from '../../../snippets/json/hello.json?raw'
import nope from '../../../snippets/json/nope-zh.json?raw'
import commands from '../../../snippets/shell/commands.sh?raw'
import requests from '../../../snippets/shell/requests.sh?raw'
import dependencies from '../../../snippets/toml/dependencies.toml?raw'
import { Code, Snippet } from '../components/Code'
import { Callout, sectionsOf } from '../components/Section'
import { hrefFor } from '../lib/router'
import { definePage } from './define'

const headings = {
  'two-commands': 'Two commands',
  requirements: 'What you need',
  workspace: 'The workspace',
  'first-app': 'A complete application',
  'try-it': 'Try it',
  next: 'Where to go next',
}
const Section = sectionsOf(headings)

function GettingStarted() {
  return (
    <>
      <Section id="two-commands">
        <p>
          Rustforge is a Rust web framework shipped as a Cargo workspace of small crates. From a checkout, with
          only the Rust toolchain installed:
        </p>
        <Snippet source={commands} region="two-commands" language="bash" />
        <p>
          <code>cargo run -p app</code> needs no Redis, PostgreSQL or S3: the database defaults to{' '}
          <code>sqlite://data/app.sqlite3</code> (created on first start, migrations applied) and the cache to{' '}
          <code>memory://</code>. <code>cargo run -p app -- migrate</code> applies pending migrations and exits.
        </p>
        <p>
          <code>scripts/test</code> makes sure Redis and PostgreSQL answer on localhost (starting or installing them
          when it can, otherwise saying what to install), then runs <code>cargo fmt --check</code>,{' '}
          <code>cargo clippy --workspace --all-targets -- -D warnings</code>, <code>cargo test --workspace</code> and
          this site's own tests. Plain <code>cargo test --workspace</code> works too: tests whose service is missing
          print one <code>SKIPPED</code> line and pass.
        </p>
      </Section>

      <Section id="requirements">
        <ul>
          <li>
            Rust 1.88 or newer (the workspace uses edition 2024). Nothing else for the app and its tests.
          </li>
          <li>
            Optional: Redis for the shared cache and queue, PostgreSQL for the production database, an S3-compatible
            server for storage. Configuration picks them; the code does not change.
          </li>
          <li>
            Node.js 20.19 or newer only to build this documentation site (
            <code>cd core-docs/frontend && npm install && npm run build</code>).
          </li>
        </ul>
      </Section>

      <Section id="workspace">
        <table>
          <thead>
            <tr>
              <th>Crate</th>
              <th>What it holds</th>
            </tr>
          </thead>
          <tbody>
            <tr>
              <td><code>core-web</code></td>
              <td>
                <code>AppError</code>, <code>ApiResponse</code>, <code>ValidatedJson</code>, the middleware stack, typed
                settings, logging, serving with graceful shutdown
              </td>
            </tr>
            <tr>
              <td><code>core-i18n</code></td>
              <td>
                <code>t</code> / <code>t_args</code> over JSON catalogs, the per-request locale
              </td>
            </tr>
            <tr>
              <td><code>core-db</code></td>
              <td>
                the <code>Cache</code> (memory, Redis, tiered), the <code>Database</code> handle (SQLite or PostgreSQL)
                with embedded migrations
              </td>
            </tr>
            <tr>
              <td><code>core-jobs</code></td>
              <td>background jobs, queues, the worker and the scheduler</td>
            </tr>
            <tr>
              <td><code>core-docs</code></td>
              <td>this site, and <code>core_docs::router()</code> to serve it from your app</td>
            </tr>
            <tr>
              <td><code>app</code></td>
              <td>the example application that uses all of it</td>
            </tr>
          </tbody>
        </table>
        <p>Depend on the crates you use; versions live once, in the workspace:</p>
        <Snippet source={dependencies} region="dependencies" language="toml" title="Cargo.toml" />
      </Section>

      <Section id="first-app">
        <p>
          A whole application: settings, logging, the database, the cache, one route behind the framework's middleware
          stack, and a server that drains in-flight requests on Ctrl-C or SIGTERM. The <code>router</code> function is
          separate from <code>main</code> so tests can drive exactly what the binary serves, without opening a port.
        </p>
        <Snippet source={gettingStarted} region="main" title="src/main.rs" />
        <Callout kind="tip">
          This code is compiled and its router exercised by <code>cargo test</code> (it lives in{' '}
          <code>core-docs/snippets/getting_started.rs</code>), like every Rust example on this site.
        </Callout>
      </Section>

      <Section id="try-it">
        <Snippet source={requests} region="try-it" language="bash" />
        <p>A success is wrapped in the envelope; everything else, unknown routes included, is the one error shape:</p>
        <Code language="json" title="GET /hello → 200" code={hello.trim()} />
        <Code language="json" title="GET /nope → 404" code={nope.trim()} />
      </Section>

      <Section id="next">
        <ul>
          <li>
            <a href={hrefFor('configuration')}>Configuration</a>: every setting and the drivers it selects.
          </li>
          <li>
            <a href={hrefFor('responses')}>Responses and errors</a> and <a href={hrefFor('validation')}>Validation</a>:
            what handlers return.
          </li>
          <li>
            <a href={hrefFor('caching')}>Caching</a>: <code>remember</code>, tags, locks and the tiered driver.
          </li>
        </ul>
      </Section>
    </>
  )
}

export default definePage({
  title: 'Getting started',
  summary: 'Run the example application with nothing installed, then read a complete Rustforge app in forty lines.',
  headings,
  component: GettingStarted,
})
