import payloadTooLarge from '../../../snippets/json/payload-too-large.json?raw'
import requestTimeout from '../../../snippets/json/request-timeout.json?raw'
import middleware from '../../../snippets/middleware.rs?raw'
import commands from '../../../snippets/shell/commands.sh?raw'
import { Code, Snippet } from '../components/Code'
import { Callout, sectionsOf } from '../components/Section'
import { hrefFor } from '../lib/router'
import { definePage } from './define'

const headings = {
  stack: 'The stack',
  'request-id': 'Request ids',
  limits: 'Timeouts and body limits',
  cors: 'CORS',
  panics: 'Panics and stray errors',
  logging: 'Logging',
  serving: 'Serving and graceful shutdown',
}
const Section = sectionsOf(headings)

function Middleware() {
  return (
    <>
      <Section id="stack">
        <p>
          <code>core_web::middleware::stack(router, &amp;http)</code> wraps a router in every layer an API needs, in this
          order from the outside in:
        </p>
        <ol>
          <li>compression (gzip, only for requests that send <code>Accept-Encoding</code>);</li>
          <li>
            CORS, when <code>CORS_ALLOWED_ORIGINS</code> is set;
          </li>
          <li>
            HTTP metrics, when the recorder is installed (<code>http_requests_total</code> and{' '}
            <code>http_request_duration_seconds</code> by route template; a CORS preflight the CORS layer answers is not
            counted);
          </li>
          <li>request id and the request's trace span;</li>
          <li>
            the locale (<a href={hrefFor('i18n')}>Translations</a>);
          </li>
          <li>JSON error bodies for anything that answered with a bare status;</li>
          <li>the request timeout;</li>
          <li>panic catching;</li>
          <li>the body limit;</li>
          <li>your handler.</li>
        </ol>
        <Snippet source={middleware} region="stack" />
        <p>
          In an application, pass <code>&amp;settings.http</code>: it holds <code>REQUEST_TIMEOUT_MS</code>,{' '}
          <code>BODY_LIMIT_BYTES</code>, <code>CORS_ALLOWED_ORIGINS</code> and <code>SHUTDOWN_GRACE_SECS</code>.
        </p>
      </Section>

      <Section id="request-id">
        <p>
          Each request gets an id: the client's <code>x-request-id</code> when it is 1–128 visible ASCII characters,
          otherwise a fresh one. It is echoed in the response header, recorded on the request's span (so on every log line
          inside it), put into every error body, and available to handlers as the <code>RequestId</code> extractor or{' '}
          <code>core_web::request_id::current()</code>.
        </p>
        <Snippet source={middleware} region="request-id" />
      </Section>

      <Section id="limits">
        <p>
          A request still running after <code>REQUEST_TIMEOUT_MS</code> (default 30 s) is stopped and answered with 408;
          a body larger than <code>BODY_LIMIT_BYTES</code> (default 2 MiB) with 413, whether it is declared up front or
          only discovered while reading.
        </p>
        <Code language="json" title="408 Request Timeout" code={requestTimeout.trim()} />
        <Code language="json" title="413 Payload Too Large" code={payloadTooLarge.trim()} />
      </Section>

      <Section id="cors">
        <p>
          With <code>CORS_ALLOWED_ORIGINS=https://app.example.com,https://admin.example.com</code> those origins may call
          the API with the usual methods and any header, and read <code>x-request-id</code>; <code>*</code> allows any
          origin. Without the setting no CORS headers are sent.
        </p>
      </Section>

      <Section id="panics">
        <p>
          A panicking handler does not take the connection down: the client gets a 500 with <code>INTERNAL_ERROR</code>{' '}
          and <code>Cache-Control: no-store</code>, and the panic message goes only to the log. Responses that carry an
          error status but no JSON body (the router's 404 and 405, an extractor's rejection, a handler returning{' '}
          <code>(StatusCode, &amp;str)</code>) are rewritten into the <a href={hrefFor('responses')}>error shape</a>,
          keeping their status and headers such as <code>Allow</code>.
        </p>
      </Section>

      <Section id="logging">
        <p>
          <code>core_web::telemetry::init(&amp;settings.log)</code> installs the log subscriber: human-readable lines by
          default, one JSON object per line with <code>LOG_FORMAT=json</code>, filtered by <code>LOG_LEVEL</code> or{' '}
          <code>RUST_LOG</code>. Each request logs one line when it finishes, with status and latency. A JSON line holds{' '}
          <code>timestamp</code> (RFC 3339, UTC), <code>level</code>, the event's fields (<code>message</code> among
          them), <code>target</code>, and under <code>span</code> the request's <code>request_id</code>,{' '}
          <code>method</code>, <code>path</code> (and <code>client_id</code> once authentication records it).
        </p>
        <p>
          Lines reach stdout through a writer thread of the logger's own, in batches, so a request does not wait for a
          write of its own: each thread queues its lines in a buffer of its own, and the writer merges them by the
          moment they were queued, so order is kept across threads. Warnings and errors are written out before the call that logs them returns,
          and nothing is dropped when the destination is slow (the logging thread then writes the lines itself). A{' '}
          <code>main</code> that returns calls <code>core_web::telemetry::flush()</code> first, so its last lines are
          written; <code>core_web::server::run</code> does this when it stops serving.
        </p>
        <p>
          The layers from the metrics to the panic catcher run as one service, in one future per request: stacked as
          separate <code>from_fn</code> layers, each would clone everything inside it and box a future on every request.
        </p>
        <Snippet source={commands} region="json-logs" language="bash" />
      </Section>

      <Section id="serving">
        <Snippet source={middleware} region="serve" />
        <Callout kind="note">
          On SIGINT or SIGTERM the server stops accepting connections and lets in-flight requests finish for at most{' '}
          <code>SHUTDOWN_GRACE_SECS</code> (default 30), then returns so the process exits 0.
        </Callout>
      </Section>
    </>
  )
}

export default definePage({
  title: 'Middleware and server',
  summary: 'One call adds request ids, tracing, locale, timeouts, body limits, panic safety, CORS and compression; serving drains gracefully.',
  headings,
  component: Middleware,
})
