import webhooksMigration from '../../../../../app/migrations/postgres/20261206000001_webhooks.sql?raw'
import jobsMod from '../../../../../app/src/jobs/mod.rs?raw'
import store from '../../../../../app/src/jobs/store.rs?raw'
import eventsRoute from '../../../../../app/src/routes/events.rs?raw'
import deliver from '../../../../../app/src/webhooks/deliver.rs?raw'
import fanout from '../../../../../app/src/webhooks/fanout.rs?raw'
import webhooksMod from '../../../../../app/src/webhooks/mod.rs?raw'
import verify from '../../../../verify/12-event-fanout.sh?raw'
import receiver from '../../../../verify/receiver.py?raw'
import { Code, Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { excerpt } from '../../lib/region'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: The fan-out job',
  'step-2': 'Step 2: Channels that never block each other',
  'step-3': "Step 3: Dispatch in the transition's own transaction",
  'step-4': 'Step 4: Idempotency per channel',
  'step-5': 'Step 5: failed() for alerting',
  'step-6': 'Step 6: Verify',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)


const MIGRATION = 'app/migrations/postgres/20261206000001_webhooks.sql'

function Chapter12EventFanout() {
  return (
    <>
      <Section id="step-0">
        <p>
          Every ForgeRun job event already fans out: to the client's webhooks, to anyone following the job's live
          stream, and to the metrics. This recipe reads how, step by step, so that the next event your application adds
          goes out the same way. It takes chapters 3–5 (jobs, webhooks, the live stream) for granted; the APIs it uses
          are described once, on the <a href={hrefFor('jobs')}>Jobs</a> page.
        </p>
        <p>
          <strong>Jobs are the event system.</strong> There is no <code>Event</code> type, no listener registry and no
          in-process event bus for domain events. An event is a row of <code>job_events</code> that the transition
          writes; when some webhook wants it, the same statement writes a <code>Fanout</code> job into the outbox. The
          listeners are that job's handler, plus a few calls after the commit for the channels that need no retry:
        </p>
        <table>
          <thead>
            <tr>
              <th>Channel</th>
              <th>Runs as</th>
              <th>If it fails</th>
            </tr>
          </thead>
          <tbody>
            <tr>
              <td>Webhooks</td>
              <td>
                a <code>Fanout</code> job, then one <code>Deliver</code> job per webhook, on the <code>webhooks</code>{' '}
                queue
              </td>
              <td>retried with backoff; the delivery's <code>failed()</code> records it when attempts run out</td>
            </tr>
            <tr>
              <td>Live stream (SSE)</td>
              <td>
                a <code>Bus</code> publish after the commit; the stream reads <code>job_events</code>
              </td>
              <td>logged; the stream reads the event at its next keep-alive (15 s)</td>
            </tr>
            <tr>
              <td>Metrics</td>
              <td>counters and histograms recorded after the commit</td>
              <td>cannot fail (in-process)</td>
            </tr>
          </tbody>
        </table>
        <p>
          The files: <code>app/src/webhooks/</code> (<code>fanout.rs</code>, <code>deliver.rs</code>,{' '}
          <code>mod.rs</code>), <code>app/src/jobs/store.rs</code> (the transitions),{' '}
          <code>app/src/routes/events.rs</code> (the stream) and <code>app/src/routes/webhooks.rs</code> (the delivery
          log).
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/src/webhooks/fanout.rs" />
        <p>
          The fan-out is an ordinary core-jobs job. Its payload is two ids, not the event: the handler reads the event
          and the job when it runs, so the outbox row stays small and a retry sees the database as it is.
        </p>
        <Snippet source={fanout} region="fanout-job" title="app/src/webhooks/fanout.rs" />
        <ul>
          <li>
            <code>NAME</code> is how the queue and <code>failed_jobs</code> know the job: keep it stable across
            deploys, or dispatches already queued find no handler.
          </li>
          <li>
            <code>QUEUE</code> is <code>webhooks</code>, not the jobs' queue: fan-outs and deliveries run on a worker of
            their own, so a slow receiver never holds a slot a job needs.
          </li>
          <li>
            <code>max_retries</code> is 10: the fan-out only reads and writes the database, and eleven runs on the
            default backoff (doubling from 1 s, up to 10 minutes) ride out a database restart.
          </li>
        </ul>
        <FileRef path="app/src/webhooks/mod.rs" />
        <Snippet source={webhooksMod} region="webhooks-queue" title="app/src/webhooks/mod.rs" />
        <p>
          Defining a job, its retries and registering it with a worker are on the Jobs page:{' '}
          <a href={hrefFor('jobs', 'define')}>Defining a job</a>, <a href={hrefFor('jobs', 'worker')}>Running a worker</a>.
        </p>
      </Section>

      <Section id="step-2">
        <p>Each channel is on its own path, so that one failing never stops or delays the others.</p>
        <h3>Webhooks: one message and one delivery job per webhook</h3>
        <FileRef path="app/src/webhooks/fanout.rs" />
        <p>
          The fan-out finds the webhooks that want the event, fixes the body once, and writes one message per webhook
          with its <code>Deliver</code> job, in one transaction:
        </p>
        <Snippet source={fanout} region="fan-out" title="app/src/webhooks/fanout.rs" />
        <p>
          The fan-out sends nothing itself. Each webhook gets its own <code>Deliver</code> job with its own attempts and
          backoff, so a receiver answering 503 retries alone while the others are delivered. Deliveries to one webhook
          run in at most eight groups (lanes), so a receiver that hangs holds at most eight of the worker's{' '}
          <code>WEBHOOK_CONCURRENCY</code> slots (64 by default), and the other webhooks keep theirs:
        </p>
        <FileRef path="app/src/webhooks/deliver.rs" />
        <Snippet source={deliver} region="deliver-lanes" title="app/src/webhooks/deliver.rs" />
        <p>
          Jobs with the same group id run one at a time, in order (
          <a href={hrefFor('jobs', 'grouped')}>Grouped jobs</a>); the event's hash picks its lane.
        </p>

        <h3>The live stream and the metrics: after the commit</h3>
        <FileRef path="app/src/jobs/store.rs" />
        <p>
          Every committed transition ends in <code>after_commit</code>. It wakes the outbox relays when the transition
          dispatched a fan-out, then drops the job's cached reads and publishes on the job's <code>Bus</code> channel
          side by side, records the metrics and logs the transition:
        </p>
        <Snippet source={store} region="after-commit" title="app/src/jobs/store.rs" />
        <FileRef path="app/src/routes/events.rs" />
        <Snippet source={eventsRoute} region="publish" title="app/src/routes/events.rs" />
        <p>
          <code>publish</code> returns nothing: a bus that is down costs a log line, never the transition, which has
          already committed. The message is only a wake-up. The stream reads the events from <code>job_events</code>{' '}
          after the last one it sent, so a lost wake-up delays an event until the next keep-alive, and loses nothing.
        </p>
        <Callout kind="note">
          Nothing in <code>after_commit</code> can undo or hold up the webhooks: their <code>Fanout</code> was written
          in the transition's own statement (step 3) and is already in <code>job_outbox</code>. The reverse holds too:
          the stream and the metrics never wait on the <code>webhooks</code> queue. Metrics are counted by the process
          that made the transition or ran the job, and <code>GET /metrics</code> shows the serving process's own; with{' '}
          <code>cargo run -p app</code> the worker runs inside it.
        </Callout>
      </Section>

      <Section id="step-3">
        <p>
          An event must go out exactly when its transition commits: never for a transition that rolled back, never lost
          because the process died between the commit and the dispatch. So the fan-out is not dispatched after the
          commit; it is written with the transition, into <code>job_outbox</code> (
          <a href={hrefFor('jobs', 'buffer')}>JobBuffer: dispatch inside a transaction</a>), and the relay moves it to
          the queue once the commit is visible.
        </p>
        <FileRef path="app/src/jobs/store.rs" />
        <p>A transition builds its events' dispatches, then writes all of it at once on either engine:</p>
        <Snippet source={store} region="apply-write" title="app/src/jobs/store.rs" />
        <p>
          On PostgreSQL the row, its events and their fan-out are one statement: the events and the outbox rows are
          inserted from the row the compare-and-set updated, so all are written or none.
        </p>
        <Snippet source={store} region="transition-statement" title="app/src/jobs/store.rs" />
        <FileRef path="app/src/webhooks/fanout.rs">
          <span>
            (<code>Dispatches</code>, re-exported by <code>app/src/webhooks/mod.rs</code>)
          </span>
        </FileRef>
        <p>
          Each event's dispatch is a <code>job_outbox</code> insert that selects from the updated row only when a
          webhook wants the event. The database decides, in the same statement, so an event nobody subscribed to costs
          no job:
        </p>
        <Snippet source={fanout} region="dispatches-ctes" title="app/src/webhooks/fanout.rs" />
        <Snippet source={webhooksMod} region="subscribed-sql" title="app/src/webhooks/mod.rs" />
        <p>
          Inside a transaction (SQLite, and the transitions that already hold one) the same decision is a query, and
          the dispatch is <code>JobBuffer::push</code> into the caller's transaction:
        </p>
        <Snippet source={fanout} region="dispatches-push" title="app/src/webhooks/fanout.rs" />
        <FileRef path="app/src/jobs/mod.rs" />
        <p>
          Submitting a job is the same pattern once more: the <code>RunJob</code> dispatch, the row, its first events
          and their fan-out all go into one transaction, which the caller commits with{' '}
          <code>ctx.buffer.commit</code>:
        </p>
        <Snippet source={jobsMod} region="submit-transaction" title="app/src/jobs/mod.rs" />
      </Section>

      <Section id="step-4">
        <p>
          Jobs run at least once: a relay can dispatch a row twice, a worker can die after the work and before the
          acknowledgement. Each channel therefore has a key that makes a repeat harmless.
        </p>
        <h3>Webhooks: the event id is the message id</h3>
        <FileRef path={MIGRATION} />
        <p>
          A message is keyed by webhook and event. The fan-out inserts with <code>ON CONFLICT DO NOTHING</code> and
          dispatches a <code>Deliver</code> only for a row it inserted (step 2), so a fan-out that runs again writes
          nothing and sends nothing:
        </p>
        <Code
          code={excerpt(webhooksMigration, '-- One event to one webhook', ');')}
          language="sql"
          title={MIGRATION}
        />
        <FileRef path="app/src/webhooks/deliver.rs" />
        <p>
          Every attempt sends the body fixed in the message, signed under the event id: <code>webhook-id</code> is the
          same on the first attempt and the last.
        </p>
        <Snippet source={deliver} region="send-signed" title="app/src/webhooks/deliver.rs" />
        <p>A delivery that runs again after its message was delivered, or recorded as failed, stops before sending:</p>
        <Snippet source={deliver} region="deliver-finished" title="app/src/webhooks/deliver.rs" />
        <p>
          That still leaves one duplicate the sender cannot prevent: the receiver answered 2xx, and the worker died
          before recording it. The retry carries the same <code>webhook-id</code>, so receivers de-duplicate on it, as
          the receiver in step 6 does.
        </p>
        <h3>The live stream: event ids and Last-Event-ID</h3>
        <FileRef path="app/src/routes/events.rs" />
        <p>
          Every SSE event's <code>id:</code> is the event id. A client that reconnects sends the last one it saw as{' '}
          <code>Last-Event-ID</code>, and the stream resumes after it (an id of another job, or none, starts from the
          first event):
        </p>
        <Snippet source={eventsRoute} region="last-event-id" title="app/src/routes/events.rs" />
        <Snippet source={eventsRoute} region="read" title="app/src/routes/events.rs" />
        <p>
          The metrics have no key: a transition is committed once (the compare-and-set lets exactly one writer win), so
          it is counted once.
        </p>
      </Section>

      <Section id="step-5">
        <FileRef path="app/src/webhooks/deliver.rs" />
        <p>
          <code>failed()</code> runs exactly once, when a delivery's last attempt has failed, before core-jobs writes
          its <code>failed_jobs</code> row (<a href={hrefFor('jobs', 'failed')}>failed() and when it runs</a>).{' '}
          Here it records the message as failed (the delivery log already shows the last attempt as{' '}
          <code>failed</code>), counts it and logs a warning:
        </p>
        <Snippet source={deliver} region="deliver-failed" title="app/src/webhooks/deliver.rs" />
        <p>What an application adds is the alert on that signal, outside the code:</p>
        <ul>
          <li>
            a Prometheus rule on <code>webhook_failures_total{'{reason="exhausted"}'}</code> (any increase in the last
            15 minutes pages someone), where the worker's metrics are scraped;
          </li>
          <li>
            or, where only logs are collected (a separate <code>app worker</code> serves no <code>/metrics</code>), an
            alert on the warning <code>webhook delivery failed: attempts exhausted</code>, which names the webhook and
            the event;
          </li>
          <li>
            and, when the client must hear of it, a job dispatched from <code>failed()</code> (an email, a dashboard
            notice), never the notice itself inline: <code>failed()</code> should stay short and cannot be retried.
          </li>
        </ul>
        <p>
          The <code>Fanout</code> job has no <code>failed()</code> of its own: after its eleventh run it is a{' '}
          <code>failed_jobs</code> row (<a href={hrefFor('jobs', 'failed-jobs')}>The failed_jobs table</a>), listed by{' '}
          <code>app jobs failed list</code> and re-dispatched by <code>app jobs failed retry</code>, which is safe
          because of step 4. Alert on <code>failed_jobs</code> rows of <code>forgerun.fanout</code> the same way.
        </p>
      </Section>

      <Section id="step-6">
        <p>
          <code>core-docs/verify/12-event-fanout.sh</code> follows one job's events to a receiver of its own and checks
          that the receiver, the delivery log, the live stream and the database agree. To run it yourself, start the
          app on PostgreSQL with <code>WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8</code> (webhooks may then call the
          receiver on 127.0.0.1), and run <code>bash core-docs/verify/12-event-fanout.sh</code> with the same{' '}
          <code>DATABASE_URL</code>.
        </p>
        <FileRef path="core-docs/verify/receiver.py" />
        <p>
          The receiver is Python's standard library, and it checks the Standard Webhooks signature itself rather than
          trusting the sender: the HMAC-SHA256 of <code>{'{webhook-id}.{webhook-timestamp}.{body}'}</code>, keyed by the
          base64 bytes after <code>whsec_</code>, against each <code>v1,</code> signature of{' '}
          <code>webhook-signature</code>. Its <code>--self-test</code> checks this code against the specification's
          example before anything else runs.
        </p>
        <Snippet source={receiver} region="verify-signature" language="python" title="core-docs/verify/receiver.py" />
        <p>It answers 401 to a bad signature, and drops a message it has already accepted:</p>
        <Snippet source={receiver} region="receive" language="python" title="core-docs/verify/receiver.py" />
        <FileRef path="core-docs/verify/12-event-fanout.sh" />
        <p>
          The script starts the receiver on a free port and stops it on exit, registers a client and a webhook for{' '}
          <code>*</code> pointed at it, and checks that a forged delivery is refused:
        </p>
        <Snippet source={verify} region="receiver" language="bash" title="core-docs/verify/12-event-fanout.sh" />
        <Snippet source={verify} region="register" language="bash" />
        <Snippet source={verify} region="forged" language="bash" />
        <p>
          It submits a job and reads its events from the live stream, which closes after the final one; then waits for
          the receiver to have accepted every one of those ids, once, with a valid signature:
        </p>
        <Snippet source={verify} region="submit" language="bash" />
        <Snippet source={verify} region="received" language="bash" />
        <p>
          The delivery log (<code>GET /v1/webhooks/{'{id}'}/deliveries</code>) lists one delivered attempt per event
          under the same ids, the stream resumes after <code>Last-Event-ID</code>, <code>failed_jobs</code> is empty
          and every message is recorded as delivered:
        </p>
        <Snippet source={verify} region="deliveries" language="bash" />
        <Snippet source={verify} region="resume" language="bash" />
        <Snippet source={verify} region="database" language="bash" />
        <p>
          Last, it runs the <code>job.succeeded</code> fan-out a second time, as a duplicate from the queue would: it
          writes the <code>Fanout</code> into <code>job_outbox</code> as a transition does and wakes the relay. A second
          webhook, registered meanwhile, receives the event under the same <code>webhook-id</code>; the first receives
          nothing twice and its messages and delivery log are unchanged.
        </p>
        <Snippet source={verify} region="rerun" language="bash" />
        <p>
          The test suite runs this script against a server and a worker of its own:{' '}
          <code>cargo test -p app --test cookbook chapter_12</code>.
        </p>
      </Section>

      <Section id="decision-rule">
        <p>When a change has side effects, choose how they leave the transaction:</p>
        <DecisionRule
          rules={[
            [
              'One side effect (send one email, call one API)',
              <>
                Dispatch it directly: one job, pushed with <code>JobBuffer</code> into the change's transaction. A
                fan-out job would be a hop that adds nothing.
              </>,
            ],
            [
              'Two or more independent side effects of one event',
              <>
                One fan-out job, dispatched with the change, whose handler writes one row per side effect with a unique
                key and dispatches the work for each row it inserted. Re-running it is then a no-op.
              </>,
            ],
            [
              'Side effects with different retry, backoff, timeout or ordering needs',
              <>
                Separate jobs, one per side effect, dispatched by the fan-out. ForgeRun's <code>Deliver</code> is one
                job per webhook: each receiver gets its own attempts, its own backoff (and <code>Retry-After</code>) and
                its own lanes.
              </>,
            ],
            [
              'Side effects that readers rebuild from the database, or whose loss costs little (a stream wake-up, metrics, a cache invalidation)',
              <>
                No job: do them after the commit, best effort, logging a failure, as <code>after_commit</code> does. The
                live stream catches up from <code>job_events</code>; a missed invalidation lives until its short TTL.
              </>,
            ],
            [
              'Something that must happen, started with tokio::spawn after the commit',
              <>Never: a crash between the commit and the task loses it. Put it in the outbox with the change.</>,
            ],
          ]}
        />
        <p>
          ForgeRun's deliberate choice is <strong>one fan-out job per event that some webhook wants</strong>, not one
          job per channel per event, and not one delivery per webhook written by the transition. The transition's
          statement stays the same size however many webhooks a client has (one outbox row per event, none when nobody
          subscribed), the webhooks that want the event are read when the fan-out runs, off the request's path, and
          the channels that need no retry (the stream, the metrics) cost no job at all.
        </p>
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 12: Event fan-out recipe',
  summary:
    "One job event, three channels: webhooks through a fan-out job written in the transition's own statement, the live stream and the metrics after the commit, each idempotent and none blocking another.",
  headings,
  component: Chapter12EventFanout,
})
