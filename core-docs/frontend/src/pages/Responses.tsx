import articleCreated from '../../../snippets/json/article-created.json?raw'
import articleList from '../../../snippets/json/article-list.json?raw'
import article from '../../../snippets/json/article.json?raw'
import cannotRename from '../../../snippets/json/cannot-rename.json?raw'
import errorShape from '../../../snippets/json/error-shape.json?raw'
import forbidden from '../../../snippets/json/forbidden.json?raw'
import notFound from '../../../snippets/json/not-found.json?raw'
import rateLimited from '../../../snippets/json/rate-limited.json?raw'
import routeNotFound from '../../../snippets/json/route-not-found.json?raw'
import titleTaken from '../../../snippets/json/title-taken.json?raw'
import unauthorized from '../../../snippets/json/unauthorized.json?raw'
import responses from '../../../snippets/responses.rs?raw'
import { Code, Snippet } from '../components/Code'
import { Inline } from '../components/Inline'
import { Callout, sectionsOf } from '../components/Section'
import errors from '../generated/errors.json'
import { hrefFor } from '../lib/router'
import { definePage } from './define'

const headings = {
  envelope: 'The success envelope',
  'error-shape': 'The error shape',
  variants: 'AppError variants',
  'not-found': '404: a missing record',
  forbidden: '401 and 403: who may do what',
  'field-errors': '422: field errors from business rules',
  'question-mark': 'Any error with ?',
  mapping: 'Mapping domain errors',
  'other-statuses': 'Rate limits and other statuses',
  framework: 'Errors the framework produces',
  messages: 'Translated messages',
}
const Section = sectionsOf(headings)

/** What each variant is for; keyed by the variant as the generated table names it. */
export const variantUse: Record<string, string> = {
  'Internal(anyhow::Error)': 'Anything unexpected; what `?` produces. Logged with the request id; the client sees a generic message in release builds.',
  'NotFound(String)': 'The record or resource does not exist.',
  'BadRequest(String)': 'The request cannot be understood at all.',
  'InvalidInput { message, errors }': 'Well-formed input of the wrong shape, per field (a string where a number goes).',
  'Unauthorized(String)': 'The caller is not signed in, or the credentials are invalid.',
  'Forbidden(String)': 'Signed in, but not allowed to do this.',
  'Conflict(String)': 'The request clashes with the current state: a duplicate, a stale version.',
  'Timeout(String)': 'The work took too long (the middleware uses it past `REQUEST_TIMEOUT_MS`).',
  'PayloadTooLarge(String)': 'The body or upload is too big (the middleware uses it past `BODY_LIMIT_BYTES`).',
  'UnprocessableEntity(String)': 'Semantically invalid, without per-field details.',
  'Validation { message, errors }': 'Rules failed, with messages per field path; what `ValidatedJson` returns.',
  'TooManyRequests { message, retry_after }': 'Rate limited; sets `Retry-After` when a duration is given.',
  'ServiceUnavailable(String)': 'A dependency is down or the app is draining.',
  'Status { status, error_code, message }': 'Any other status, with your own error code.',
}

