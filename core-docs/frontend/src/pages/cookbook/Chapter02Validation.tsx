import auth from '../../../../../app/src/auth/mod.rs?raw'
import jobsRoute from '../../../../../app/src/routes/jobs.rs?raw'
import verify from '../../../../verify/02-validation.sh?raw'
import { Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: The request DTO',
  'step-2': 'Step 2: Extract with ValidatedJson',
  'step-3': 'Step 3: Rules the derive cannot express',
  'step-4': 'Step 4: Errors with the application’s codes',
  'step-5': 'Step 5: Verify',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)

function Chapter02Validation() {
  return (
    <>
      <Section id="step-0">
        <p>
          <code>POST /v1/jobs</code> takes a JSON body. This chapter is how that body is checked and how every failure
          becomes an answer the client can act on:
        </p>
        <ul>
          <li>
            malformed JSON, a wrong type or an unknown field: <strong>400</strong> <code>BAD_REQUEST</code>;
          </li>
          <li>
            a field that breaks a rule: <strong>422</strong> <code>VALIDATION_ERROR</code>, with{' '}
            <code>errors</code> naming the field;
          </li>
          <li>
            a domain failure: the status and the application's own code (<code>RFA_JOB_NOT_FOUND</code>,{' '}
            <code>RFA_AUTH_INVALID_CREDENTIALS</code>…);
          </li>
          <li>
            any of these as RFC 9457 problem details when the request sends{' '}
            <code>Accept: application/problem+json</code>.
          </li>
        </ul>
        <p>
          Everything lives in <code>app/src/routes/jobs.rs</code> and <code>app/src/auth/mod.rs</code>; the
          extractor, the error type and the negotiation come from core-web (
          <a href={hrefFor('validation')}>Validation</a>, <a href={hrefFor('responses')}>Responses</a>).
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/src/routes/jobs.rs" />
        <Snippet source={jobsRoute} region="submit-dto" title="app/src/routes/jobs.rs" />
        <ul>
          <li>
            <code>#[serde(deny_unknown_fields)]</code>: a misspelt field (<code>max_attempt</code>) is a 400 naming it,
            not a default silently applied.
          </li>
          <li>
            <code>#[validate(…)]</code> (the <code>validator</code> crate) holds the rules that need only the value:
            lengths, ranges, URL syntax. Optional fields are checked only when present.
          </li>
          <li>
            <code>#[schema(…)]</code> says the same to the OpenAPI document. Keep the two in step: the document is
            what clients generate code from.
          </li>
        </ul>
      </Section>

      <Section id="step-2">
        <FileRef path="app/src/routes/jobs.rs" />
        <Snippet source={jobsRoute} region="submit-extract" title="app/src/routes/jobs.rs" />
        <p>
          <code>ValidatedJson&lt;SubmitJob&gt;</code> deserialises the body and runs <code>validate()</code> before the
          handler starts, so the handler never sees an unchecked <code>SubmitJob</code>. Its rejections are{' '}
          <code>AppError</code>s: 400 for a body that is not the DTO (not JSON, malformed, a wrong type, an
          unknown field), 413 past the body limit, 422 with every broken rule in{' '}
          <code>errors</code>, keyed by field path (<code>items[0].name</code> for nested input). Put it last among the
          extractors: it consumes the body.
        </p>
      </Section>

      <Section id="step-3">
        <FileRef path="app/src/routes/jobs.rs" />
        <p>
          Some rules need more than the value: the catalog (<code>work_kind</code> must name a kind that can be
          submitted), the clock (<code>execution_at</code> not in the past), a format the derive does not have (UTC,
          whole seconds). <code>check</code> turns the DTO into the domain's <code>NewJob</code> and reports a broken
          rule with <code>AppError::field</code>: the same 422 shape as the derive's, so the client handles one format.
        </p>
        <Snippet source={jobsRoute} region="submit-check" title="app/src/routes/jobs.rs" />
        <p>
          Parse, don't re-check: after <code>check</code> the handler holds a <code>WorkKind</code> and a{' '}
          <code>Timestamp</code>, not strings that later code would have to trust.
        </p>
      </Section>

      <Section id="step-4">
        <FileRef path="app/src/auth/mod.rs" />
        <p>
          A domain failure gets a status and a stable code the client can branch on. In a handler that is one call,{' '}
          <code>AppError::coded(StatusCode::NOT_FOUND, "RFA_JOB_NOT_FOUND", …)</code> (Chapter 1's{' '}
          <code>not_found</code>). A module with its own error enum converts it once, in one place:
        </p>
        <Snippet source={auth} region="auth-error-mapping" title="app/src/auth/mod.rs" />
        <p>
          Messages come from the translation catalog (<code>t(key)</code>), so they follow the request's locale; the
          code does not. <code>Internal</code> stays an <code>AppError::Internal</code>: a 500 whose body carries the
          request id and whose cause goes to the log, never to the client. Anything that converts into <code>anyhow::Error</code> reaches it through{' '}
          <code>?</code>.
        </p>
        <Callout kind="note">
          Problem details need nothing in the handler. The middleware stack reads <code>Accept</code> once per request
          and every <code>AppError</code>, the extractor's included, renders as{' '}
          <code>application/problem+json</code> when the client prefers it: <code>title</code> is the status's reason
          phrase, the code travels in <code>code</code>, field errors in <code>errors</code>.
        </Callout>
      </Section>

      <Section id="step-5">
        <p>
          <code>core-docs/verify/02-validation.sh</code> posts bodies to <code>/v1/jobs</code>; <code>submit</code>{' '}
          leaves the status on stdout and the body in <code>$TMP/body</code>. Malformed JSON, then an unknown field:
        </p>
        <Snippet source={verify} region="bad-json" language="bash" title="core-docs/verify/02-validation.sh" />
        <Snippet source={verify} region="unknown-field" language="bash" title="core-docs/verify/02-validation.sh" />
        <p>A derive rule, then a rule the handler checks:</p>
        <Snippet source={verify} region="rule" language="bash" title="core-docs/verify/02-validation.sh" />
        <Snippet source={verify} region="handler-rule" language="bash" title="core-docs/verify/02-validation.sh" />
        <p>The same 422 as problem details, and a coded 404 in that format:</p>
        <Snippet source={verify} region="problem" language="bash" title="core-docs/verify/02-validation.sh" />
        <Snippet source={verify} region="coded" language="bash" title="core-docs/verify/02-validation.sh" />
      </Section>

      <Section id="decision-rule">
        <DecisionRule
          rules={[
            [
              'A rule that needs only the field’s value (length, range, URL, pattern)',
              <>
                A <code>#[validate(…)]</code> attribute on the DTO, mirrored in <code>#[schema(…)]</code>.
              </>,
            ],
            [
              'A rule that needs the catalog, the clock or another field',
              <>
                A check function right after extraction that returns <code>AppError::field</code> and produces the
                domain type.
              </>,
            ],
            [
              'A rule that needs the database (a name already taken, a row that must exist)',
              <>
                In the handler or the domain code, after extraction: a 422 on the field when the client can fix it, a
                coded 404 or 409 when the state of the world is the problem.
              </>,
            ],
            [
              'A failure the client must tell apart from others',
              <>
                <code>AppError::coded</code> with an <code>RFA_…</code> code; a module's error enum converts into{' '}
                <code>AppError</code> in one function.
              </>,
            ],
            [
              'A failure the client cannot act on (database down, a bug)',
              <>
                Let <code>?</code> make it a 500: the details go to the log with the request id, never to the client.
              </>,
            ],
          ]}
        />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 2: Request DTOs, validation and errors',
  summary:
    'The body of POST /v1/jobs checked by ValidatedJson and the handler: 400 for malformed input, 422 naming the field, coded domain errors, problem details on request.',
  headings,
  component: Chapter02Validation,
})
