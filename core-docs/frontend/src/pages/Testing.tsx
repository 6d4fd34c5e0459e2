import commands from '../../../snippets/shell/commands.sh?raw'
import testing from '../../../snippets/testing.rs?raw'
import outputs from '../../../snippets/text/outputs.txt?raw'
import { Snippet } from '../components/Code'
import { Callout, sectionsOf } from '../components/Section'
import { hrefFor } from '../lib/router'
import { definePage } from './define'

const headings = {
  setup: 'Setup',
  services: 'A fresh service per test',
  'skip-or-fail': 'When a service is missing',
  proxy: 'The fault proxy',
  faults: 'Faults and what a client sees',
  connections: 'Dropping, resetting and refusing connections',
  'cache-example': 'Example: a cache that fails fast',
  'postgres-example': 'Example: a pool that recovers',
  habits: 'Writing fault tests',
}
const Section = sectionsOf(headings)

function Testing() {
  return (
    <>
      <Section id="setup">
        <p>
          <code>test-support</code> is the harness every Rustforge crate tests with, and yours can use it too. It gives
          each test its own piece of a real Redis, PostgreSQL, SQLite or S3 server, cleans it up afterwards, and puts a
          fault-injection proxy between your code and Redis or PostgreSQL so you can test what happens when the network
          misbehaves. Add it, and Tokio for <code>#[tokio::test]</code>, to the crate's dev-dependencies; in the
          workspace <code>cargo add</code> writes <code>test-support.workspace = true</code>:
        </p>
        <Snippet source={commands} region="add-test-support" language="bash" />
        <p>
          The helpers read the usual URLs: <code>REDIS_URL</code> (default <code>redis://127.0.0.1:6379</code>),{' '}
          <code>DATABASE_URL</code> when it is a PostgreSQL URL (default{' '}
          <code>postgres://postgres@127.0.0.1:5432/postgres</code>) and <code>S3_ENDPOINT</code> (default{' '}
          <code>http://127.0.0.1:9000</code>). <code>scripts/test</code> starts all three servers.
        </p>
      </Section>

      <Section id="services">
        <p>
          Each helper takes the test's name (for the SKIPPED line) and returns a guard; dropping the guard removes what
          the test made, so tests never see each other's data and can run in parallel.
        </p>
        <Snippet source={testing} region="redis" />
        <Snippet source={testing} region="postgres" />
        <Snippet source={testing} region="sqlite" />
        <Snippet source={testing} region="s3" />
        <table>
          <thead>
            <tr>
              <th>Helper</th>
              <th>Gives</th>
              <th>Removed on drop</th>
            </tr>
          </thead>
          <tbody>
            <tr>
              <td><code>test_support::redis(name)</code></td>
              <td><code>TestRedis</code>: <code>url</code>, a fresh <code>prefix</code>, <code>key(k)</code>, <code>connection()</code>, <code>keys()</code></td>
              <td>every key under the prefix (<code>SCAN</code> + <code>UNLINK</code>)</td>
            </tr>
            <tr>
              <td><code>test_support::postgres(name)</code></td>
              <td><code>TestPostgres</code>: <code>url</code>, <code>name</code>, a migrated <code>pool</code></td>
              <td>the database (<code>DROP DATABASE … WITH (FORCE)</code>)</td>
            </tr>
            <tr>
              <td><code>test_support::sqlite()</code></td>
              <td><code>TestSqlite</code>: <code>url</code>, <code>path</code>, a migrated <code>pool</code> (WAL)</td>
              <td>the file and its directory</td>
            </tr>
            <tr>
              <td><code>test_support::s3(name)</code></td>
              <td><code>TestS3</code>: <code>endpoint</code>, <code>bucket</code>, credentials, <code>client()</code>, <code>keys()</code>, <code>pending_uploads()</code></td>
              <td>the objects, unfinished multipart uploads, then the bucket</td>
            </tr>
          </tbody>
        </table>
        <p>
          For HTTP, drive the router without opening a port: <code>test_support::send_json(&amp;router, request)</code>{' '}
          returns the status, headers and JSON body (see{' '}
          <a href={hrefFor('responses')}>Responses and errors</a> for the bodies to expect).
        </p>
      </Section>

      <Section id="skip-or-fail">
        <p>
          When a service is unreachable the helper returns <code>None</code> after printing one line, and the{' '}
          <code>let … else &#123; return &#125;</code> ends the test. A contributor without Redis can still run{' '}
          <code>cargo test</code>, and the skip is visible rather than a silent pass:
        </p>
        <Snippet source={outputs} region="skipped" language="text" />
        <p>
          With <code>RUSTFORGE_REQUIRE_SERVICES=1</code> (also <code>true</code> or <code>yes</code>) the helper panics
          instead, naming the service and how to start it. <code>scripts/test</code> and CI set it, so a missing service
          can never make a suite pass:
        </p>
        <Snippet source={commands} region="require-services" language="bash" />
        <p>
          <code>test_support::sqlite()</code> never skips: SQLite is embedded.
        </p>
      </Section>

      <Section id="proxy">
        <p>
          <code>test_support::proxy::FaultProxy</code> is a TCP proxy on a free port of <code>127.0.0.1</code>. Start it
          in front of the real server, give the code under test <code>proxy.url(…)</code> instead of the server's URL,
          and nothing else changes: the proxy forwards every byte until you tell it otherwise.
        </p>
        <Snippet source={testing} region="proxy" />
        <ul>
          <li>
            <code>FaultProxy::for_url(url)</code> proxies to the URL's host and port; <code>FaultProxy::start(addr)</code>{' '}
            takes a <code>host:port</code>. Both must run inside the test's Tokio runtime.
          </li>
          <li>
            <code>proxy.url(url)</code> replaces only the host and port: user, password, database, path and query stay
            (<code>postgres://app:pw@db:5432/shop?sslmode=disable</code> →{' '}
            <code>postgres://app:pw@127.0.0.1:&#123;port&#125;/shop?sslmode=disable</code>).
          </li>
          <li>
            <code>connections()</code> counts the live connections, <code>accepted()</code> every connection since the
            start: a second accepted connection means the client reconnected.
          </li>
          <li>Dropping the proxy closes its listener and every connection.</li>
        </ul>
      </Section>

      <Section id="faults">
        <p>
          <code>proxy.set(direction, fault)</code> applies a <code>Fault</code> to the bytes going one way:{' '}
          <code>Direction::Upstream</code> (requests), <code>Downstream</code> (replies) or <code>Both</code>. It takes
          effect at once, on the live connections and on the ones that follow, until the next <code>set</code> for that
          direction or <code>heal()</code>.
        </p>
        <table>
          <thead>
            <tr>
              <th>Fault</th>
              <th>The proxy</th>
              <th>What a client sees</th>
            </tr>
          </thead>
          <tbody>
            <tr>
              <td><code>Pass</code></td>
              <td>forwards (the default)</td>
              <td>the server</td>
            </tr>
            <tr>
              <td><code>BlackHole</code></td>
              <td>reads and discards the bytes</td>
              <td>
                its writes succeed and no reply ever comes: only a response timeout ends the wait. The discarded bytes
                are lost for good, so the connection stays out of step after <code>heal()</code>
              </td>
            </tr>
            <tr>
              <td><code>Stall</code></td>
              <td>stops reading; the bytes wait in the proxy and the kernel buffers</td>
              <td>
                silence, as in a network partition; on <code>heal()</code> everything held is delivered, in order, and the
                connection carries on
              </td>
            </tr>
            <tr>
              <td><code>Delay(d)</code></td>
              <td>forwards each chunk after <code>d</code></td>
              <td>a slow server or link: timeouts shorter than <code>d</code> fire</td>
            </tr>
            <tr>
              <td><code>CutAfter(n)</code></td>
              <td>forwards <code>n</code> more bytes per connection, then closes it both ways (FIN)</td>
              <td>the connection ends mid-request or mid-reply (EOF)</td>
            </tr>
            <tr>
              <td><code>ResetAfter(n)</code></td>
              <td>the same, then resets it (RST)</td>
              <td>"connection reset by peer"</td>
            </tr>
          </tbody>
        </table>
        <p>
          The byte budget of a cut counts from when the fault is set (or from the start of a newer connection), and
          setting it again starts a fresh one. A cut also applies to the connections a client opens to reconnect, so it
          keeps failing until you heal.
        </p>
        <Callout kind="note">
          A command cut in the middle is never half applied by Redis: it runs a command only once it has read all of it,
          and discards a partial one when the connection closes. PostgreSQL likewise rolls back a transaction whose
          connection is lost before <code>COMMIT</code>. What you cannot know is whether a command whose{' '}
          <em>reply</em> was lost ran: it may have. That is what <code>Downstream</code> faults test.
        </Callout>
      </Section>

      <Section id="connections">
        <table>
          <thead>
            <tr>
              <th>Call</th>
              <th>Effect</th>
            </tr>
          </thead>
          <tbody>
            <tr><td><code>drop_connections()</code></td><td>closes every live connection (FIN to both sides); new ones are accepted</td></tr>
            <tr><td><code>reset_connections()</code></td><td>resets every live connection (RST to both sides); new ones are accepted</td></tr>
            <tr><td><code>refuse(true)</code></td><td>accepts new connections and resets them at once; live ones are untouched</td></tr>
            <tr><td><code>heal()</code></td><td>lifts every fault and stops refusing; stalled bytes are delivered, black-holed ones stay lost</td></tr>
          </tbody>
        </table>
        <p>
          A server restart is <code>refuse(true)</code> then <code>reset_connections()</code>, and later{' '}
          <code>heal()</code>. A failover that leaves clients on a dead connection is <code>drop_connections()</code>.
        </p>
      </Section>

      <Section id="cache-example">
        <p>
          The Redis <a href={hrefFor('caching')}>cache</a> bounds every call by its timeout (2 s by default, shorter
          here), so a Redis that stops answering must give the caller an <code>Error::Timeout</code>, not a request that
          hangs. The test black-holes the replies and checks exactly that:
        </p>
        <Snippet source={testing} region="cache-black-hole" />
        <p>
          A black hole destroys bytes, which a real network never does in the middle of a connection: the cache's
          multiplexed connection is still owed the swallowed replies and would match the next replies to them. That is
          why a call that times out makes the cache replace its connection: after <code>heal()</code> every reply is
          the right one. A stall is different: nothing is lost, so the abandoned write still runs once the network is
          back, and a timed-out write must be treated as "may have happened":
        </p>
        <Snippet source={testing} region="cache-stall" />
        <p>
          A cut in the middle of a command shows that it is all or nothing, and that the cache reconnects by itself once
          the network is back:
        </p>
        <Snippet source={testing} region="cache-cut" />
      </Section>

      <Section id="postgres-example">
        <p>
          The same for a PostgreSQL pool. A pool waits up to its <code>acquire_timeout</code> (30 s by default) for a
          connection; set it to what a request can afford. The test restarts the server (every connection reset, new
          ones refused), then makes it go silent, and checks that each time a query fails within that bound and that
          the pool recovers on its own:
        </p>
        <Snippet source={testing} region="postgres-refuse" />
        <ul>
          <li>
            The pool notices a dead idle connection when it checks it before handing it out (
            <code>test_before_acquire</code>, on by default) and opens a new one. A connection that is reset or closed
            while connecting fails the query at once with <code>sqlx::Error::Io</code>; only "connection refused" is
            retried, with backoff, until the acquire timeout (<code>sqlx::Error::PoolTimedOut</code>).
          </li>
          <li>
            Silence is bounded by the acquire timeout only while a connection is being acquired. A query already
            running on a connection that goes silent waits for as long as TCP does: bound the request itself (a{' '}
            <code>tokio::time::timeout</code> around it, or the server's request timeout, see{' '}
            <a href={hrefFor('middleware')}>Middleware and server</a>).
          </li>
        </ul>
      </Section>

      <Section id="habits">
        <ul>
          <li>
            <strong>Time bounds are hang guards, not speed assertions.</strong> Wrap the call that must fail in a
            generous <code>timeout</code> and assert on the error, not on how many milliseconds it took: a shared CI
            machine is slow at the worst moments.
          </li>
          <li>
            <strong>Retry what reconnects.</strong> After the proxy ends a connection, a client notices on its next call
            and reconnects in the background; wait for success rather than expecting the very next call to work.
          </li>
          <li>
            <strong>Check the server directly.</strong> Whether a write happened is a question for a connection that
            bypasses the proxy: <code>redis.connection()</code>, or <code>db.pool</code>.
          </li>
          <li>
            <strong>Give clients timeouts.</strong> A black hole or a stall is silence, and only a timeout turns silence
            into an error. If a test with a downstream fault hangs, so would production.
          </li>
        </ul>
        <Snippet source={testing} region="hang-guard" />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Testing',
  summary: 'Per-test Redis, PostgreSQL, SQLite and S3 from test-support, and a fault proxy that black-holes, stalls, cuts and resets traffic.',
  headings,
  component: Testing,
})
