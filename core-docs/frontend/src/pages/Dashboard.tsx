import lib from '../../../../app/src/lib.rs?raw'
import admin from '../../../../app/src/routes/admin.rs?raw'
import consoleSource from '../../../../app/src/routes/console.rs?raw'
import { Code, Snippet } from '../components/Code'
import { Callout, sectionsOf } from '../components/Section'
import { hrefFor } from '../lib/router'
import { definePage } from './define'

const headings = {
  mount: 'Mounting it',
  'sign-in': 'Sign-in, sessions and CSRF',
  page: 'The page',
  api: 'The JSON API',
  live: 'Live counts',
  panels: 'Panels: the application’s own pages',
}
const Section = sectionsOf(headings)

const apiRoutes: [string, string][] = [
  ['GET api/queues', 'per queue and overall: ready, delayed, running, failed'],
  ['GET api/failed', 'the failed jobs (DataTable: job_name, queue, error, failed_from, failed_before; page, per_page, sort)'],
  ['GET api/failed/{id}', 'one failed job with its payload, error and attempts'],
  ['POST api/failed/{id}/retry', 'dispatches it again, then deletes the row'],
  ['POST api/failed/{id}/forget', 'deletes the row'],
  ['POST api/failed/bulk/preview', '{action, filter} → how many rows the action would touch'],
  ['POST api/failed/bulk', '{action, filter, confirm_count}: acts only if the count is still the one confirmed, else 409'],
  ['GET api/schedule', 'the scheduled jobs given to the builder: name, cron expression, next run, overlap rule'],
  ['GET api/throughput', 'jobs finished and failed per sample over the last hour, overall and per queue'],
  ['GET api/jobs/running', 'the jobs running now, in any process (queue, limit): id, name, attempt, dispatch time, lease end'],
  ['GET api/jobs/recent', 'the last jobs this process’s workers finished (queue, limit): outcome, attempt, duration, finish time'],
  ['GET api/session', 'the session’s CSRF token and expiry'],
  ['GET api/events', 'server-sent events: the queue counts and the running and recent jobs at once and every second, and each new throughput sample'],
  ['GET api/panels', 'the application’s panels: id, title, filters, columns'],
  ['GET api/panels/{panel}/rows', 'the panel’s list (the application’s handler, usually a DataTable)'],
  ['GET api/panels/{panel}/records/{id}', 'one record: fields, timeline with the time between entries, tables, JSON, links'],
  ['GET api/panels/{panel}/records/{id}/live', 'server-sent record events until the record is finished'],
]

