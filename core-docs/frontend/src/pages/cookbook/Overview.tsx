import { Callout, sectionsOf } from '../../components/Section'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'
import { chapters } from './chapters'

const headings = {
  rules: 'The core rules',
  format: 'How a chapter is written',
  chapters: 'The chapters',
  'reading-order': 'Reading order',
}
const Section = sectionsOf(headings)

function Overview() {
  return (
    <>
      <Section id="rules">
        <p>
          The cookbook builds ForgeRun, the example application in <code>app/</code>: a job-execution service where
          clients register, submit jobs of synthetic work, follow them through their states and receive their events
          as webhooks and as a live stream. Every step is something you can do in this repository and see work. The
          rules every Rustforge application keeps, and every chapter follows:
        </p>
        <ol>
          <li>
            <strong>One context, built once.</strong> Settings, the database, the cache, the queue, storage and the
            bus are opened at start-up into one cheap-to-clone context that handlers, jobs and commands share.
          </li>
          <li>
            <strong>Handlers are thin.</strong> They extract (authentication, validated JSON, the locale), call the
            domain code, and answer with <code>ApiResponse</code> or an <code>AppError</code>; every answer is JSON,
            problem details on request.
          </li>
          <li>
            <strong>Side effects are jobs.</strong> Anything slow, fallible or outside the database is a job,
            dispatched in the same transaction as the change that causes it (<code>JobBuffer</code>), so it happens
            exactly when the change commits.
          </li>
          <li>
            <strong>Every job is retried and may run twice.</strong> Handlers are idempotent; when the attempts run
            out, <code>failed()</code> records or alerts, and the job lands in <code>failed_jobs</code>.
          </li>
          <li>
            <strong>The database is the truth, the cache a copy.</strong> Reads may be cached; every write invalidates
            what it changed, in the same code path, never by waiting for a TTL.
          </li>
          <li>
            <strong>Every process is disposable.</strong> Servers, workers and schedulers run side by side on
            PostgreSQL, Redis and S3, stop gracefully on SIGTERM, and lose nothing when killed.
          </li>
        </ol>
      </Section>

      <Section id="format">
        <p>
          Chapters 1–9 are short and practical, each building one piece of ForgeRun that later chapters rely on.
          Chapters 10–12 are recipes: the team's standard way of doing one thing, in numbered steps.
        </p>
        <ul>
          <li>
            <strong>Step 0: Scope</strong> says where the piece lives and what it depends on.
          </li>
          <li>
            <strong>Steps 1…n</strong> each name the file they change. The Rust shown is that file, or a snippet the
            test suite compiles: nothing on these pages is typed by hand.
          </li>
          <li>
            <strong>Verify</strong> shows the commands that prove the step works: curl, <code>redis-cli</code>,{' '}
            <code>psql</code>, a local receiver. They come from a script in <code>core-docs/verify/</code> that the
            test command runs against the running app, so a recipe that stops working fails the build.
          </li>
          <li>
            <strong>Decision rule</strong> closes the chapter: when to use the recipe, and when not to.
          </li>
        </ul>
        <Callout kind="tip">
          Run any chapter's verify script yourself against <code>cargo run -p app</code>:{' '}
          <code>bash core-docs/verify/10-caching.sh</code> (it reads <code>BASE</code>, default{' '}
          <code>http://127.0.0.1:3000</code>).
        </Callout>
      </Section>

      <Section id="chapters">
        <div className="not-prose grid gap-4 sm:grid-cols-2">
          {chapters.map((chapter) => (
            <a
              key={chapter.slug}
              href={hrefFor(chapter.slug)}
              className="group rounded-xl border border-slate-200 p-4 transition hover:border-orange-300 dark:border-slate-700"
            >
              <span className="block font-semibold text-slate-900 group-hover:text-orange-700 dark:text-slate-100">
                {chapter.page.title}
              </span>
              <span className="mt-1 block text-sm leading-relaxed text-slate-600 dark:text-slate-400">
                {chapter.page.summary}
              </span>
            </a>
          ))}
        </div>
      </Section>

      <Section id="reading-order">
        <ol>
          <li>Chapters 1 and 2: a resource end to end, then its input checked and its errors mapped.</li>
          <li>Chapters 3, 4 and 5: jobs, then the two ways their events leave the app (webhooks, the live stream).</li>
          <li>Chapters 6 and 7: who may call the API, and the commands operators run.</li>
          <li>Chapter 8: one job followed through every part built so far.</li>
          <li>Chapter 9: what changes in production.</li>
          <li>
            Chapters 10–12, after 1–9: the recipes for caching, testing and event fan-out, which take the pieces above
            for granted.
          </li>
        </ol>
        <p>
          The framework pages (from <a href={hrefFor('getting-started')}>Getting started</a> on) describe each API in
          full; the chapters link to them instead of repeating them.
        </p>
      </Section>
    </>
  )
}

export default definePage({
  title: 'Cookbook',
  summary:
    'Build ForgeRun, a job-execution service, step by step with Rustforge: twelve chapters whose every step runs in this repository.',
  headings,
  component: Overview,
})
