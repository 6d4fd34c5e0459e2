import migration from '../../../../../app/migrations/postgres/20261205000001_forgerun.sql?raw'
import routesMod from '../../../../../app/src/routes/mod.rs?raw'
import jobsRoute from '../../../../../app/src/routes/jobs.rs?raw'
import store from '../../../../../app/src/jobs/store.rs?raw'
import verify from '../../../../verify/01-first-resource.sh?raw'
import { Code, Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { excerpt } from '../../lib/region'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: The table',
  'step-2': 'Step 2: The row and its queries',
  'step-3': 'Step 3: The view',
  'step-4': 'Step 4: The handler',
  'step-5': 'Step 5: The route',
  'step-6': 'Step 6: Verify',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)


function Chapter01FirstResource() {
  return (
    <>
      <Section id="step-0">
        <p>
          The first resource is the one every later chapter uses: a <strong>job</strong>, read back with{' '}
          <code>GET /v1/jobs/{'{id}'}</code>. Following it from the table to the route shows the four places every
          ForgeRun resource lives:
        </p>
        <ul>
          <li>
            the migration that creates its table (<code>app/migrations/postgres/</code>, with a twin in{' '}
            <code>app/migrations/sqlite/</code>);
          </li>
          <li>
            its row type and queries, in the domain module (<code>app/src/jobs/store.rs</code>);
          </li>
          <li>
            the view the API shows and the handler, in the route file (<code>app/src/routes/jobs.rs</code>);
          </li>
          <li>
            one line in the route table (<code>app/src/routes/mod.rs</code>).
          </li>
        </ul>
        <p>
          It depends on the application context (<code>ctx.db</code>, <code>ctx.cache</code>) and on the{' '}
          <code>Caller</code> that authentication puts on every <code>/v1</code> request. How a job gets written is
          Chapter 3; here it is only read.
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/migrations/postgres/20261205000001_forgerun.sql" />
        <Code
          code={excerpt(migration, 'CREATE TABLE jobs (', 'CREATE INDEX jobs_finished')}
          language="sql"
          title="app/migrations/postgres/20261205000001_forgerun.sql"
        />
        <p>
          Ids are UUIDs stored as <code>TEXT</code>, so the same queries run on SQLite; times are{' '}
          <code>TIMESTAMPTZ</code>, read as <code>core_db::db::Timestamp</code>. <code>version</code> is bumped by
          every change, which is what makes a transition a compare-and-set (Chapter 3). The indexes lead with{' '}
          <code>client_id</code> because every read is scoped to one client.
        </p>
        <p>
          <code>app migrate</code> (or any start with <code>MIGRATE_ON_START</code> on) applies the framework's
          migrations, then the app's, for the engine <code>DATABASE_URL</code> names. See <a href={hrefFor('database')}>Database</a> for the handle and
          the migrator.
        </p>
        <Callout kind="warning">
          A migration that has run is never edited: the migrator keeps each file's checksum and refuses a changed one.
          Change a table with a new file, as <code>20261206000002_job_events_key.sql</code> does for{' '}
          <code>job_events</code>.
        </Callout>
      </Section>

      <Section id="step-2">
        <FileRef path="app/src/jobs/store.rs" />
        <p>
          <code>JobRow</code> mirrors the table (<code>#[derive(sqlx::FromRow)]</code>, one field per column of{' '}
          <code>JOB_COLUMNS</code>). The reads:
        </p>
        <Snippet source={store} region="find-job" title="app/src/jobs/store.rs" />
        <ul>
          <li>
            <code>on_db!</code> runs one sqlx query on whichever pool the <code>Database</code> holds, PostgreSQL or
            SQLite.
          </li>
          <li>
            <code>find_for_client</code> answers <code>None</code> for an id that is not a UUID (no query), and for a
            job of another client: the caller cannot tell the two apart.
          </li>
          <li>
            It reads through the cache with two tags, the job's and its client's, so every transition can drop the copy
            it made stale. A cache that is down costs a warning, not the request. Chapter 10 is the recipe.
          </li>
        </ul>
      </Section>

      <Section id="step-3">
        <FileRef path="app/src/routes/jobs.rs" />
        <p>
          The API never serialises the row. <code>JobView</code> is the contract: it leaves out what is internal (
          <code>client_id</code>, <code>version</code>, <code>dispatch_id</code>, <code>cancel_requested</code>) and
          renames <code>id</code> to <code>job_id</code>. The conversion is one <code>From</code>:
        </p>
        <Snippet source={jobsRoute} region="job-view-from" title="app/src/routes/jobs.rs" />
      </Section>

      <Section id="step-4">
        <FileRef path="app/src/routes/jobs.rs" />
        <p>
          Every job route starts from <code>owned</code>: the caller's job or a 404 with the app's own code.
        </p>
        <Snippet source={jobsRoute} region="job-not-found" title="app/src/routes/jobs.rs" />
        <p>The handler is then three lines:</p>
        <Snippet source={jobsRoute} region="show" title="app/src/routes/jobs.rs" />
        <ul>
          <li>
            The extractors say what the handler needs: the state, the authenticated <code>Caller</code>, the path.
          </li>
          <li>
            <code>ApiResult&lt;JobView&gt;</code> is <code>Result&lt;ApiResponse&lt;JobView&gt;, AppError&gt;</code>:{' '}
            <code>ApiResponse::success</code> answers 200 <code>{'{"data": …}'}</code> (an empty message is left out),
            and <code>?</code> turns a database error into a 500 whose details stay in the log. See{' '}
            <a href={hrefFor('responses')}>Responses</a>.
          </li>
          <li>
            <code>#[utoipa::path]</code> documents the route; the next step registers it from that annotation.
          </li>
        </ul>
      </Section>

      <Section id="step-5">
        <FileRef path="app/src/routes/mod.rs" />
        <Snippet source={routesMod} region="route-table" title="app/src/routes/mod.rs" />
        <p>
          <code>routes!(jobs::show)</code> takes the method and path from the handler's annotation, so the router and
          the OpenAPI document at <code>/openapi.json</code> are built from the same list and cannot disagree. The
          route sits in the <code>authenticated</code> group: <code>routes()</code> wraps that group in the
          authentication layer (401 before the handler runs) and the per-client rate limit. A route anyone may call,
          such as <code>POST /v1/clients</code>, goes in <code>public</code>.
        </p>
      </Section>

      <Section id="step-6">
        <p>
          <code>core-docs/verify/01-first-resource.sh</code>, run by <code>cargo test -p app --test cookbook</code>{' '}
          against a fresh server and worker. First a client (<code>POST /v1/clients</code>, the key shown once):
        </p>
        <Snippet source={verify} region="client" language="bash" title="core-docs/verify/01-first-resource.sh" />
        <p>Submit a job, wait for it to finish, and read it:</p>
        <Snippet source={verify} region="submit-and-get" language="bash" title="core-docs/verify/01-first-resource.sh" />
        <p>The row the handler read:</p>
        <Snippet source={verify} region="psql" language="bash" title="core-docs/verify/01-first-resource.sh" />
        <p>And the rule that another client's job does not exist:</p>
        <Snippet source={verify} region="not-found" language="bash" title="core-docs/verify/01-first-resource.sh" />
        <p>
          Against your own <code>cargo run -p app</code> on PostgreSQL: <code>bash core-docs/verify/01-first-resource.sh</code>{' '}
          with <code>DATABASE_URL</code> set.
        </p>
      </Section>

      <Section id="decision-rule">
        <DecisionRule
          rules={[
            [
              'A new resource the API exposes',
              'A migration pair (PostgreSQL and SQLite), a row type and its queries in the domain module, a view and a handler in the route file, one routes! line.',
            ],
            [
              'A column the client should not see',
              'Keep it in the row, leave it out of the view. Never serialise a row type as the response.',
            ],
            [
              "A read of something the caller may not own",
              'Scope the query to the caller and answer 404 with an app code, the same as for an id that does not exist. A 403 would confirm the id is real.',
            ],
            [
              'A read that is frequent and changes only at known points',
              <>
                Read through the cache with tags and invalidate where it changes (Chapter 10). Otherwise read the
                database directly: the report does, because it must agree with the events it reads next.
              </>,
            ],
            [
              'A list of the resource',
              <>
                A <a href={hrefFor('datatable')}>DataTable</a> scoped with <code>where_eq</code>, not a hand-written
                query: paging, sorting and filters come with it.
              </>,
            ],
          ]}
        />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 1: A first resource end to end',
  summary:
    'GET /v1/jobs/{id} from the migration to the route: the table, the row and its queries, the view, the handler and the route table.',
  headings,
  component: Chapter01FirstResource,
})
