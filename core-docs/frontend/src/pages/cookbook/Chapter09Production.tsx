import example from '../../../../../app/rustforge.example.toml?raw'
import metrics from '../../../../../app/src/routes/metrics.rs?raw'
import main from '../../../../../app/src/main.rs?raw'
import multiprocess from '../../../../../app/tests/multiprocess.rs?raw'
import verify from '../../../../verify/09-production.sh?raw'
import { Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: Configuration per environment',
  'step-2': 'Step 2: Graceful shutdown',
  'step-3': 'Step 3: Health, readiness and metrics',
  'step-4': 'Step 4: Many processes on PostgreSQL, Redis and S3',
  'step-5': 'Step 5: Verify',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)

function Chapter09Production() {
  return (
    <>
      <Section id="step-0">
        <p>
          The same binary that runs on a laptop with SQLite and no Redis runs a deployment. What changes is settings,
          not code: the drivers (PostgreSQL, Redis, S3), the secrets, and how processes start and stop. This chapter
          covers the settings file (<code>app/rustforge.example.toml</code>), the start and stop in{' '}
          <code>app/src/main.rs</code>, the operations routes (<code>/health</code>, <code>/ready</code>,{' '}
          <code>/metrics</code>), and the multi-process shape that <code>app/tests/multiprocess.rs</code> proves.
          Every setting and its default is on the <a href={hrefFor('configuration')}>Configuration</a> page.
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/rustforge.example.toml" />
        <p>
          Settings come from three sources: the environment wins over <code>.env</code>, which wins over{' '}
          <code>rustforge.toml</code> (or the file named by <code>RUSTFORGE_CONFIG</code>). TOML keys are the settings'
          names in lower case. Keep what is the same for every process of an environment in the file. Keep secrets and
          per-process values in the environment. <code>app/tests/settings.rs</code> loads this example, so every key
          in it is one the app accepts:
        </p>
        <Snippet source={example} region="environment" language="toml" title="app/rustforge.example.toml" />
        <Snippet source={example} region="backends" language="toml" />
        <Snippet source={example} region="lifecycle" language="toml" />
        <Snippet source={example} region="limits" language="toml" />
        <p>
          Settings are loaded and checked before anything starts. An invalid value stops the process with status 78
          (<code>EX_CONFIG</code>) and a message naming the variable, its value (passwords masked) and what it
          accepts. <code>APP_ENV=production</code> adds its own rule: <code>API_KEY_SECRET</code> must be given.
          Development generates one instead.
        </p>
        <Snippet source={main} region="ch9-settings" title="app/src/main.rs" />
      </Section>

      <Section id="step-2">
        <FileRef path="app/src/main.rs" />
        <p>
          <code>serve</code>, <code>worker</code> and <code>scheduler</code> each create one <code>Shutdown</code> that
          fires on SIGINT or SIGTERM. The server, its in-process worker (on <code>memory://</code>) and the outbox relay
          all watch it. On the signal the server stops accepting connections and lets requests in flight finish, and
          workers stop claiming and let running jobs finish. Each gets at most <code>SHUTDOWN_GRACE_SECS</code> (30 by
          default):
        </p>
        <Snippet source={main} region="ch9-serve" title="app/src/main.rs" />
        <p>
          Set the grace below your orchestrator's kill timeout (Kubernetes waits 30 s before SIGKILL by default; the
          example file uses 25). A job that outlives the grace is not lost. Its lease lapses and another worker runs it
          again, so jobs must be idempotent (<a href={hrefFor('jobs')}>Jobs</a>).
        </p>
      </Section>

      <Section id="step-3">
        <FileRef path="app/src/routes/metrics.rs" />
        <p>
          <code>GET /health</code> answers while the process serves: point liveness probes at it. <code>GET /ready</code>{' '}
          pings the database, the cache and the queue, each within 2 s, names each driver, and answers 503 naming the
          backends that failed: point readiness probes and load balancers at it. <code>GET /metrics</code> is
          Prometheus text: HTTP counters and latency by route template, job counters by work kind, and two gauges read
          at scrape time:
        </p>
        <Snippet source={metrics} region="ch9-metrics" title="app/src/routes/metrics.rs" />
        <Callout kind="warning">
          Metrics are per process, and only <code>app serve</code> has an HTTP port. Counters recorded where a
          transition happens (<code>jobs_succeeded_total</code>, <code>jobs_failed_total</code>,{' '}
          <code>job_execution_seconds</code>) are recorded by the worker process that ran the job. With separate{' '}
          <code>app worker</code> processes they are not on any server's <code>/metrics</code>. For alerts across the
          deployment, use the gauges: <code>job_queue_depth</code> (jobs not yet final, from the database) and{' '}
          <code>job_queue_ready</code> (dispatches waiting in Redis). <code>/metrics</code> is not authenticated, so
          serve it on an internal network only.
        </Callout>
      </Section>

      <Section id="step-4">
        <FileRef path="app/tests/multiprocess.rs" />
        <p>
          With <code>DATABASE_URL</code> on PostgreSQL, <code>REDIS_URL</code> (the queue and the cache, or{' '}
          <code>CACHE_URL=tiered+redis://…</code>) and <code>STORAGE_DRIVER=s3</code>, run <code>app migrate</code>{' '}
          once, then any number of <code>app serve</code> and <code>app worker</code> processes and an{' '}
          <code>app scheduler</code>. Every process must have the same <code>APP_NAME</code> (the Redis prefix) and{' '}
          the same <code>API_KEY_SECRET</code>. Rate limits, cached reads, key revocations and the live streams all go
          through Redis, so any server can answer any request. The test runs exactly this shape, two servers and two
          workers, with 2,000 jobs submitted over HTTP:
        </p>
        <Snippet source={multiprocess} region="ch9-shape" title="app/tests/multiprocess.rs" />
        <p>
          Then it kills one worker without warning, mid-run. Every job still reaches a final state and every report
          agrees with its events: the dead worker's leases lapse and the survivor runs those attempts again.
        </p>
        <Snippet source={multiprocess} region="ch9-kill" title="app/tests/multiprocess.rs" />
      </Section>

      <Section id="step-5">
        <FileRef path="core-docs/verify/09-production.sh" />
        <p>
          Against the server and worker of <code>app/tests/cookbook.rs</code> (PostgreSQL, Redis). Readiness names{' '}
          <code>database postgres</code>, <code>cache redis</code> and <code>queue redis</code>, each{' '}
          <code>ok=true</code>:
        </p>
        <Snippet source={verify} region="health" language="bash" title="core-docs/verify/09-production.sh" />
        <p>
          One submission moves <code>jobs_submitted_total{'{work_kind="SUCCESS_FAST"}'}</code> by exactly one. The body
          is <code>text/plain; version=0.0.4</code>:
        </p>
        <Snippet source={verify} region="metrics" language="bash" />
        <p>
          A bad port exits 78 with <code>error: invalid setting PORT="notaport": expected a port number 0–65535</code>.
          The production example file without a secret exits 78 naming <code>API_KEY_SECRET</code>:
        </p>
        <Snippet source={verify} region="invalid" language="bash" />
        <Snippet source={verify} region="production-file" language="bash" />
        <p>A second server on a free port, stopped with SIGTERM, exits 0 after logging that it stopped:</p>
        <Snippet source={verify} region="sigterm" language="bash" />
      </Section>

      <Section id="decision-rule">
        <DecisionRule
          rules={[
            [
              'A value that is the same for every process of an environment',
              <>
                <code>rustforge.toml</code>, checked in per environment (without secrets).
              </>,
            ],
            [
              'A secret, or a value one process overrides',
              <>The environment (or the orchestrator's secret store). It wins over the file.</>,
            ],
            [
              'One machine, low traffic',
              <>
                <code>app serve</code> on SQLite with the in-process queue is a real deployment. Move to PostgreSQL and
                Redis when you need a second process.
              </>,
            ],
            [
              'More than one process',
              <>
                PostgreSQL, Redis and S3 (or one shared disk), <code>MIGRATE_ON_START=false</code> with{' '}
                <code>app migrate</code> per release, the same <code>APP_NAME</code> and <code>API_KEY_SECRET</code>{' '}
                everywhere.
              </>,
            ],
            [
              'Probes',
              <>
                Liveness on <code>/health</code>, readiness on <code>/ready</code>. Never liveness on{' '}
                <code>/ready</code>: a Redis outage would restart every server.
              </>,
            ],
          ]}
        />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 9: Production hardening',
  summary:
    'Settings per environment from a checked TOML file and the environment, graceful shutdown, health, readiness and Prometheus metrics, and many processes on PostgreSQL, Redis and S3.',
  headings,
  component: Chapter09Production,
})
