import configuration from '../../../snippets/configuration.rs?raw'
import settingsFile from '../../../snippets/toml/rustforge.toml?raw'
import { Snippet } from '../components/Code'
import { Inline } from '../components/Inline'
import { Callout, sectionsOf } from '../components/Section'
import settings from '../generated/settings.json'
import { definePage } from './define'

const headings = {
  sources: 'Where settings come from',
  settings: 'Every setting',
  drivers: 'Drivers',
  'in-code': 'Reading settings in code',
  invalid: 'Invalid values',
}
const Section = sectionsOf(headings)

function Configuration() {
  return (
    <>
      <Section id="sources">
        <p>Settings are read once, at start-up, from three places. Highest precedence first:</p>
        <ol>
          <li>the process environment;</li>
          <li>
            a <code>.env</code> file in the working directory (read without changing the environment; it never
            overrides a variable that is set);
          </li>
          <li>
            a TOML file: <code>rustforge.toml</code> in the working directory when it exists, or the path in{' '}
            <code>RUSTFORGE_CONFIG</code>. Its keys are the variable names in lower case; lists become comma-separated
            values.
          </li>
        </ol>
        <Snippet source={settingsFile} region="example" language="toml" title="rustforge.toml" />
        <p>
          Every setting has a default that selects an embedded driver, so an empty environment runs the whole app with no
          services.
        </p>
      </Section>

      <Section id="settings">
        <p>
          This table is generated from the tables each crate publishes (<code>core_web::config::SETTINGS</code>,{' '}
          <code>core_db::settings::SETTINGS</code>, <code>core_jobs::config::SETTINGS</code>), with every default read
          from the configuration types&apos; <code>Default</code>; a test fails when the page and the crates differ.
        </p>
        <table>
          <thead>
            <tr>
              <th>Setting</th>
              <th>Default</th>
              <th>Meaning</th>
            </tr>
          </thead>
          <tbody>
            {settings.map((setting) => (
              <tr key={setting.name}>
                <td>
                  <code>{setting.name}</code>
                </td>
                <td>{setting.default.startsWith('(') ? <em>{setting.default}</em> : <code>{setting.default}</code>}</td>
                <td>
                  <Inline text={setting.description} />
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Section>

      <Section id="drivers">
        <p>
          Every stateful part has an embedded driver for one machine and a production driver for many processes. The
          API is the same; configuration picks the driver.
        </p>
        <table>
          <thead>
            <tr>
              <th>Part</th>
              <th>Embedded default</th>
              <th>Shared backend</th>
            </tr>
          </thead>
          <tbody>
            <tr>
              <td>Database</td>
              <td>
                <code>DATABASE_URL=sqlite://data/app.sqlite3</code> (WAL, file created)
              </td>
              <td>
                <code>DATABASE_URL=postgres://user@host/db</code>
              </td>
            </tr>
            <tr>
              <td>Cache</td>
              <td>
                <code>CACHE_URL=memory://</code>
              </td>
              <td>
                <code>CACHE_URL=redis://host:6379</code>, or <code>tiered+redis://…</code> (memory L1 in front of Redis)
              </td>
            </tr>
            <tr>
              <td>Queue</td>
              <td>
                <code>QUEUE_URL=memory://</code>
              </td>
              <td>
                <code>QUEUE_URL=redis://host:6379</code>
              </td>
            </tr>
            <tr>
              <td>Storage</td>
              <td>
                <code>STORAGE_DRIVER=local</code>, <code>STORAGE_ROOT=data/storage</code>
              </td>
              <td>
                <code>STORAGE_DRIVER=s3</code> with the <code>S3_*</code> settings
              </td>
            </tr>
          </tbody>
        </table>
        <p>
          Setting <code>REDIS_URL</code> alone moves both the cache and the queue to Redis; <code>CACHE_URL</code> and{' '}
          <code>QUEUE_URL</code> override it one part at a time.
        </p>
      </Section>

      <Section id="in-code">
        <p>
          Each crate owns the configuration of its parts, beside the constructor that takes it:{' '}
          <code>DatabaseConfig</code> for <code>Database::from_config</code>, <code>CacheConfig</code> for{' '}
          <code>Cache::from_config</code>, <code>StorageConfig</code> for <code>storage::from_config</code>,{' '}
          <code>QueueConfig</code> for <code>Queue::from_config</code>, <code>WorkerConfig</code>,{' '}
          <code>HttpConfig</code>, <code>LogConfig</code> and <code>I18nConfig</code>. Values are typed: an{' '}
          <code>IpAddr</code> for <code>HOST</code>, <code>Duration</code>s for timeouts.{' '}
          <code>core_web::config::Settings</code> composes the ones core-web can see (<code>settings.database</code>,{' '}
          <code>settings.cache</code>, <code>settings.storage</code>, <code>settings.http</code>,{' '}
          <code>settings.log</code>, <code>settings.i18n</code>); an application adds the sections of the other crates
          it uses, and each crate publishes the variables that fill its sections:
        </p>
        <Snippet source={configuration} region="compose" />
        <p>
          The <code>Loader</code> layers them with figment: the defaults, then the TOML file, then <code>.env</code>,
          then the environment. Each driver checks its own URL, and <code>Debug</code> prints <code>***</code> for
          every secret and URL password, so the settings can be logged whole:
        </p>
        <Snippet source={configuration} region="load" />
        <p>
          Tests build settings from a map with <code>Settings::from_lookup</code>, so they never touch the process
          environment:
        </p>
        <Snippet source={configuration} region="from-lookup" />
      </Section>

      <Section id="invalid">
        <p>
          An invalid value stops start-up with an error that names the variable and says what it accepts, rather than
          failing later with a confusing message:
        </p>
        <Snippet source={configuration} region="invalid" />
        <p>
          The example app prints that error and exits with status 78 (<code>EX_CONFIG</code>), so a supervisor can tell
          a configuration mistake from a crash.
        </p>
        <Callout kind="note">
          <code>STORAGE_DRIVER=s3</code> without <code>S3_BUCKET</code> is rejected the same way, as are URLs with an
          unknown scheme (<code>CACHE_URL=memcached://…</code>). A secret&apos;s value is never shown, nor a URL&apos;s
          password, and a malformed <code>.env</code> or TOML file is reported by line number without its text.
        </Callout>
      </Section>
    </>
  )
}

export default definePage({
  title: 'Configuration',
  summary: 'Every setting, its default and what it selects: from the environment, a .env file or rustforge.toml.',
  headings,
  component: Configuration,
})