function Dashboard() {
  return (
    <>
      <Section id="mount">
        <p>
          <code>core-dashboard</code> is the place to look at a Rustforge app’s jobs: the queues with live counts, the
          failed jobs with search, retry and forget, throughput and failure-rate charts over the last hour, and bulk actions on a filter after a confirmation that says how many
          rows they will touch. It is a <code>Router</code> an application nests anywhere; the example application mounts
          it at <code>/admin/jobs</code>, over its queue, its <code>failed_jobs</code> table and the queues its jobs run
          on, signed in with the <code>ADMIN_TOKEN</code> setting:
        </p>
        <Snippet source={admin} region="dashboard" title="app/src/routes/admin.rs" />
        <p>
          Mount it with <code>nest_service</code> (plain <code>nest</code> would not route <code>/admin/jobs/</code>,
          where sign-in leads), before <code>core_web::middleware::stack</code> so its requests get ids, logs, timeouts
          and body limits like every other route. The dashboard is not part of the public API: it is not in{' '}
          <code>/openapi.json</code>.
        </p>
        <Snippet source={lib} region="router" title="app/src/lib.rs" />
        <Callout kind="warning">
          Nothing is public. Without <code>token_login</code> or an <code>authorize</code> hook every request gets a 401;
          without <code>ADMIN_TOKEN</code> the example application mounts <code>Dashboard::disabled</code>, which answers
          503 <code>DASHBOARD_DISABLED</code> on every path and says why.
        </Callout>
      </Section>

      <Section id="sign-in">
        <ul>
          <li>
            <code>GET /admin/jobs/login</code> is a sign-in form; the right token starts a session: a random 256-bit id
            kept on the server for 12 hours, in a cookie that is <code>HttpOnly</code>, <code>SameSite=Strict</code> and
            scoped to the dashboard’s path (<code>Secure</code> over HTTPS). The token itself is kept only as a SHA-256
            digest and compared in constant time.
          </li>
          <li>
            Without a session, API requests get 401 JSON and page requests are redirected to the sign-in form.
          </li>
          <li>
            Every request that changes something carries the session’s CSRF token in <code>x-csrf-token</code> (403
            otherwise), and a request from another origin is refused, sign-in included.
          </li>
          <li>
            After five wrong tokens in a minute from one client address, sign-in answers 429 with{' '}
            <code>Retry-After</code> without looking at the token.
          </li>
        </ul>
        <p>
          An application with its own authentication gives <code>authorize</code> a hook instead, any{' '}
          <code>Fn(&amp;Parts) -&gt; impl Future&lt;Output = Result&lt;(), AppError&gt;&gt;</code>; it runs before every
          request.
        </p>
      </Section>

      <Section id="page">
        <figure>
          <img
            src="./dashboard.png"
            alt="The jobs dashboard: queue counts, and the failed jobs with their filters"
            className="rounded-lg border border-slate-200 dark:border-slate-700"
          />
          <figcaption>
            The dashboard of the example application, as its browser tests see it (the screenshot is taken by them).
          </figcaption>
        </figure>
        <p>
          The page is built like this site (Vite, React, Tailwind, a committed lockfile) and served by the crate from{' '}
          <code>core-dashboard/frontend/dist</code> behind the session; until it is built, the dashboard shows a short page
          that says how:
        </p>
        <Code code="cd core-dashboard/frontend && npm install && npm run build" language="bash" />
        <p>
          Forgetting a job always asks first; a bulk action asks with the number of rows it will touch, and if that number
          changed before the confirmation arrives the server refuses (409) and the page asks again with the new count. The
          page follows the system’s light or dark scheme and works on a 375 px wide screen.
        </p>
      </Section>

      <Section id="api">
        <p>
          Everything the page shows comes from a JSON API under the mount point, in the framework’s{' '}
          <a href={hrefFor('responses')}>response shape</a>, behind the same session:
        </p>
        <div className="overflow-x-auto">
          <table>
            <thead>
              <tr>
                <th>Route</th>
                <th>What it does</th>
              </tr>
            </thead>
            <tbody>
              {apiRoutes.map(([route, what]) => (
                <tr key={route}>
                  <td>
                    <code>{route}</code>
                  </td>
                  <td>{what}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
        <p>
          One filter means the same rows in the list and in a bulk action; a bulk action touches only the rows that existed
          when it was confirmed, so a job that fails again meanwhile is left for the next one.
        </p>
      </Section>

      <Section id="live">
        <p>
          <code>GET api/events</code> sends a <code>queues</code> event with the same JSON as <code>api/queues</code> as
          soon as it opens and then every second (<code>live_interval</code> on the builder); the counts are read only
          while a client is connected. When they cannot be read it sends an <code>error</code> event and carries on. The
          page falls back to polling when the stream is refused.
        </p>
        <p>
          The charts (jobs finished per minute, and the failure rate, overall or for one queue) come from core-jobs’ own
          counters, the ones <code>/metrics</code> exports: each <code>Queue</code> carries a <code>JobCounters</code>{' '}
          registry its workers add to with one relaxed atomic add per job, and the dashboard samples it every 10 seconds
          (<code>sample_interval</code>) into a window of the last hour, sent as <code>throughput</code> events. They are
          the counts of the workers in the dashboard’s process: with the in-process queue, <code>app serve</code> runs
          them; jobs run by separate <code>app worker</code> processes are not in its charts.
        </p>
        <p>
          The same stream sends a <code>jobs</code> event each second with the running and recent jobs of the shown
          queues, also served by <code>GET api/jobs/running</code> and <code>GET api/jobs/recent</code>. Running jobs are
          read from the queue (<code>Queue::running</code>, the leased jobs), so they include those of other processes;
          recent ones come from a ring of the last finished jobs kept by the same in-process counters
          (<code>recent_jobs</code> on the builder, 100 by default, 0 to turn it off), so like the charts they show only
          the dashboard’s own workers.
        </p>
      </Section>

      <Section id="panels">
        <p>
          An application adds its own pages to the dashboard without writing frontend code: a <code>Panel</code> is a list
          with the filters it allows and the columns it shows, and records that open from it with their fields, a timeline
          (each entry with the time since the one before), tables, JSON documents and links, followed live while they are
          not finished. The application answers three routes with ordinary axum handlers; the dashboard mounts them behind
          its sign-in and draws them. ForgeRun’s console is one: every client’s jobs with the filters of{' '}
          <code>GET /v1/jobs</code> and the client’s, and a job’s timeline, report, artifacts and webhook deliveries with
          their HTTP status codes.
        </p>
        <Snippet source={consoleSource} region="console-panel" title="app/src/routes/console.rs" />
        <figure>
          <img
            src="./console.png"
            alt="ForgeRun's console: a finished job with its fields, its timeline with the time between states, and its webhook deliveries"
            className="rounded-lg border border-slate-200 dark:border-slate-700"
          />
          <figcaption>A ForgeRun job in the console, followed live until it succeeded (taken by the console’s browser test).</figcaption>
        </figure>
        <p>
          A record’s live stream is <code>core_dashboard::panel::live</code> over a stream of records: each is sent as a{' '}
          <code>record</code> event and the stream ends after the first finished one. The console wakes it from the job’s
          event channel, the one <code>GET /v1/jobs/{'{id}'}/events</code> follows, and reads the job again every five
          seconds should a wake-up be lost.
        </p>
      </Section>
    </>
  )
}

export default definePage({
  title: 'Jobs dashboard',
  summary: 'A mountable page for the queues and failed jobs: live counts, search, retry, forget and bulk actions, behind a sign-in.',
  headings,
  component: Dashboard,
})
