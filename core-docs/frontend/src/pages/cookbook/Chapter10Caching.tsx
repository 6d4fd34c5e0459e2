import verify from '../../../../verify/10-caching.sh?raw'
import context from '../../../../../app/src/context.rs?raw'
import retention from '../../../../../app/src/jobs/retention.rs?raw'
import store from '../../../../../app/src/jobs/store.rs?raw'
import views from '../../../../../app/src/jobs/views.rs?raw'
import jobsRoutes from '../../../../../app/src/routes/jobs.rs?raw'
import routes from '../../../../../app/src/routes/mod.rs?raw'
import viewsTable from '../../../../../app/migrations/postgres/20261207000001_report_views.sql?raw'
import { Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: The cache in the context',
  'step-2': 'Step 2: remember() on the job read',
  'step-3': 'Step 3: Invalidate on write',
  'step-4': 'Step 4: Counters: the rate limit and the report views',
  'step-5': 'Step 5: Verify with curl and redis-cli',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)

function Chapter10Caching() {
  return (
    <>
      <Section id="step-0">
        <p>
          ForgeRun caches two kinds of thing: copies of rows that are read far more often than they change (a job, as{' '}
          <code>GET /v1/jobs/{'{id}'}</code> and every route that checks a job's owner read it), and counters that
          would cost a database write per request (the per-client rate limit, the report views). This recipe is how the
          app does both. The cache API itself (every method, the drivers, the guarantees) is on the{' '}
          <a href={hrefFor('caching')}>Caching</a> page; this chapter only uses it.
        </p>
        <ul>
          <li>
            <strong>Where it lives.</strong> One <code>core_db::Cache</code> in the application context,{' '}
            <code>ctx.cache</code> (<code>app/src/context.rs</code>), opened once at start-up and shared by the
            handlers, the rate limiter, the jobs and the scheduler.
          </li>
          <li>
            <strong>Which driver.</strong> <code>CACHE_URL</code>, which falls back to <code>REDIS_URL</code>, else{' '}
            <code>memory://</code>: the memory driver (one process, the default), <code>redis://</code> or{' '}
            <code>rediss://</code> (shared by every server, worker and scheduler), or <code>tiered+redis://</code> (a
            memory L1 in each process in front of Redis, kept coherent across processes).
          </li>
          <li>
            <strong>Key prefix.</strong> On Redis every key is under <code>APP_NAME</code> (default{' '}
            <code>rustforge</code>): the cached job <code>job:{'{id}'}</code> is{' '}
            <code>{'{APP_NAME}'}:cache:job:{'{id}'}</code>, so two applications can share one Redis without seeing
            each other's keys.
          </li>
        </ul>
        <p>
          The steps below need no Redis to run (the memory driver behaves the same), but the verification in Step 5
          reads the keys with <code>redis-cli</code>, so it runs the app with <code>REDIS_URL</code> set.
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/src/context.rs" />
        <p>The context holds the cache next to the database and the queue:</p>
        <Snippet source={context} region="cache-field" title="app/src/context.rs" />
        <p>
          <code>AppContext::connect</code> builds it from the settings with the application name as the prefix. A URL
          that cannot be reached stops the start-up with the setting's name (its password redacted), rather than
          serving with a cache that is not there:
        </p>
        <Snippet source={context} region="connect-cache" title="app/src/context.rs" />
        <p>
          The handle is cheap to clone and every clone shares the same connection, memory and in-flight computations.
          That is why there is exactly one: the handlers read <code>ctx.cache</code>, the rate limiter gets a clone,
          and <code>AppContext::job_context</code> hands the same cache to every job, so a job's invalidation reaches
          the reads the handlers make.
        </p>
      </Section>

      <Section id="step-2">
        <FileRef path="app/src/jobs/store.rs" />
        <p>
          Every read of one job goes through <code>find_for_client</code>. Its key and tags are named by two small
          functions, and its TTL is a constant beside them:
        </p>
        <Snippet source={store} region="job-cache-keys" title="app/src/jobs/store.rs" />
        <Snippet source={store} region="remember-job" title="app/src/jobs/store.rs" />
        <ul>
          <li>
            <strong>The key is the job, not the caller.</strong> <code>job:{'{id}'}</code> holds the whole row (as
            JSON), whoever asked; the owner check runs on the cached row (<code>filter</code>), so one entry serves the
            owner's reads and another client's 404 alike. An id that is not a UUID never reaches the cache.
          </li>
          <li>
            <strong>Tags say what the entry depends on:</strong> the job (<code>job:{'{id}'}</code>) and its client's
            jobs (<code>client:{'{client_id}'}:jobs</code>). Writers invalidate the tag, not the key (Step 3).
          </li>
          <li>
            <strong>The TTL is a backstop, not the freshness rule.</strong> Writes invalidate the entry at once; the
            300 s only bounds how long a copy can outlive an invalidation that failed (Redis unreachable at that moment:
            the failure is logged).
          </li>
          <li>
            <strong>Single flight matters here.</strong> A client that polls its job, or a dashboard with many tabs,
            misses the key together right after each transition has invalidated it. <code>remember_with_tags</code>{' '}
            runs the <code>SELECT</code> once (once across every process on Redis) and hands its row to all of them,
            so an invalidation never turns into a burst of identical queries. And a load that started before an
            invalidation is not stored, so a slow read cannot put the old row back after the transition.
          </li>
          <li>
            <strong>The cache is optional.</strong> When it fails, the read logs a warning and goes to the database: a
            cache outage slows the API down instead of taking it down.
          </li>
        </ul>
        <p>The handlers reach it through one helper that every job route calls first:</p>
        <Snippet source={jobsRoutes} region="owned" title="app/src/routes/jobs.rs" />
        <Callout kind="note">
          The report (<code>GET /v1/jobs/{'{id}'}/report</code>) checks the owner through the cache but then reads the
          row from the database, not the cache: it must agree with the events it reads next, and a cached copy may lag
          a transition by the moment between its commit and its invalidation.
        </Callout>
      </Section>

      <Section id="step-3">
        <FileRef path="app/src/jobs/store.rs" />
        <p>
          A job changes only through its transitions, and every committed transition ends in{' '}
          <code>after_commit</code>, which drops the job's cached reads and wakes its live streams together:
        </p>
        <Snippet source={store} region="after-commit-invalidate" title="app/src/jobs/store.rs (after_commit)" />
        <Snippet source={store} region="invalidate" title="app/src/jobs/store.rs" />
        <ul>
          <li>
            <strong>After the commit, never before.</strong> Invalidating first leaves a window in which a reader caches
            the old row again. Once <code>invalidate</code> has returned, no read that starts later returns the row as
            it was before the commit.
          </li>
          <li>
            <strong>Every write path.</strong> Besides the transitions (the API's cancel and retry, the worker's start
            and finish), the flag that asks a running job to stop (<code>request_cancel</code>), the start-up sweep that
            re-dispatches jobs, and the retention pass that deletes old jobs (<code>app/src/jobs/retention.rs</code>)
            call the same <code>invalidate</code>.
          </li>
          <li>
            <strong>Tag or <code>forget</code>?</strong> <code>forget(key)</code> drops one key; it is right when the
            writer knows the only key (the report views' flush in Step 4 forgets its marker that way).{' '}
            <code>invalidate_tag</code> drops every key tagged with the job: today only <code>job:{'{id}'}</code>, but a
            cached read added later that tags itself with the job is invalidated by the same writers, unchanged. The
            client tag is not invalidated by the app today; it lets one call drop every cached job of a client.
          </li>
        </ul>
      </Section>

      <Section id="step-4">
        <FileRef path="app/src/routes/mod.rs" />
        <p>
          <strong>The rate limit.</strong> The authenticated routes count every request against the caller's client,{' '}
          <code>RATE_LIMIT_PER_MINUTE</code> (600 by default) per minute, on the same cache, so every server process
          spends one budget:
        </p>
        <Snippet source={routes} region="rate-limit" title="app/src/routes/mod.rs" />
        <p>
          core-web's <code>RateLimiter</code> counts with <code>increment_ex</code> on the key{' '}
          <code>rl:default:{'{window start}'}:{'{hash}'}</code> (the window start in Unix seconds, aligned to the
          minute; the hash is the first 16 bytes of the client id's SHA-256, so no id is stored in clear). The counter
          gets a TTL up to just after its window and is never extended. Each answer carries{' '}
          <code>RateLimit-Policy: "default";q=600;w=60</code> and <code>RateLimit: "default";r=…;t=…</code> (requests
          left, seconds to the window's end); past the limit the answer is 429 <code>RFA_REQUEST_RATE_LIMITED</code>{' '}
          with <code>Retry-After</code>. With a limit of 128 or more a process leases blocks of tickets from the counter
          (at most 9 at a time for 600), so the counter can run ahead of the requests served; no more than the limit
          are ever allowed. When the cache is down the limiter lets requests through without the headers.
        </p>

        <FileRef path="app/src/jobs/views.rs" />
        <p>
          <strong>A view counter flushed by a scheduled job.</strong> The report counts its reads. Writing a row per
          read would turn a read into a write; instead each read is one atomic cache increment, and a scheduled job
          moves the counts into the database in batches. The keys:
        </p>
        <Snippet source={views} region="view-keys" title="app/src/jobs/views.rs" />
        <Snippet source={views} region="record-view" title="app/src/jobs/views.rs" />
        <p>
          The cache has no "list the keys that match" on purpose (that is a scan of the whole prefix), so the read that
          creates a counter (the increment answers 1) also writes a marker tagged <code>report-views</code>, and the
          flush asks the tag. The report shows what is stored plus what is still pending, so a reader sees every read
          at once:
        </p>
        <Snippet source={jobsRoutes} region="count-view" title="app/src/routes/jobs.rs (report)" />
        <p>The flush reads and resets each counter in one atomic step, <code>pull</code>:</p>
        <Snippet source={views} region="flush" title="app/src/jobs/views.rs" />
        <ul>
          <li>
            <strong>Forget the marker, then pull the counter.</strong> A read counted between the two is in the value
            pulled; a read after the pull finds no counter, starts one at 1 and writes a new marker for the next pass.
            Two flushes that race pull each counter once (<code>pull</code> is atomic). No view is lost or stored twice;{' '}
            <code>app/tests/report_views.rs</code> races 40 reads against repeated flushes, on both driver sets, and
            checks exactly that.
          </li>
          <li>
            <strong>A failed write gives the views back</strong> (<code>increment</code> by what was pulled, and a new
            marker), so the next pass stores them.
          </li>
          <li>
            <strong>Exact in the database, approximate for a moment on screen.</strong> A report read that races a flush
            of the same job may be off by the views being moved, once. And when the marker cannot be written (the cache
            failed between the two calls, logged), no flush finds that counter: its views still show in the report but
            stay in the cache.
          </li>
        </ul>
        <p>
          The counts go to a table of their own (migration <code>20261207000001_report_views.sql</code>, in{' '}
          <code>app/migrations/postgres</code> and <code>app/migrations/sqlite</code>), not a column of{' '}
          <code>jobs</code>, so the flush never locks the row the transitions compare-and-set. An upsert adds to it; a
          job the retention pass has deleted simply gets nothing:
        </p>
        <Snippet source={viewsTable} region="report-views-table" language="sql" title="app/migrations/postgres/20261207000001_report_views.sql" />
        <Snippet source={views} region="add-views" title="app/src/jobs/views.rs" />
        <FileRef path="app/src/jobs/retention.rs" />
        <p>
          The flush is a core-jobs job (<code>forgerun.report_views</code>, registered on the worker) that the
          application's schedule dispatches every 15 seconds, next to the hourly retention pass. <code>app scheduler</code>{' '}
          runs the schedule (or <code>app serve</code> itself on the in-process queue); with several schedulers each
          tick is dispatched once, and <code>without_overlapping_for</code> keeps two flushes apart:
        </p>
        <Snippet source={retention} region="schedule" title="app/src/jobs/retention.rs" />
      </Section>

      <Section id="step-5">
        <FileRef path="core-docs/verify/10-caching.sh" />
        <p>
          Run the app on Redis and PostgreSQL with a worker: with <code>REDIS_URL=redis://127.0.0.1:6379</code> and{' '}
          <code>DATABASE_URL=postgres://…</code> set, <code>cargo run -p app</code> and{' '}
          <code>cargo run -p app -- worker</code>; then <code>bash core-docs/verify/10-caching.sh</code>. The test suite runs the same script against a fresh
          server and worker (<code>cargo test -p app --test cookbook chapter_10</code>). First a client and a finished
          job:
        </p>
        <Snippet source={verify} region="finished-job" language="bash" title="core-docs/verify/10-caching.sh" />
        <p>Two reads give the same answer; the second is served from the cache:</p>
        <Snippet source={verify} region="read-twice" language="bash" />
        <p>
          The keys behind it: the value, the job's tag entries and the generation keys that fence{' '}
          <code>remember</code> against invalidations. The script checks that the cached row has the state the API
          answered and that its TTL is above 0 and at most 300 s:
        </p>
        <Snippet source={verify} region="job-keys" language="bash" />
        <p>
          The scan lists <code>{'{APP_NAME}'}:cache:job:{'{id}'}</code> (the row),{' '}
          <code>{'{APP_NAME}'}:cache-tag:k:job:{'{id}'}</code> (the key's tags),{' '}
          <code>{'{APP_NAME}'}:cache-tag:t:job:{'{id}'}</code> (the tag's keys) and the two{' '}
          <code>{'{APP_NAME}'}:cache-gen:…</code> generations; the client's tag is{' '}
          <code>{'{APP_NAME}'}:cache-tag:t:client:{'{client_id}'}:jobs</code>.
        </p>
        <p>
          A write invalidates: a job scheduled an hour ahead is read (and cached) as QUEUED, then canceled; the key is
          gone the moment the cancel answers, and the next read shows CANCELED and caches it again:
        </p>
        <Snippet source={verify} region="invalidate" language="bash" />
        <p>
          The rate limit's headers and the counter they come from (the script checks that the counter covers the
          request's ticket, <code>q − r</code>, and expires with its window):
        </p>
        <Snippet source={verify} region="rate-limit" language="bash" />
        <p>
          A run prints <code>RateLimit-Policy: "default";q=600;w=60</code>, <code>RateLimit: "default";r=591;t=23</code>{' '}
          and a counter such as <code>{'{APP_NAME}'}:cache:rl:default:1796464440:a19b…</code> holding 15 with a TTL of
          23 s: this process leased tickets ahead of the 9 it had handed out.
        </p>
        <p>Three report reads count 1, 2, 3 in the cache, and nothing in the database yet:</p>
        <Snippet source={verify} region="report-views" language="bash" />
        <p>
          Then an <code>app scheduler</code> of the script's own dispatches the flush; within 15 seconds the counter is
          gone, the table holds 3, and the next read shows 4 (3 stored, 1 pending):
        </p>
        <Snippet source={verify} region="flush" language="bash" />
      </Section>

      <Section id="decision-rule">
        <DecisionRule
          rules={[
            [
              'The same query is read far more often than it changes (say more than 10 reads a minute, fewer than one change a minute)',
              <>
                Cache it with <code>remember_with_tags</code>, keyed by what identifies the row,{' '}
                <code>job:{'{id}'}</code>; tag it with what it depends on; give it a TTL as a backstop (minutes, not
                hours).
              </>,
            ],
            [
              'The data changes',
              <>
                Invalidate its tag (or <code>forget</code> its key) in every write path, after the commit. Never rely on
                the TTL for consistency: it only bounds the damage of an invalidation that failed.
              </>,
            ],
            [
              'The value must be exact for the reader, or is real-time',
              <>
                Do not cache it: balances, permissions and anything checked against another read (the report reads its
                row from the database so it agrees with its events); per-user data that is read once.
              </>,
            ],
            [
              'Something is counted on every request (rate limits, views, usage)',
              <>
                Count in the cache (<code>increment</code>, <code>increment_ex</code> for fixed windows) and move the
                counts to the database with a scheduled job that resets each counter atomically (<code>pull</code>).
              </>,
            ],
            [
              'Many processes read the same hot keys, and a network round trip per read matters',
              <>
                Use <code>tiered+redis://</code>: reads come from each process's memory, writes and invalidations still go
                through Redis and evict the other processes' copies. Stay on <code>redis://</code> when reads are spread
                over many keys (an L1 would rarely hit) or every read must see the last write at once.
              </>,
            ],
            [
              'One process, nothing shared',
              <>
                The default <code>memory://</code> is enough; the same code moves to Redis by setting{' '}
                <code>CACHE_URL</code>.
              </>,
            ],
          ]}
        />
        <p>
          The API behind every call here is on the <a href={hrefFor('caching')}>Caching</a> page:{' '}
          <a href={hrefFor('caching', 'remember')}>remember</a>, <a href={hrefFor('caching', 'tags')}>tags</a>,{' '}
          <a href={hrefFor('caching', 'counters')}>counters</a> and <a href={hrefFor('caching', 'tiered')}>the tiered cache</a>.
        </p>
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 10: Caching recipe',
  summary:
    "How ForgeRun caches: the job read through remember_with_tags, invalidated by every transition, the rate limit and the report views counted in the cache, checked with curl and redis-cli.",
  headings,
  component: Chapter10Caching,
})
