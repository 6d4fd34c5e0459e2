import i18n from '../../../snippets/i18n.rs?raw'
import en from '../../../snippets/i18n/en.json?raw'
import zh from '../../../snippets/i18n/zh.json?raw'
import fr from '../../../snippets/json/i18n-fr.json?raw'
import welcomeZh from '../../../snippets/json/welcome-zh.json?raw'
import requests from '../../../snippets/shell/requests.sh?raw'
import { Code, Snippet } from '../components/Code'
import { Callout, sectionsOf } from '../components/Section'
import { definePage } from './define'

const headings = {
  catalogs: 'Catalogs',
  loading: 'Loading catalogs',
  translate: 't and t_args',
  fallback: 'The fallback chain',
  'request-locale': "The request's locale",
  handlers: 'In handlers',
  background: 'Spawned tasks',
  'framework-messages': "The framework's own messages",
}
const Section = sectionsOf(headings)

function I18n() {
  return (
    <>
      <Section id="catalogs">
        <p>
          A catalog is a JSON object for one locale, in a file named after it: <code>en.json</code>,{' '}
          <code>zh.json</code>, <code>zh-CN.json</code> (<code>zh_cn.json</code> works too). Nested objects become dotted
          keys, so <code>shop.cart.items</code> below. Every value is a string; <code>:name</code> marks a placeholder.
        </p>
        <Code language="json" title="i18n/en.json" code={en} />
        <Code language="json" title="i18n/zh.json" code={zh} />
        <p>
          A number, boolean, array or <code>null</code> where a message should be is an error naming the file and the key,
          reported when the catalog is loaded, not when it is used.
        </p>
      </Section>

      <Section id="loading">
        <p>
          <code>core_i18n::init</code> loads every <code>*.json</code> of the configured directories (later directories
          override earlier ones) and sets the default locale; <code>add_catalog</code> merges one catalog given as a
          string, usually embedded with <code>include_str!</code>, and <code>add_catalog_defaults</code> only fills keys
          nobody has set. Loading is all-or-nothing: one invalid file and nothing from that call is applied.
        </p>
        <Snippet source={i18n} region="init" />
        <p>
          In an app, <code>DEFAULT_LOCALE</code> (default <code>en</code>) and <code>I18N_DIRS</code> (comma-separated
          directories) from the settings feed <code>I18nConfig</code>.
        </p>
      </Section>

      <Section id="translate">
        <p>
          <code>t(key)</code> translates into the current locale; <code>t_args(key, args)</code> also fills placeholders.
          Translating never fails and never panics. <code>t_in</code> and <code>t_args_in</code> take an explicit locale,
          for a message addressed to someone other than the caller.
        </p>
        <Snippet source={i18n} region="lookups" />
      </Section>

      <Section id="fallback">
        <p>A key is looked up along a chain, and the first catalog that has it wins:</p>
        <ol>
          <li>the requested locale (<code>zh-CN</code>);</li>
          <li>its language (<code>zh</code>), then any shorter prefix of the tag;</li>
          <li>the default locale;</li>
          <li>the key itself, placeholders still filled, so a missing translation shows up as a readable key.</li>
        </ol>
        <p>
          Placeholders: the longest argument name that matches wins (<code>:names</code> before <code>:name</code>),
          placeholders without an argument stay as written, and inserted values are never scanned again.
        </p>
      </Section>

      <Section id="request-locale">
        <p>
          The middleware stack includes <code>core_i18n::LocaleLayer</code>. For each request it picks a locale from the
          locales that have a catalog, scopes the whole request to it, sets <code>Content-Language</code> on the response
          and adds <code>Accept-Language, X-Locale</code> to <code>Vary</code>. The choice:
        </p>
        <ol>
          <li>
            <code>X-Locale</code>, when it names an available locale exactly or by its language;
          </li>
          <li>
            <code>Accept-Language</code> entries by decreasing quality (<code>q=0</code> means never), each matched exactly
            or by language;
          </li>
          <li>the default locale.</li>
        </ol>
        <Snippet source={i18n} region="resolve" />
        <Callout kind="note">
          The current locale is a tokio task-local, never a process-wide variable, so concurrent requests in different
          languages cannot see each other's locale.
        </Callout>
      </Section>

      <Section id="handlers">
        <Snippet source={i18n} region="handler" />
        <Snippet source={requests} region="welcome" language="bash" />
        <Code language="json" title="200 OK, Content-Language: zh" code={welcomeZh.trim()} />
      </Section>

      <Section id="background">
        <p>
          Task-locals do not cross <code>tokio::spawn</code>: take the locale with <code>current_locale()</code> and wrap
          the spawned future in <code>scope</code>. <code>sync_scope</code> does the same for a closure.
        </p>
        <Snippet source={i18n} region="background" />
      </Section>

      <Section id="framework-messages">
        <p>
          <code>core-web</code> ships its error and validation messages in English and Chinese (
          <code>core-web/i18n/en.json</code>, <code>zh.json</code>) and registers them with{' '}
          <code>add_catalog_defaults</code>. Define the same key in your catalog to change a message, or add a catalog
          for another locale to translate them all:
        </p>
        <Code language="json" title="i18n/fr.json" code={fr.trim()} />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Translations',
  summary: "JSON catalogs per locale, t() and t_args() with a fallback chain, and each request answered in its caller's language.",
  headings,
  component: I18n,
})
