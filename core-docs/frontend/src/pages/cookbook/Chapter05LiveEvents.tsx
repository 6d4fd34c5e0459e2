import events from '../../../../../app/src/routes/events.rs?raw'
import verify from '../../../../verify/05-live-events.sh?raw'
import { Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: Announce each transition on the Bus',
  'step-2': 'Step 2: Open the stream',
  'step-3': 'Step 3: Read from the table, wait on the Bus',
  'step-4': 'Step 4: Verify',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)

function Chapter05LiveEvents() {
  return (
    <>
      <Section id="step-0">
        <p>
          <code>GET /v1/jobs/{'{id}'}/events</code> sends a job's events as server-sent events: the past ones, then
          each new one as it happens, and closes after the final one (SUCCEEDED, FAILED, CANCELED). Each event has{' '}
          <code>id:</code> (the event id), <code>event:</code> (its name) and <code>data:</code> (the event as JSON,
          as in the report). A client that reconnects with <code>Last-Event-ID</code> gets only what it missed.
        </p>
        <p>
          It is one file, <code>app/src/routes/events.rs</code>. It depends on the <code>job_events</code> table
          (Chapter 1's migration), which is the truth, and on the core-db <code>Bus</code> in the context (
          <code>ctx.bus</code>: in memory in one process, Redis pub/sub between processes), which only says "look
          again". The transition that writes an event may run on a worker on another machine than the server holding
          the stream.
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/src/routes/events.rs" />
        <Snippet source={events} region="publish" title="app/src/routes/events.rs" />
        <p>
          Every committed transition calls <code>publish</code> on the job's channel, after the commit, so a stream
          woken by it finds the event in the table. A failed publish is only logged: the message carries no data, and
          a stream that missed it reads the event at its next keep-alive.
        </p>
      </Section>

      <Section id="step-2">
        <FileRef path="app/src/routes/events.rs" />
        <Snippet source={events} region="stream" title="app/src/routes/events.rs" />
        <ul>
          <li>
            <code>owned</code> first: another client's job is a 404 before anything is streamed (
            <a href={hrefFor('cookbook-chapter-1-first-resource')}>Chapter 1</a>).
          </li>
          <li>
            Subscribe, then read. In the other order an event committed between the read and the subscription would
            be missed until the next keep-alive.
          </li>
          <li>
            <code>Last-Event-ID</code> is looked up in <code>job_events</code> and must belong to this job; the stream
            starts after its <code>seq</code>. An unknown id starts from the beginning: sending an event twice is
            better than skipping one.
          </li>
          <li>
            <code>Sse::new</code> (axum) sets <code>Content-Type: text/event-stream</code> and writes each{' '}
            <code>Event</code> as it is produced.
          </li>
        </ul>
      </Section>

      <Section id="step-3">
        <FileRef path="app/src/routes/events.rs" />
        <Snippet source={events} region="read" title="app/src/routes/events.rs" />
        <Snippet source={events} region="wait" title="app/src/routes/events.rs" />
        <p>
          The stream always reads from the table what comes after the last <code>seq</code> it sent, whatever woke it:
          a message, a <code>Gap</code> (the bus reconnected and may have dropped messages), or the 15-second
          keep-alive, which also sends a <code>: keep-alive</code> comment so proxies keep an idle connection open.
          Without a subscription (the bus is down) it polls every second. So a lost message delays an event; it never
          loses one.
        </p>
        <Callout kind="tip">
          The Bus is for waking, not for data. Publish a hint, keep the facts in the database, and let every reader
          catch up from where it is. The API is <code>core_db::bus</code>: <code>publish</code>,{' '}
          <code>subscribe</code>, and <code>recv</code> yielding <code>Payload</code> or <code>Gap</code>.
        </Callout>
      </Section>

      <Section id="step-4">
        <p>
          <code>core-docs/verify/05-live-events.sh</code> follows a <code>SUCCESS_FAST</code> job from its submission.{' '}
          <code>curl -N</code> prints events as they arrive, and <code>--max-time</code> makes a stream that does not
          close fail the script instead of hanging it:
        </p>
        <Snippet source={verify} region="follow" language="bash" title="core-docs/verify/05-live-events.sh" />
        <Snippet source={verify} region="ids" language="bash" title="core-docs/verify/05-live-events.sh" />
        <p>Reconnect after the second event, then after the last:</p>
        <Snippet source={verify} region="resume" language="bash" title="core-docs/verify/05-live-events.sh" />
        <Snippet source={verify} region="resume-final" language="bash" title="core-docs/verify/05-live-events.sh" />
      </Section>

      <Section id="decision-rule">
        <DecisionRule
          rules={[
            [
              'A client watching a job while it runs (a UI, a CLI)',
              'The event stream: one request, no polling, no public URL.',
            ],
            [
              'A system that must be told even when it is not connected',
              <>
                A webhook (<a href={hrefFor('cookbook-chapter-4-webhooks')}>Chapter 4</a>): stored, retried, signed.
              </>,
            ],
            [
              'Anything live across processes',
              <>
                Write the fact in the database first, then publish a wake-up on the <code>Bus</code>; readers read the
                table. Never put the only copy of an event on pub/sub.
              </>,
            ],
            [
              'A stream clients may reconnect to',
              <>
                Give every event a stable, ordered <code>id:</code> and resume after <code>Last-Event-ID</code>; end
                the stream when nothing more can come.
              </>,
            ],
          ]}
        />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 5: The live event stream',
  summary:
    'GET /v1/jobs/{id}/events: a job’s events as server-sent events, read from the table, woken by the Bus across processes, resumable with Last-Event-ID.',
  headings,
  component: Chapter05LiveEvents,
})
