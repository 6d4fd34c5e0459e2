import validationEn from '../../../snippets/json/validation-en.json?raw'
import validationRequest from '../../../snippets/json/validation-request.json?raw'
import validationZh from '../../../snippets/json/validation-zh.json?raw'
import requests from '../../../snippets/shell/requests.sh?raw'
import validation from '../../../snippets/validation.rs?raw'
import coreWebMessages from '../../../../core-web/i18n/en.json'
import { Code, Snippet } from '../components/Code'
import { Callout, sectionsOf } from '../components/Section'
import { hrefFor } from '../lib/router'
import { definePage } from './define'

const headings = {
  extractor: 'ValidatedJson',
  rules: 'Rules and their messages',
  nested: 'Nested fields and lists',
  custom: 'Custom rules and messages',
  locale: "Messages in the request's language",
  malformed: 'Malformed bodies',
  manual: 'Validating without the extractor',
}
const Section = sectionsOf(headings)

const ruleMessages = Object.entries(coreWebMessages.validation)

function Validation() {
  return (
    <>
      <Section id="extractor">
        <p>
          <code>core_web::ValidatedJson&lt;T&gt;</code> reads a JSON body into <code>T</code> with serde, then runs the{' '}
          <code>validator</code> rules derived on it. Only input that parsed and passed every rule reaches the handler;
          anything else is answered with the framework's <a href={hrefFor('responses')}>error shape</a>.
        </p>
        <Snippet source={validation} region="input" />
        <Snippet source={validation} region="handler" />
      </Section>

      <Section id="rules">
        <p>
          Use the rules of the <code>validator</code> crate: <code>length</code>, <code>range</code>, <code>email</code>,{' '}
          <code>url</code>, <code>contains</code>, <code>must_match</code>, <code>regex</code>, <code>custom</code>,{' '}
          <code>nested</code>. Their messages come from the framework's catalog, key{' '}
          <code>validation.&#123;rule&#125;</code>, refined by which bounds the rule has (<code>length_min</code> when it
          only has <code>min</code>). Your catalogs can override any of them.
        </p>
        <table>
          <thead>
            <tr>
              <th>Key</th>
              <th>English message</th>
            </tr>
          </thead>
          <tbody>
            {ruleMessages.map(([key, message]) => (
              <tr key={key}>
                <td>
                  <code>validation.{key}</code>
                </td>
                <td>{message}</td>
              </tr>
            ))}
          </tbody>
        </table>
        <p>
          <code>:min</code>, <code>:max</code>, <code>:equal</code> and the other placeholders are filled with the
          rule's parameters.
        </p>
      </Section>

      <Section id="nested">
        <p>
          <code>#[validate(nested)]</code> validates each element of a list or an inner struct. Failures are reported
          under a path with dots and indexes, so a client can put the message next to the right input. This request:
        </p>
        <Code language="json" title="POST /articles" code={validationRequest} />
        <p>is answered with:</p>
        <Code language="json" title="422 Unprocessable Entity" code={validationEn} />
      </Section>

      <Section id="custom">
        <p>
          A <code>custom</code> rule is a function returning <code>Result&lt;(), ValidationError&gt;</code>. A{' '}
          <code>message</code>, on a custom rule or on a built-in one, is treated as a translation key and shown as is
          when no catalog has it:
        </p>
        <Snippet source={validation} region="catalog" />
      </Section>

      <Section id="locale">
        <p>
          Messages are translated into the locale negotiated for the request from <code>X-Locale</code> or{' '}
          <code>Accept-Language</code> (see <a href={hrefFor('i18n')}>Translations</a>). The same request with{' '}
          <code>Accept-Language: zh-CN,zh;q=0.9</code>:
        </p>
        <Code language="json" title="422 Unprocessable Entity" code={validationZh} />
      </Section>

      <Section id="malformed">
        <table>
          <thead>
            <tr>
              <th>What went wrong</th>
              <th>Status</th>
              <th>
                <code>error_code</code>
              </th>
            </tr>
          </thead>
          <tbody>
            <tr><td><code>Content-Type</code> is not JSON</td><td>400</td><td><code>BAD_REQUEST</code></td></tr>
            <tr><td>malformed JSON (line and column in the message)</td><td>400</td><td><code>BAD_REQUEST</code></td></tr>
            <tr><td>a field of the wrong type (its path in <code>errors</code>)</td><td>400</td><td><code>BAD_REQUEST</code></td></tr>
            <tr><td>the body is over the limit</td><td>413</td><td><code>PAYLOAD_TOO_LARGE</code></td></tr>
            <tr><td>validation rules fail</td><td>422</td><td><code>VALIDATION_ERROR</code></td></tr>
          </tbody>
        </table>
        <Snippet source={requests} region="malformed-json" language="bash" />
        <Callout kind="tip">
          Add <code>#[serde(deny_unknown_fields)]</code> to reject misspelled fields instead of ignoring them, and{' '}
          <code>#[serde(default)]</code> for optional ones.
        </Callout>
      </Section>

      <Section id="manual">
        <p>
          Bodies that do not arrive as a JSON request (a multipart field, a message from a queue, a file) get the same
          treatment from the two functions <code>ValidatedJson</code> is built on:
        </p>
        <Snippet source={validation} region="manual" />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Validation',
  summary: 'ValidatedJson checks a body with validator rules; failures are 422 with dotted field paths and messages in the caller\u2019s language.',
  headings,
  component: Validation,
})
