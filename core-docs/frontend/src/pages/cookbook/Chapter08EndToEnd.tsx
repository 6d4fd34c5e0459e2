import events from '../../../../../app/src/routes/events.rs?raw'
import jobsRoute from '../../../../../app/src/routes/jobs.rs?raw'
import jobsMod from '../../../../../app/src/jobs/mod.rs?raw'
import run from '../../../../../app/src/jobs/run.rs?raw'
import store from '../../../../../app/src/jobs/store.rs?raw'
import verify from '../../../../verify/08-end-to-end.sh?raw'
import { Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: Submit: the idempotency claim',
  'step-2': 'Step 2: One transaction: job, events, outbox',
  'step-3': 'Step 3: Queue and worker: lease, then start by compare-and-set',
  'step-4': 'Step 4: Every transition: event, cache, stream, fan-out',
  'step-5': 'Step 5: Verify: follow one job',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)

function Chapter08EndToEnd() {
  return (
    <>
      <Section id="step-0">
        <p>
          This chapter builds nothing new. It follows one <code>SUCCESS_FAST</code> job through every part the earlier
          chapters built, so you know which file is responsible when something goes wrong at a given point:
        </p>
        <ol>
          <li>
            <code>POST /v1/jobs</code> claims the <code>Idempotency-Key</code> (<code>app/src/idempotency.rs</code>);
          </li>
          <li>
            one transaction writes the job row, its <code>job.created</code> and <code>job.queued</code> events, the
            core-jobs dispatch in the outbox (<code>JobBuffer</code>) and the idempotency record;
          </li>
          <li>the relay moves the dispatch to the Redis queue, and a worker claims it under a lease;</li>
          <li>
            the run starts the job (QUEUED → ASSIGNED → RUNNING) with one compare-and-set, works, and ends it
            (SUCCEEDED);
          </li>
          <li>
            after each committed transition the cached read is dropped and the live streams are woken. The fan-out
            dispatches, written in the same statement as the event, deliver each event to the webhooks.
          </li>
        </ol>
        <p>
          Run it against a server and a worker on PostgreSQL and Redis (as <code>app/tests/cookbook.rs</code> does),
          with <code>WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8</code> for the local receiver.
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/src/routes/jobs.rs" />
        <p>
          Before anything is written, the key is claimed: a row <code>(client, key)</code> with the body's hash and a
          30-second lock. The same key with the same body replays the recorded answer with{' '}
          <code>Idempotency-Replayed: true</code>. A different body is 422. A claim whose first request is still
          running is 409 with <code>Retry-After: 1</code>:
        </p>
        <Snippet source={jobsRoute} region="ch8-submit" title="app/src/routes/jobs.rs" />
      </Section>

      <Section id="step-2">
        <FileRef path="app/src/jobs/mod.rs" />
        <p>
          <code>jobs::submit</code> opens the transaction and writes the dispatch into it through the{' '}
          <code>JobBuffer</code>. It then inserts the row (born QUEUED, version 1) with its two events. On PostgreSQL
          the row, the events and their fan-out dispatches are one statement:
        </p>
        <Snippet source={jobsMod} region="ch8-transaction" title="app/src/jobs/mod.rs" />
        <p>
          The handler stores the response in the idempotency row in the same transaction and commits. A job therefore
          exists exactly when its answer is recorded and its dispatch is in the outbox, and a crash at any point leaves
          all three or none. The commit wakes the relay, which pushes the dispatch to the queue and deletes the outbox
          row (see <a href={hrefFor('jobs')}>Jobs</a> for <code>JobBuffer</code>):
        </p>
        <Snippet source={jobsRoute} region="ch8-commit" title="app/src/routes/jobs.rs" />
      </Section>

      <Section id="step-3">
        <FileRef path="app/src/jobs/run.rs" />
        <p>
          A worker claims the dispatch with a lease (<code>WORKER_LEASE_SECS</code>, extended while the job runs). If
          the worker dies, the lease lapses and another worker gets the dispatch again. The run's first statement is
          the start: if the job is QUEUED, owned by this dispatch and due, it becomes ASSIGNED and then RUNNING
          (attempt + 1, version + 2) and both events are appended. Otherwise nothing changes and the run decides step
          by step, which is how a cancel that won the race, a stale dispatch or a dead worker's attempt are handled:
        </p>
        <Snippet source={run} region="ch8-start" title="app/src/jobs/run.rs" />
      </Section>

      <Section id="step-4">
        <FileRef path="app/src/jobs/store.rs" />
        <p>
          Every transition is one compare-and-set on <code>jobs.version</code>. It appends the event and, in the same
          transaction (one statement on PostgreSQL), one fan-out dispatch for each event that some webhook wants. After the commit, the same function
          runs for every transition, whichever process made it:
        </p>
        <Snippet source={store} region="ch8-after-commit" title="app/src/jobs/store.rs" />
        <p>
          Dropping the job's cache tag means the next <code>GET /v1/jobs/{'{id}'}</code> reads the database. There is
          no waiting for the 300-second TTL (<a href={hrefFor('caching')}>Caching</a>). Publishing on the bus wakes
          every server that streams this job. The stream then reads the events table, which stays the source of truth:
        </p>
        <Snippet source={events} region="ch8-publish" title="app/src/routes/events.rs" />
        <Callout>
          The webhook's path is its own chain of jobs, on the <code>webhooks</code> queue: one fan-out job per event
          writes a message per subscribed webhook and dispatches its delivery. A slow receiver therefore never delays
          the job's own transitions.
        </Callout>
      </Section>

      <Section id="step-5">
        <FileRef path="core-docs/verify/08-end-to-end.sh" />
        <p>
          A receiver that checks each delivery's signature and records it (<code>receiver.py</code>, the one Chapter 4
          uses), and a webhook for every event, its secret handed to the receiver:
        </p>
        <Snippet source={verify} region="receiver" language="bash" title="core-docs/verify/08-end-to-end.sh" />
        <Snippet source={verify} region="webhook" language="bash" />
        <p>Submitted twice with one key: one job.</p>
        <Snippet source={verify} region="submit" language="bash" />
        <p>
          The report lists five events in order: <code>job.created</code> (— → CREATED, attempt 0),{' '}
          <code>job.queued</code>, <code>job.assigned</code> (attempt 1), <code>job.running</code> and{' '}
          <code>job.succeeded</code>:
        </p>
        <Snippet source={verify} region="report" language="bash" />
        <p>
          In the database the row reads <code>SUCCEEDED 1 4 SUCCEEDED</code>: version 4, because the insert wrote
          version 1, the start added 2 and the end added 1. <code>job_events</code> holds the same five events in{' '}
          <code>seq</code> order, and the outbox is empty:
        </p>
        <Snippet source={verify} region="rows" language="bash" />
        <p>
          The live stream sends the five events with <code>id:</code> set to the event id, then closes by itself:
        </p>
        <Snippet source={verify} region="stream" language="bash" />
        <p>A cached read is dropped by the next transition (here, the worker starting a job that was due in 3 s):</p>
        <Snippet source={verify} region="cache" language="bash" />
        <p>
          The receiver gets one signed delivery per event, and each <code>webhook-id</code> is the event id, the same
          on every retry:
        </p>
        <Snippet source={verify} region="delivered" language="bash" />
      </Section>

      <Section id="decision-rule">
        <DecisionRule
          rules={[
            [
              'A client says it submitted twice',
              <>
                Look at <code>idempotency_keys</code> for its key. Without a key, two requests are two jobs, by design.
              </>,
            ],
            [
              'A job stays QUEUED',
              <>
                <code>job_outbox</code> not empty: the relay is not running, or its sends are failing. Outbox empty: no
                worker on that queue, or the job's <code>execution_at</code> is still ahead.
              </>,
            ],
            [
              'A read shows an old state',
              <>
                The transition's <code>after_commit</code> did not reach the cache (a warning is logged). The TTL bounds
                it to 300 s.
              </>,
            ],
            [
              'A stream or webhook misses an event',
              <>
                The report is the truth: compare its event ids with the stream's <code>id:</code> lines and the
                deliveries' <code>webhook-id</code>s.
              </>,
            ],
          ]}
        />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 8: One job through every part',
  summary:
    'One job followed from submission to report: the idempotency claim, one transaction with the outbox, the worker’s lease and compare-and-set, and every event delivered to the report, the stream and a webhook.',
  headings,
  component: Chapter08EndToEnd,
})
