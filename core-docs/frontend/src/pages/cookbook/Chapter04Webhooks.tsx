import deliver from '../../../../../app/src/webhooks/deliver.rs?raw'
import webhooksRoute from '../../../../../app/src/routes/webhooks.rs?raw'
import verify from '../../../../verify/04-webhooks.sh?raw'
import receiver from '../../../../verify/receiver.py?raw'
import { Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: Register a webhook',
  'step-2': 'Step 2: The secret, shown once',
  'step-3': 'Step 3: Signed deliveries',
  'step-4': 'Step 4: The deliveries log',
  'step-5': 'Step 5: Verify',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)

function Chapter04Webhooks() {
  return (
    <>
      <Section id="step-0">
        <p>
          A client that does not want to poll registers a URL and the event types it wants (
          <code>job.succeeded</code>, <code>job.failed</code>… or <code>["*"]</code>). Every matching event of its
          jobs is then POSTed there, signed with a secret only the client and ForgeRun know, and every attempt is
          listed at <code>GET /v1/webhooks/{'{id}'}/deliveries</code>. A job's <code>callback</code> URL is the same
          thing for one job: its submission returns <code>callback_webhook_id</code> and <code>callback_secret</code>.
        </p>
        <p>
          This chapter is the client's side: <code>app/src/routes/webhooks.rs</code> and the signing in{' '}
          <code>app/src/webhooks/deliver.rs</code>. How one event becomes one message per webhook, retried, disabled by
          a 410 and checked against the SSRF guard at every attempt, is Chapter 12.
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/src/routes/webhooks.rs" />
        <Snippet source={webhooksRoute} region="new-webhook" title="app/src/routes/webhooks.rs" />
        <Snippet source={webhooksRoute} region="create-webhook" title="app/src/routes/webhooks.rs" />
        <ul>
          <li>
            The DTO checks sizes (Chapter 2); the handler checks meaning: <code>events</code> must name event types,
            and the URL must pass <code>ctx.ssrf</code>, the core-web guard that refuses loopback, private, link-local
            and metadata addresses unless <code>WEBHOOK_ALLOW_NETWORKS</code> allows them. Both fail as a 422 on the
            field.
          </li>
          <li>
            The guard resolves the name now, so a URL that could never be called is refused at registration, not
            discovered at the first event.
          </li>
        </ul>
      </Section>

      <Section id="step-2">
        <FileRef path="app/src/routes/webhooks.rs" />
        <Snippet source={webhooksRoute} region="created-webhook" title="app/src/routes/webhooks.rs" />
        <p>
          The 201 answer is the only one that carries the secret: <code>CreatedWebhook</code> is the plain{' '}
          <code>WebhookView</code> plus <code>secret</code>, and the list and the delete answer with the view alone. A
          client that loses the secret deletes the webhook and registers a new one.
        </p>
        <Callout kind="note">
          Unlike an API key, of which only an HMAC is stored, the webhook secret is stored as it is: the sender needs
          it to sign every delivery. Treat the <code>webhooks</code> table as secret material.
        </Callout>
      </Section>

      <Section id="step-3">
        <FileRef path="app/src/webhooks/deliver.rs" />
        <Snippet source={deliver} region="send-signed" title="app/src/webhooks/deliver.rs" />
        <p>
          Each delivery is a POST of the event as JSON (<code>{'{"type", "timestamp", "data"}'}</code>, where{' '}
          <code>data</code> is the job as <code>GET /v1/jobs/{'{id}'}</code> shows it) with the three{' '}
          <a href="https://www.standardwebhooks.com/">Standard Webhooks</a> headers:
        </p>
        <ul>
          <li>
            <code>webhook-id</code>: the event id, the same on every retry, so the receiver can drop a duplicate;
          </li>
          <li>
            <code>webhook-timestamp</code>: Unix seconds, so the receiver can refuse an old replay;
          </li>
          <li>
            <code>webhook-signature</code>: <code>v1,</code> and the base64 HMAC-SHA-256 of{' '}
            <code>{'{id}.{timestamp}.{body}'}</code>, keyed by the secret's bytes (base64 after <code>whsec_</code>).
          </li>
        </ul>
        <p>
          A 2xx is delivered; a 410 disables the webhook; anything else is retried with backoff. A receiver written
          in Rust checks a delivery with <code>core_web::webhook::verify</code>; any Standard Webhooks library does
          the same, and Step 5 does it in a few lines of Python.
        </p>
      </Section>

      <Section id="step-4">
        <FileRef path="app/src/routes/webhooks.rs" />
        <p>
          Every attempt is a row of <code>webhook_deliveries</code>, listed with a{' '}
          <a href={hrefFor('datatable')}>DataTable</a>:
        </p>
        <Snippet source={webhooksRoute} region="deliveries-table" title="app/src/routes/webhooks.rs" />
        <Snippet source={webhooksRoute} region="deliveries-handler" title="app/src/routes/webhooks.rs" />
        <p>
          The query is parsed first (a bad parameter is a 422 naming it), then scoped to a webhook the caller owns
          (another client's is a 404). <code>outcome</code> is <code>delivered</code>, <code>retrying</code> (with{' '}
          <code>next_retry_at</code>), <code>failed</code>, <code>gone</code> or <code>refused</code>;{' '}
          <code>status_code</code>, <code>duration_ms</code> and <code>error</code> say what the receiver did. It is
          the first place a client looks when a webhook goes quiet.
        </p>
      </Section>

      <Section id="step-5">
        <p>
          <code>core-docs/verify/04-webhooks.sh</code> runs a receiver on <code>127.0.0.1</code> (so the app runs with{' '}
          <code>WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8</code>, as the test command sets it): <code>receiver.py</code>, in
          Python's standard library, which checks each delivery's signature with the webhook's secret, answers 204 (401
          to a bad signature) and records what it got. <code>start_receiver</code> (in <code>lib.sh</code>) starts it on
          a free port:
        </p>
        <Snippet source={verify} region="receiver" language="bash" title="core-docs/verify/04-webhooks.sh" />
        <p>Register, then list:</p>
        <Snippet source={verify} region="register" language="bash" title="core-docs/verify/04-webhooks.sh" />
        <Snippet source={verify} region="list" language="bash" title="core-docs/verify/04-webhooks.sh" />
        <p>
          A job that succeeds produces one delivery, <code>job.succeeded</code> (the webhook wants no other type).{' '}
          <code>curl -g</code> keeps the brackets of <code>filter[outcome]</code> literal:
        </p>
        <Snippet source={verify} region="deliver" language="bash" title="core-docs/verify/04-webhooks.sh" />
        <p>The receiver's side: recompute the signature from the secret and compare.</p>
        <Snippet source={receiver} region="verify-signature" language="python" title="core-docs/verify/receiver.py" />
        <p>It accepted one message, whose <code>webhook-id</code> is the event id:</p>
        <Snippet source={verify} region="received" language="bash" title="core-docs/verify/04-webhooks.sh" />
      </Section>

      <Section id="decision-rule">
        <DecisionRule
          rules={[
            [
              'A client wants to know when something happens, without polling',
              'A webhook: registered once, signed deliveries, retried, every attempt listed for the client.',
            ],
            [
              'Only one job’s events matter to the client',
              <>
                The job's <code>callback</code>: a webhook of that job alone, with its own secret.
              </>,
            ],
            [
              'A client watching a job right now (a UI, a terminal)',
              'The live event stream of Chapter 5: no public URL needed, nothing to verify.',
            ],
            [
              'A URL a user gives you that the server will call',
              <>
                Check it with the SSRF guard when it is given (a 422 on the field) and again at every call; never fetch
                it with a plain HTTP client.
              </>,
            ],
            [
              'A secret the client needs',
              'Show it once, in the creating response; never in a list or a read. Rotate by creating a new one.',
            ],
          ]}
        />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 4: Webhooks as notifications',
  summary:
    'Register a webhook, get its secret once, receive deliveries signed the Standard Webhooks way, verify them, and read every attempt in the deliveries log.',
  headings,
  component: Chapter04Webhooks,
})