function Responses() {
  return (
    <>
      <Section id="envelope">
        <p>
          Handlers return <code>ApiResult&lt;T&gt;</code>, which is <code>Result&lt;ApiResponse&lt;T&gt;, AppError&gt;</code>.
          On success the body is <code>{'{"data": …, "message"?: …, "meta"?: …}'}</code>: an empty message is left out,
          and so is <code>meta</code> unless you attach it.
        </p>
        <Snippet source={responses} region="success" />
        <Code language="json" title="GET /articles/1 → 200" code={article} />
        <p>
          <code>ApiResponse::created</code> answers 201, <code>ApiResponse::with_status</code> any status, and{' '}
          <code>with_meta</code> attaches anything serializable, such as pagination:
        </p>
        <Snippet source={responses} region="created" />
        <Code language="json" title="POST /articles → 201" code={articleCreated} />
        <Snippet source={responses} region="meta" />
        <Code language="json" title="GET /articles → 200" code={articleList} />
      </Section>

      <Section id="error-shape">
        <p>
          Every failure, whether your handler returned it or the framework produced it, leaves as one JSON shape, with
          the request id also in the <code>x-request-id</code> header:
        </p>
        <Code language="json" code={errorShape.trim()} />
        <p>
          Clients branch on <code>error_code</code>, show <code>message</code>, attach <code>errors</code> to form fields
          and quote <code>request_id</code> in bug reports.
        </p>
      </Section>

      <Section id="variants">
        <p>
          <code>core_web::AppError</code> has one variant per kind of failure. The status and code columns are generated
          from the crate (a test fails when they change).
        </p>
        <table>
          <thead>
            <tr>
              <th>Variant</th>
              <th>Status</th>
              <th>
                <code>error_code</code>
              </th>
              <th>Use it for</th>
            </tr>
          </thead>
          <tbody>
            {errors.map((row) => (
              <tr key={row.variant}>
                <td>
                  <code>{row.variant}</code>
                </td>
                <td>{row.status}</td>
                <td>
                  <code>{row.variant.startsWith('Status') ? 'yours' : row.error_code}</code>
                </td>
                <td>
                  <Inline text={variantUse[row.variant]} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        <p>
          <code>AppError::field("title", message)</code> is a shortcut for a <code>Validation</code> error with one field.
        </p>
      </Section>

      <Section id="not-found">
        <p>
          A lookup that finds nothing is not an internal error. Turn the <code>None</code> into{' '}
          <code>AppError::NotFound</code> with <code>ok_or_else</code>; the <code>?</code> before it still turns a failed
          query into a 500. The model used by these examples is plain sqlx behind the{' '}
          <a href={hrefFor('database')}>database handle</a>:
        </p>
        <Snippet source={responses} region="model" />
        <Code language="json" title="GET /articles/9 → 404" code={notFound} />
      </Section>

      <Section id="forbidden">
        <p>
          An extractor whose rejection is an <code>AppError</code> answers 401 before the handler runs; the handler then
          applies the business rule and answers 403 when it fails:
        </p>
        <Snippet source={responses} region="current-user" />
        <Snippet source={responses} region="forbidden" />
        <Code language="json" title="DELETE /articles/1 without x-user-id → 401" code={unauthorized} />
        <Code language="json" title="DELETE /articles/1 as user 3 → 403" code={forbidden} />
      </Section>

      <Section id="field-errors">
        <p>
          Rules that need the database (a unique title, a known tag) run in the handler. Report them like{' '}
          <a href={hrefFor('validation')}>validation</a> failures, so clients handle both the same way. Field paths are
          dotted, with list indexes: <code>tags[0].name</code>.
        </p>
        <Snippet source={responses} region="field-errors" />
        <Code language="json" title="POST /articles/7/rename → 422" code={titleTaken} />
        <Code language="json" title="POST /articles/8/rename → 422" code={cannotRename} />
      </Section>

      <Section id="question-mark">
        <p>
          <code>AppError</code> implements <code>From&lt;E&gt;</code> for every <code>E: Into&lt;anyhow::Error&gt;</code>, so{' '}
          <code>?</code> works on database, I/O, JSON and cache errors alike and produces{' '}
          <code>AppError::Internal</code>:
        </p>
        <ul>
          <li>the status is 500 and the code <code>INTERNAL_ERROR</code>;</li>
          <li>the full error chain is logged inside the request's span, so the log line carries the request id;</li>
          <li>
            the client sees <code>Internal server error</code> in release builds, and the error chain appended in debug
            builds to speed up development.
          </li>
        </ul>
        <Callout kind="note">
          <code>AppError</code> deliberately does not implement <code>std::error::Error</code>; that is what lets the
          blanket conversion exist. Use <code>anyhow::Context</code> before <code>?</code> to add what was being done.
        </Callout>
      </Section>

      <Section id="mapping">
        <p>
          When the business logic has its own error type, decide once what each case means over HTTP and convert with{' '}
          <code>map_err</code>. Expected outcomes become 404 or 409; anything unexpected stays a 500 whose details only
          reach the log.
        </p>
        <Snippet source={responses} region="map-errors" />
      </Section>

      <Section id="other-statuses">
        <Snippet source={responses} region="more-variants" />
        <Code language="json" title="POST /exports → 429, Retry-After: 30" code={rateLimited} />
      </Section>

      <Section id="framework">
        <p>
          Behind <a href={hrefFor('middleware')}>the middleware stack</a> the framework's own failures use the same shape,
          so a client never has to parse an HTML or plain-text error:
        </p>
        <table>
          <thead>
            <tr>
              <th>What happened</th>
              <th>Status</th>
              <th>
                <code>error_code</code>
              </th>
            </tr>
          </thead>
          <tbody>
            <tr><td>no route matches</td><td>404</td><td><code>NOT_FOUND</code></td></tr>
            <tr><td>the route exists, the method does not (<code>Allow</code> kept)</td><td>405</td><td><code>METHOD_NOT_ALLOWED</code></td></tr>
            <tr><td>a path or query parameter of the wrong type</td><td>400</td><td><code>BAD_REQUEST</code></td></tr>
            <tr><td>malformed JSON, with line and column</td><td>400</td><td><code>BAD_REQUEST</code></td></tr>
            <tr><td>the body is over <code>BODY_LIMIT_BYTES</code></td><td>413</td><td><code>PAYLOAD_TOO_LARGE</code></td></tr>
            <tr><td>the request ran past <code>REQUEST_TIMEOUT_MS</code></td><td>408</td><td><code>REQUEST_TIMEOUT</code></td></tr>
            <tr><td>a handler panicked (details only in the log)</td><td>500</td><td><code>INTERNAL_ERROR</code></td></tr>
          </tbody>
        </table>
        <Code language="json" title="GET /nowhere → 404" code={routeNotFound} />
      </Section>

      <Section id="messages">
        <p>
          Messages go through <a href={hrefFor('i18n')}>translations</a>: <code>t("articles.not_found")</code> looks the
          key up in the request's locale and falls back to the key itself, so a missing translation never fails a
          request. The catalog used by the examples on this page:
        </p>
        <Snippet source={responses} region="catalog" />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Responses and errors',
  summary: 'ApiResponse for success, AppError for everything else: one JSON shape for every failure, with status, error_code and request id.',
  headings,
  component: Responses,
})
