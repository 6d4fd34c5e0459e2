import run from '../../../../../app/src/jobs/run.rs?raw'
import main from '../../../../../app/src/main.rs?raw'
import verify from '../../../../verify/07-cli.sh?raw'
import { Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: One binary, one command per role',
  'step-2': 'Step 2: Workers and the scheduler',
  'step-3': 'Step 3: Where a failure lands',
  'step-4': 'Step 4: app jobs failed',
  'step-5': 'Step 5: Verify',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)

function Chapter07Cli() {
  return (
    <>
      <Section id="step-0">
        <p>
          ForgeRun ships as one binary, <code>app</code>, and every process of a deployment is that binary with a
          command: <code>serve</code>, <code>worker</code>, <code>scheduler</code>, <code>migrate</code>, and the
          operator's <code>jobs failed …</code>. This chapter is <code>app/src/main.rs</code> and what each command
          touches. A command reads the same settings as the server (environment, <code>.env</code>,{' '}
          <code>rustforge.toml</code>), so it sees the same database and queue when run with the same environment.
          The core-jobs APIs behind the commands are on the <a href={hrefFor('jobs')}>Jobs</a> page.
        </p>
        <p>
          Exit status: 0 success, 1 failure, 2 bad usage (with the usage text), 78 an invalid setting (Chapter 9).
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/src/main.rs" />
        <p>
          The commands are a clap enum; <code>app</code> alone means <code>serve</code>. <code>jobs failed</code> is
          core-jobs' own <code>FailedArgs</code>, so every application on Rustforge gets the same operator commands:
        </p>
        <Snippet source={main} region="ch7-commands" title="app/src/main.rs" />
        <p>
          <code>app migrate</code> applies the framework's migrations, then the app's, and exits. It is idempotent, so
          run it before every release. With <code>MIGRATE_ON_START=true</code> (the default) every process also
          migrates when it starts, which is convenient on one machine. With many processes, set it to{' '}
          <code>false</code> and run <code>app migrate</code> once per release.
        </p>
      </Section>

      <Section id="step-2">
        <FileRef path="app/src/main.rs" />
        <p>
          On the in-process queue (<code>QUEUE_URL=memory://</code>, the default) <code>app serve</code> runs the
          worker and the schedule itself, because no other process can see that queue. With Redis, jobs are run by{' '}
          <code>app worker</code> processes, as many as you like, and the hourly retention job is dispatched by{' '}
          <code>app scheduler</code>. You may run more than one scheduler: each tick is dispatched once. A worker
          connects, starts the outbox relay and both job workers (ForgeRun's jobs, and the webhooks' own worker), and
          waits for SIGINT or SIGTERM. It then lets running jobs finish for up to <code>SHUTDOWN_GRACE_SECS</code>:
        </p>
        <Snippet source={main} region="ch7-worker" title="app/src/main.rs" />
        <Callout kind="warning">
          A worker on <code>memory://</code> warns that it sees only the jobs of its own process. If jobs stay QUEUED,
          check that the server and the workers have the same <code>QUEUE_URL</code> (or <code>REDIS_URL</code>) and{' '}
          <code>APP_NAME</code>: the name is the Redis key prefix.
        </Callout>
      </Section>

      <Section id="step-3">
        <FileRef path="app/src/jobs/run.rs" />
        <p>
          A ForgeRun job is run by one core-jobs job, <code>forgerun.run</code>. When an attempt fails and attempts
          remain, the run moves the job back to QUEUED and core-jobs retries it after the backoff. On the last attempt
          the error goes back to core-jobs:
        </p>
        <Snippet source={run} region="ch7-last-attempt" title="app/src/jobs/run.rs" />
        <p>
          core-jobs then calls <code>failed()</code> once, which moves the ForgeRun job to FAILED (what the client
          sees, with <code>POST /v1/jobs/{'{id}'}/retry</code> to try again). After that it writes a{' '}
          <code>failed_jobs</code> row, which is what the operator sees:
        </p>
        <Snippet source={run} region="ch7-failed-callback" title="app/src/jobs/run.rs" />
        <p>
          So one failure shows up in two places, at two levels. The job's state is the client's record. The{' '}
          <code>failed_jobs</code> row is the operator's record of a dispatch that used up its attempts. Its{' '}
          <code>job_id</code> is the dispatch id, which the job row keeps in <code>jobs.dispatch_id</code>. Other jobs
          land only in <code>failed_jobs</code>: the retention job, the webhook fan-out and deliveries (a delivery
          also records itself as failed), and a job with an unknown name or a payload that cannot be decoded.
        </p>
      </Section>

      <Section id="step-4">
        <FileRef path="app/src/main.rs" />
        <p>
          <code>list [LIMIT]</code> shows the newest first, <code>show ID</code> shows the payload and the full
          error, <code>retry ID|all</code> re-dispatches with the attempts reset and deletes the row,{' '}
          <code>forget ID</code> deletes one row and <code>prune AGE</code> deletes rows older than{' '}
          <code>30s</code>, <code>15m</code>, <code>24h</code> or <code>7d</code>. A retry has to reach the queue the
          workers read, so the app refuses it on <code>memory://</code>, where the job would die with the command:
        </p>
        <Snippet source={main} region="ch7-failed" title="app/src/main.rs" />
        <p>
          Retrying a <code>forgerun.run</code> row re-dispatches the same dispatch id, and the run leaves a job that is
          already final alone. The same check makes a duplicate delivery harmless:
        </p>
        <Snippet source={run} region="ch7-final" title="app/src/jobs/run.rs" />
        <p>
          So for ForgeRun jobs, <code>jobs failed retry</code> only clears the row. To run the job again, use the
          client's retry. The operator's retry is the right tool for jobs whose handler is the whole story: a retention
          pass that hit a database outage, or a fan-out.
        </p>
      </Section>

      <Section id="step-5">
        <FileRef path="core-docs/verify/07-cli.sh" />
        <p>
          The script runs the commands with the running app's <code>DATABASE_URL</code> and <code>REDIS_URL</code>{' '}
          (<code>app</code> is <code>cargo run -q -p app --</code>, or the binary in <code>APP</code>). A job that fails
          its only attempt:
        </p>
        <Snippet source={verify} region="fail" language="bash" title="core-docs/verify/07-cli.sh" />
        <p>
          Its row in <code>failed_jobs</code> is found through the dispatch id, listed and shown. The list reads{' '}
          <code>forgerun.run</code>, 1 attempt, <code>FAIL_IMMEDIATE failed on attempt 1</code>, and the payload names
          the ForgeRun job:
        </p>
        <Snippet source={verify} region="list" language="bash" />
        <Snippet source={verify} region="show" language="bash" />
        <p>The operator's retry clears the row and the job stays FAILED. The client's retry runs it again (attempt 2):</p>
        <Snippet source={verify} region="retry" language="bash" />
        <Snippet source={verify} region="client-retry" language="bash" />
        <Snippet source={verify} region="forget-prune" language="bash" />
        <p>Bad usage exits 2, <code>migrate</code> is a no-op on a migrated database, and the scheduler stops cleanly:</p>
        <Snippet source={verify} region="usage" language="bash" />
        <Snippet source={verify} region="migrate" language="bash" />
        <Snippet source={verify} region="scheduler" language="bash" />
      </Section>

      <Section id="decision-rule">
        <DecisionRule
          rules={[
            [
              'One machine, SQLite, no Redis',
              <>
                <code>app serve</code> alone: it runs the jobs and the schedule in-process.
              </>,
            ],
            [
              'Redis and PostgreSQL',
              <>
                <code>app migrate</code> once per release, then any number of <code>app serve</code> and{' '}
                <code>app worker</code> processes, and at least one <code>app scheduler</code>, all with the same
                settings.
              </>,
            ],
            [
              'A client’s job is FAILED',
              <>
                The client retries it (<code>POST /v1/jobs/{'{id}'}/retry</code>); <code>jobs failed forget</code> or{' '}
                <code>prune</code> clears the operator's row.
              </>,
            ],
            [
              'A system job (retention, fan-out) failed',
              <>
                Fix the cause, then <code>app jobs failed retry ID</code> (or <code>all</code>) against the workers' queue.
              </>,
            ],
            [
              'Rows pile up',
              <>
                <code>app jobs failed prune 7d</code> from cron; nothing prunes them on its own.
              </>,
            ],
          ]}
        />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 7: The command line',
  summary:
    'One binary, one command per role: serve, worker, scheduler, migrate, and the operator’s jobs failed list, show, retry, forget and prune.',
  headings,
  component: Chapter07Cli,
})
