import database from '../../../snippets/database.rs?raw'
import commands from '../../../snippets/shell/commands.sh?raw'
import articlesMigration from '../../../snippets/sql/20261201000000_articles.sql?raw'
import { Snippet } from '../components/Code'
import { Callout, sectionsOf } from '../components/Section'
import { definePage } from './define'

const headings = {
  connect: 'Connecting',
  sqlite: 'SQLite, the embedded default',
  migrations: 'Migrations',
  queries: 'Queries',
  transactions: 'Transactions',
  'row-counts': 'Row counts',
  readiness: 'Readiness',
}
const Section = sectionsOf(headings)

function Database() {
  return (
    <>
      <Section id="connect">
        <p>
          <code>core_db::Database</code> is a cheap, cloneable handle over a connection pool. The URL picks
          the engine: <code>postgres://</code> or <code>postgresql://</code> for PostgreSQL, <code>sqlite:</code> for
          SQLite.
        </p>
        <Snippet source={database} region="connect" />
        <table>
          <thead>
            <tr>
              <th>
                <code>DatabaseOptions</code> field
              </th>
              <th>Default</th>
              <th>Meaning</th>
            </tr>
          </thead>
          <tbody>
            <tr><td><code>max_connections</code></td><td>10</td><td>Largest number of open connections.</td></tr>
            <tr><td><code>acquire_timeout</code></td><td>5 s</td><td>How long to wait for a free connection before failing.</td></tr>
            <tr><td><code>sqlite_busy_timeout</code></td><td>5 s</td><td>How long a SQLite writer waits for the lock instead of failing with <code>SQLITE_BUSY</code>.</td></tr>
            <tr><td><code>ping_if_idle_for</code></td><td>1 s</td><td>A pooled connection idle at least this long is pinged before it is handed out.</td></tr>
            <tr><td><code>release_check_within</code></td><td>5 s</td><td>PostgreSQL: a connection coming back to the pool must answer a ping within this long or it is closed. sqlx's own check on release has no time limit, so a connection whose server went silent (a flow dropped by a NAT, a reply lost) would otherwise hold its pool slot for ever. <code>None</code> turns it off.</td></tr>
          </tbody>
        </table>
      </Section>

      <Section id="sqlite">
        <p>
          With no configuration the app uses <code>sqlite://data/app.sqlite3</code>. The file and its directory are
          created when missing, the journal is WAL (readers do not block the writer), synchronous mode is{' '}
          <code>NORMAL</code> and foreign keys are enforced. <code>sqlite::memory:</code> gives a private in-memory
          database, handy in tests.
        </p>
      </Section>

      <Section id="migrations">
        <p>
          Migrations are plain SQL files in <code>migrations/postgres</code> and <code>migrations/sqlite</code> at the
          workspace root, one set per engine, embedded into the binary at compile time: a deployed binary migrates its
          database without the source tree. <code>db.migrate()</code> applies the ones that have not run yet; the app
          does it on start unless <code>MIGRATE_ON_START=false</code>, and <code>app migrate</code> does it and exits.
        </p>
        <Snippet
          source={articlesMigration}
          region="articles"
          language="sql"
          title="migrations/sqlite/20261201000000_articles.sql"
        />
        <Snippet source={commands} region="migrate" language="bash" />
      </Section>

      <Section id="queries">
        <p>
          Queries are sqlx. <code>Database</code> is an enum of the two pools, so a query that must run on either engine
          matches on it; <code>as_postgres()</code> and <code>as_sqlite()</code> return the pool when you target one.
          Write SQL both engines accept (<code>$1</code> placeholders work on both).
        </p>
        <p>
          To bound a query in time, use <code>core_db::db::within(pool, operation, limit, work)</code> rather than{' '}
          <code>tokio::time::timeout</code> around it: when the limit passes it closes the connection instead of handing
          it back to the pool in the middle of a query.
        </p>
        <Snippet source={database} region="query" />
      </Section>

      <Section id="transactions">
        <p>
          <code>db.begin()</code> returns a <code>Tx</code>. Pass <code>&amp;mut tx</code> to everything that must write
          inside it and call <code>commit</code>; a <code>Tx</code> dropped without commit (an early <code>?</code>, a
          panic) rolls back.
        </p>
        <Snippet source={database} region="transaction" />
        <Callout kind="tip">
          <code>tx.execute(sql)</code> and <code>db.execute(sql)</code> run a statement without parameters, for schema
          changes and maintenance.
        </Callout>
      </Section>

      <Section id="row-counts">
        <p>
          <code>db.row_count(table)</code> is the exact number of rows. <code>COUNT(*)</code> on PostgreSQL reads the
          whole table, which takes milliseconds once a table holds a few hundred thousand rows; a table tracked with{' '}
          <code>db.track_row_count(table)</code> is answered from a counter in a fraction of a millisecond instead.
        </p>
        <Snippet source={database} region="row_count" />
        <p>
          Tracking installs three statement-level triggers (after <code>INSERT</code>, <code>DELETE</code> and{' '}
          <code>TRUNCATE</code>) that append each statement's change to <code>rustforge_row_counts</code>, a framework
          table created by <code>db.migrate()</code>. The count is transactional (a reader sees what is committed, like{' '}
          <code>COUNT(*)</code>), writers never wait on each other for it, and a bulk insert adds a single row. A migration of your own can
          do the same with <code>SELECT rustforge_track_row_count('articles');</code>; the framework's own migrations track{' '}
          <code>failed_jobs</code>, so <code>FailedJobs::count</code> stays cheap however many failures pile up. Inserts
          cost a little more: between 1.0x and 1.4x of an untracked insert, single-row or 10,000 rows in one
          statement, across runs of the DataTable benchmark.
        </p>
        <Callout kind="note">
          If one of the triggers is disabled or dropped, <code>row_count</code> falls back to <code>COUNT(*)</code> until{' '}
          <code>track_row_count</code> runs again. Rows written straight into a partition of a tracked partitioned table,
          or with triggers switched off (<code>session_replication_role = replica</code>), are not seen: write through
          the tracked table. On SQLite nothing is installed and <code>row_count</code> always counts, which is cheap at
          the sizes an embedded database holds.
        </Callout>
      </Section>

      <Section id="readiness">
        <p>
          <code>db.ping(timeout)</code> round-trips <code>SELECT 1</code> and fails with <code>Error::Timeout</code> when
          the database does not answer in time (the connection that did not answer is closed). The example app's <code>GET /ready</code> uses it, with the cache, to
          answer 503 while a dependency is down.
        </p>
      </Section>
    </>
  )
}

export default definePage({
  title: 'Database',
  summary: 'One Database handle over SQLite (the default) or PostgreSQL, with embedded migrations and transactions.',
  headings,
  component: Database,
})
