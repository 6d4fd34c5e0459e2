import jobs from '../../../snippets/jobs.rs?raw'
import outputs from '../../../snippets/text/outputs.txt?raw'
import { Snippet } from '../components/Code'
import { Callout, sectionsOf } from '../components/Section'
import { hrefFor } from '../lib/router'
import { definePage } from './define'

const headings = {
  define: 'Defining a job',
  dispatch: 'Dispatching',
  worker: 'Running a worker',
  retries: 'Retries and backoff',
  failed: 'failed() and when it runs',
  'failed-jobs': 'The failed_jobs table',
  grouped: 'Grouped jobs',
  buffer: 'JobBuffer: dispatch inside a transaction',
  scheduler: 'The scheduler',
  shutdown: 'One shutdown for every part',
  guarantees: 'Delivery guarantees',
}
const Section = sectionsOf(headings)

function Jobs() {
  return (
    <>
      <Section id="define">
        <p>
          A job is a serializable value with an async handler: the <code>core_jobs::Job</code> trait. The value is stored
          as JSON when dispatched and deserialized by the worker that runs it, so keep it small (ids, not rows).{' '}
          <code>NAME</code> identifies the type in the queue and in <code>failed_jobs</code>.
        </p>
        <Snippet source={jobs} region="define" />
        <p>
          The handler gets a <code>JobContext</code>: <code>ctx.db()</code>, <code>ctx.cache()</code>,{' '}
          <code>ctx.queue()</code> to dispatch further jobs, typed extensions with <code>ctx.ext::&lt;T&gt;()</code>, and
          the running job's <code>job_id()</code> and <code>attempt()</code>.
        </p>
      </Section>

      <Section id="dispatch">
        <p>
          Every job gets <code>dispatch</code>, <code>dispatch_in</code>, <code>dispatch_at</code> and{' '}
          <code>dispatch_with</code> (the <code>Dispatch</code> trait). The queue comes from configuration:
        </p>
        <Snippet source={jobs} region="queues" />
        <Snippet source={jobs} region="dispatch" />
        <p>
          <code>DispatchOptions</code> also takes <code>.on_queue(name)</code> to send a job to another queue than its{' '}
          <code>QUEUE</code>, and <code>.with_id(id)</code> to choose its id.
        </p>
      </Section>

      <Section id="worker">
        <p>
          A worker claims jobs from the queues of the types it registered, runs up to <code>concurrency</code> of them at
          once, and on shutdown stops claiming and lets running jobs finish for at most its grace period (30 s by
          default).
        </p>
        <Snippet source={jobs} region="worker" />
        <p>
          Run workers in the app process or in their own processes, as many as you like, on the Redis queue. Each run is
          traced in a <code>job</code> span (name, id, attempt, queue); <code>WorkerHandle::stats()</code> and{' '}
          <code>Queue::stats(queue)</code> expose counters, also exported as <code>rustforge_jobs_*</code> metrics.
        </p>
      </Section>

      <Section id="retries">
        <p>
          An <code>Err</code>, a panic or a run past <code>timeout()</code> is a failed attempt. With attempts left the
          job is retried after <code>backoff(attempt)</code>; the default is exponential from 1 s, doubling, capped at 10
          minutes, with ±20 % jitter so jobs that failed together do not retry together. A job runs at most{' '}
          <code>max_retries() + 1</code> times.
        </p>
        <Snippet source={jobs} region="retries" />
      </Section>

      <Section id="failed">
        <p>
          <code>failed(ctx, error)</code> runs exactly once per job, when its last attempt has failed, on the job
          deserialized from its payload, before the <code>failed_jobs</code> row is written. Use it to revert state, free
          what the job reserved, or alert someone:
        </p>
        <Snippet source={jobs} region="failed" />
        <ul>
          <li>It does not run after a failed attempt that will be retried, nor for a job that succeeded.</li>
          <li>
            Its own error or panic is logged and never blocks the next step: the <code>failed_jobs</code> row is written
            and the job acknowledged all the same.
          </li>
          <li>
            It does not run for a job that could not be decoded at all (an unknown <code>NAME</code>, a payload that no
            longer matches the struct): there is no job value to call it on. Those go straight to{' '}
            <code>failed_jobs</code> with the reason.
          </li>
        </ul>
      </Section>

      <Section id="failed-jobs">
        <p>
          Failures land in the <code>failed_jobs</code> table (created by the framework's migrations) with the payload
          byte for byte, the last error, the attempts and the group. <code>FailedJobs</code> manages them:
        </p>
        <Snippet source={jobs} region="failed-jobs" />
        <p>
          <code>retry_all</code> re-dispatches every stored failure. A retried job keeps its id and payload, gets its
          attempts reset, and is dispatched before its row is deleted, so a crash in between never loses it. The same
          commands are ready for a command line: <code>core_jobs::cli::FailedArgs</code> is a clap subcommand an
          application embeds in its own (the example app answers <code>app jobs failed --help</code>), and{' '}
          <code>core_jobs::cli::failed_command</code> runs one from plain arguments:
        </p>
        <Snippet source={outputs} region="failed-jobs-cli" language="text" />
        <p>
          The example application exposes them as <code>app jobs failed …</code> (for instance{' '}
          <code>cargo run -p app -- jobs failed list</code>); bad arguments come back as a{' '}
          <code>core_jobs::cli::UsageError</code>, so a command line can exit with its usage status. Retrying needs the
          queue the workers read: with the in-process <code>memory://</code> queue the job would vanish with the
          command, so the app refuses and asks for <code>QUEUE_URL</code>.
        </p>
        <p>
          If the database is unreachable when a job fails for good, the failure is kept in the queue and written by a
          worker once the database answers again.
        </p>
      </Section>

      <Section id="grouped">
        <p>
          Jobs that return the same <code>group_id()</code> run one at a time, in dispatch order, however many workers
          there are; a retry's backoff holds the group. Jobs of different groups run in parallel.
        </p>
        <Snippet source={jobs} region="grouped" />
      </Section>

      <Section id="buffer">
        <p>
          Dispatching inside a database transaction is a trap: the job may run before the transaction commits, or after
          it rolled back. <code>JobBuffer</code> writes the job into the <code>job_outbox</code> table inside your
          transaction instead; a relay moves it to the queue right after the commit, and a rollback leaves nothing to
          dispatch.
        </p>
        <Snippet source={jobs} region="buffer" />
        <Callout kind="note">
          In the same process <code>push</code> and <code>commit</code> wake the relay directly; on PostgreSQL{' '}
          <code>JobBuffer::commit</code> also wakes other processes' relays with one <code>pg_notify</code> sent after
          the commit (never inside your transaction: PostgreSQL serialises the commits of transactions that notify); a
          sweep every few seconds catches anything else. Relays claim rows with a deadline (<code>FOR UPDATE SKIP
          LOCKED</code> on PostgreSQL), so several relays never dispatch a row twice, and send a pass's due rows to the
          queue in one round trip. On a hot path, <code>JobBuffer::outbox_row</code> gives the outbox row for a
          PostgreSQL statement of your own (a <code>WITH</code> clause), so the dispatch commits with your other writes in
          one round trip; call <code>committed()</code> afterwards.
        </Callout>
      </Section>

      <Section id="scheduler">
        <p>
          The scheduler dispatches jobs on cron expressions with a seconds field (<code>sec min hour day month
          weekday</code>). Each tick is dispatched once, however many scheduler processes run: the tick's unique key is
          checked atomically with the dispatch on the shared queue.
        </p>
        <Snippet source={jobs} region="scheduler" />
        <p>
          <code>without_overlapping()</code> skips ticks while the previous run still holds its cache lock (released by
          the worker when the job finishes, so give workers the same cache in their context); <code>when</code> skips a
          tick when its predicate says so.
        </p>
      </Section>

      <Section id="shutdown">
        <p>
          The worker, the scheduler, the outbox relay and the HTTP server stop through one{' '}
          <code>core_jobs::Shutdown</code> (a <code>CancellationToken</code> with a <code>TaskTracker</code>).{' '}
          <code>Shutdown::on_signal()</code> is the one place the process listens for SIGINT and SIGTERM; give the same
          value to every part, and <code>wait()</code> returns once requests have drained and running jobs have finished.
        </p>
        <Snippet source={jobs} region="shutdown" />
        <p>
          Each part&apos;s own handle (<code>WorkerHandle::shutdown</code>, dropping a <code>SchedulerHandle</code> or{' '}
          <code>RelayHandle</code>) still stops that part alone.
        </p>
      </Section>

      <Section id="guarantees">
        <table>
          <thead>
            <tr>
              <th>Situation</th>
              <th>What happens</th>
            </tr>
          </thead>
          <tbody>
            <tr>
              <td>a worker dies mid-run</td>
              <td>its lease expires and any worker puts the job back: it runs again (at least once)</td>
            </tr>
            <tr>
              <td>a job fails, attempts left</td>
              <td>retried after its backoff; the retry and the end of the lease are one atomic step</td>
            </tr>
            <tr>
              <td>the last attempt fails</td>
              <td>
                <code>failed()</code> once, then the <code>failed_jobs</code> row, then the ack
              </td>
            </tr>
            <tr>
              <td>unknown name or undecodable payload</td>
              <td>
                a <code>failed_jobs</code> row with the reason, at once
              </td>
            </tr>
            <tr>
              <td>a Redis connection stalls, or a reply is lost</td>
              <td>
                every call times out (a blocking claim after its wait plus 2 s) and the connection is replaced; a claim
                whose reply was lost is taken over by the worker's next claim
              </td>
            </tr>
            <tr>
              <td>a worker loses a job's lease while it runs</td>
              <td>
                <code>ctx.lease_lost()</code> turns true and the worker commits nothing of that run (no ack, retry,
                group hand-over or <code>failed_jobs</code> row); another worker runs it
              </td>
            </tr>
            <tr>
              <td>
                <code>failed_jobs</code> slow or unreachable
              </td>
              <td>
                the write gives up after 5 s, the failure waits in Redis and is written later, once; leases keep being
                extended meanwhile
              </td>
            </tr>
            <tr>
              <td>a payload nested deeper than 128 levels</td>
              <td>
                refused at dispatch (<code>queue::MAX_PAYLOAD_DEPTH</code>)
              </td>
            </tr>
            <tr>
              <td>an outbox row keeps failing to dispatch</td>
              <td>
                parked after 5 attempts (<code>JobBuffer::parked</code>, <code>retry_parked</code>); the rows behind it
                go on
              </td>
            </tr>
            <tr>
              <td>dispatched in a rolled-back transaction</td>
              <td>
                never dispatched (with <code>JobBuffer</code>)
              </td>
            </tr>
            <tr>
              <td>several schedulers on one tick</td>
              <td>dispatched once</td>
            </tr>
          </tbody>
        </table>
        <Callout kind="warning">
          Delivery is at least once, never exactly once: a job can run twice when its worker dies after doing the work
          but before acknowledging it. Make handlers idempotent: check whether the work is done, use unique keys,
          upserts, or an idempotency key when calling other services.
        </Callout>
        <p>
          The in-process queue (<code>QUEUE_URL=memory://</code>, the default) has the same semantics without
          durability across restarts; move to Redis (see <a href={hrefFor('configuration', 'drivers')}>Drivers</a>) when
          jobs must survive a restart or run on other machines.
        </p>
      </Section>
    </>
  )
}

export default definePage({
  title: 'Jobs',
  summary: 'Background jobs with retries and backoff, a failed() callback, the failed_jobs table, grouped jobs, transactional dispatch and cron.',
  headings,
  component: Jobs,
})
