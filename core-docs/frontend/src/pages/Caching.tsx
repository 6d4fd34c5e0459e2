import caching from '../../../snippets/caching.rs?raw'
import outputs from '../../../snippets/text/outputs.txt?raw'
import { Snippet } from '../components/Code'
import { Callout, sectionsOf } from '../components/Section'
import { hrefFor } from '../lib/router'
import { definePage } from './define'

const headings = {
  setup: 'Setup',
  basics: 'get, set, del, has, forget',
  ttl: 'TTL and expiry',
  json: 'Typed JSON values',
  remember: 'remember: cache an expensive query',
  'remember-forever': 'remember_forever',
  counters: 'Counters and rate limits',
  bulk: 'many, put_many, flush_prefix',
  invalidation: 'Invalidation',
  drivers: 'Drivers',
  tiered: 'The tiered cache',
  tags: 'Tags',
  locks: 'Locks',
  flexible: 'flexible: stale-while-revalidate',
  'cached-attribute': 'The #[cached] attribute',
  'key-layout': 'Keys on Redis',
}
const Section = sectionsOf(headings)

function Caching() {
  return (
    <>
      <Section id="setup">
        <p>
          <code>core_db::Cache</code> is one handle over three drivers that behave the same: memory (the
          default, nothing to install), Redis (shared by every process) and tiered (a memory L1 in front of Redis).
          Create one at start-up from <code>CACHE_URL</code> and keep it in your state; cloning it is cheap and every
          clone shares the same connection, memory and in-flight computations.
        </p>
        <Snippet source={caching} region="setup" />
        <p>
          Every method is <code>async</code> and returns <code>core_db::Result</code>. Keys are strings and must not be
          empty; values are strings, or JSON through the typed methods.
        </p>
      </Section>

      <Section id="basics">
        <Snippet source={caching} region="basics" />
        <p>
          Two more building blocks: <code>add</code> stores only when the key is empty, and <code>pull</code> reads and
          deletes in one atomic step. Both are safe when many processes race for the same key.
        </p>
        <Snippet source={caching} region="add-pull" />
      </Section>

      <Section id="ttl">
        <p>
          <code>set_ex</code> stores for a number of seconds, <code>ttl</code> says how many are left. For millisecond
          precision use <code>put</code> with a <code>Duration</code>. TTLs are rounded up to whole milliseconds, capped at
          100 years, and a zero TTL means "already expired": the key is deleted.
        </p>
        <Snippet source={caching} region="ttl" />
      </Section>

      <Section id="json">
        <p>
          Anything <code>Serialize + Deserialize</code> can be cached as JSON with <code>set_json</code> (no expiry),{' '}
          <code>set_json_ex</code> (seconds) and <code>get_json</code>:
        </p>
        <Snippet source={caching} region="json" />
        <p>
          <code>get_json</code> on a value of another shape is <code>Err(Error::InvalidValue)</code>, not a panic and not a
          silent <code>None</code>.
        </p>
      </Section>

      <Section id="remember">
        <p>
          <code>remember(key, ttl_secs, f)</code> returns the cached value, or runs <code>f</code>, stores its value for{' '}
          <code>ttl_secs</code> and returns it. It is the one call to reach for when a query is expensive and its result
          can be a little old:
        </p>
        <Snippet source={caching} region="remember" />
        <ul>
          <li>
            <strong>Single flight.</strong> However many requests miss the key together, <code>f</code> runs once in the
            process, and on Redis once across every process sharing the prefix; the others wait for its value instead of
            stampeding the database.
          </li>
          <li>
            <strong>Errors are not cached.</strong> When <code>f</code> fails its error is returned and nothing is stored.
            Inside <code>f</code>, <code>?</code> works on sqlx, I/O, JSON, Redis and <code>anyhow</code> errors.
          </li>
          <li>
            <strong>A stale shape is a miss.</strong> A cached value that no longer decodes as <code>T</code> (after a
            deploy changed the struct) is logged, recomputed and replaced.
          </li>
        </ul>
      </Section>

      <Section id="remember-forever">
        <p>The same without expiry, for data that only changes with a deploy or an explicit invalidation:</p>
        <Snippet source={caching} region="remember-forever" />
      </Section>

      <Section id="counters">
        <p>
          <code>increment</code> and <code>decrement</code> are atomic on every driver; a missing key counts as 0 and the
          key keeps its expiry. A value that is not an integer, or a result past <code>i64</code>, is an{' '}
          <code>Error::InvalidValue</code> and leaves the value as it was.
        </p>
        <Snippet source={caching} region="counters" />
        <p>
          <code>increment_ex</code> gives a new counter a TTL and never extends it, which makes a fixed-window rate
          limiter in three lines:
        </p>
        <Snippet source={caching} region="rate-limit" />
        <p>
          Answer the rejected request with <code>AppError::TooManyRequests</code> (see{' '}
          <a href={hrefFor('responses', 'other-statuses')}>Rate limits and other statuses</a>).
        </p>
      </Section>

      <Section id="bulk">
        <Snippet source={caching} region="bulk" />
        <ul>
          <li>
            <code>many(&amp;[])</code> returns an empty vector without asking the backend, and <code>put_many(&amp;[])</code>{' '}
            does nothing.
          </li>
          <li>
            <code>flush_prefix</code> deletes exactly the keys that start with the literal prefix, tags included. On Redis
            it walks the keys with <code>SCAN</code> and deletes with <code>UNLINK</code> in small batches, so Redis keeps
            serving; it never uses <code>KEYS</code> or <code>FLUSHDB</code>, escapes <code>*</code>, <code>?</code> and{' '}
            <code>[</code>, and never leaves this cache's own keys.
          </li>
        </ul>
      </Section>

      <Section id="invalidation">
        <p>
          A TTL bounds how stale a value can get; it does not make it right. Invalidate when the data changes:
        </p>
        <Snippet source={caching} region="invalidate" />
        <ul>
          <li>
            Invalidate <em>after</em> the write has committed. Invalidating before lets a concurrent reader cache the old
            row again in between.
          </li>
          <li>
            Delete rather than overwrite: the next reader recomputes through <code>remember</code>, with single flight.
          </li>
          <li>
            Give derived keys a shared prefix (<code>articles:list:&#123;page&#125;</code>) so one{' '}
            <code>flush_prefix</code> drops them all, or tag them when one change touches keys with different prefixes.
          </li>
          <li>
            Keep a TTL even on invalidated keys, as a safety net for a write path that forgets to invalidate.
          </li>
          <li>
            Do not cache per-user data under shared keys, nor data that must be exact right now (balances, stock at
            checkout).
          </li>
        </ul>
      </Section>

      <Section id="drivers">
        <table>
          <thead>
            <tr>
              <th>Driver</th>
              <th>Constructor</th>
              <th>
                <code>CACHE_URL</code>
              </th>
              <th>For</th>
            </tr>
          </thead>
          <tbody>
            <tr>
              <td>memory</td>
              <td><code>Cache::memory(prefix)</code></td>
              <td><code>memory://</code></td>
              <td>one process; bounded (100,000 entries by default), TTLs exact to the millisecond</td>
            </tr>
            <tr>
              <td>redis</td>
              <td><code>Cache::redis(url, prefix)</code></td>
              <td><code>redis://…</code>, <code>rediss://…</code></td>
              <td>any number of processes sharing one Redis</td>
            </tr>
            <tr>
              <td>tiered</td>
              <td><code>Cache::tiered(l1, l2, config)</code></td>
              <td><code>tiered+redis://…</code></td>
              <td>hot keys served from memory, kept coherent across processes</td>
            </tr>
          </tbody>
        </table>
        <Snippet source={caching} region="drivers" />
        <p>
          The Redis driver shares one multiplexed, auto-reconnecting connection between all clones, and bounds every
          call by a timeout (2 s by default): while Redis is down calls fail fast with <code>Error::Timeout</code> or{' '}
          <code>Error::Redis</code> instead of hanging. Every driver passes the same behavioural test suite.
        </p>
      </Section>

      <Section id="tiered">
        <p>
          The tiered driver answers reads from an in-process L1 when it can and from Redis (L2) otherwise. Writes,
          deletes, counters, flushes and tag invalidations go to L2 first, then to this L1, and are published on{' '}
          <code>{'{prefix}'}:cache-invalidate</code> by the same Lua script that makes the change, so every other
          process evicts its L1 copy within milliseconds and no acknowledged write goes unannounced. A read never
          returns a value older than the last write acknowledged more than 2 s before it started.
        </p>
        <Snippet source={caching} region="tiered" />
        <table>
          <thead>
            <tr>
              <th>
                <code>TieredConfig</code> field
              </th>
              <th>Default</th>
              <th>Meaning</th>
            </tr>
          </thead>
          <tbody>
            <tr><td><code>enable_l1</code></td><td><code>true</code></td><td>Use the in-process L1.</td></tr>
            <tr><td><code>enable_l2</code></td><td><code>true</code></td><td>Use Redis; without it the cache is L1 only, per process.</td></tr>
            <tr><td><code>write_through</code></td><td><code>true</code></td><td>On a write, store the value in L1 too; otherwise only evict it.</td></tr>
            <tr><td><code>promote_to_l1</code></td><td><code>true</code></td><td>Copy an L2 hit into L1.</td></tr>
            <tr><td><code>l1_ttl_fraction</code></td><td><code>0.25</code></td><td>L1 keeps a value for this fraction of its remaining L2 TTL; in <code>(0, 1]</code>.</td></tr>
            <tr><td><code>l1_max_ttl</code></td><td>60 s</td><td>No L1 copy lives longer, whatever its TTL (values without one included); not zero.</td></tr>
          </tbody>
        </table>
        <Callout kind="warning">
          Every process writing the prefix must use the tiered driver: a plain Redis cache does not publish
          invalidations, so other processes' L1 copies would outlive its writes. The subscription is pinged every second;
          while it is down, or has not answered for 2 s, L1 is bypassed, and it is cleared when the subscription comes
          back.
        </Callout>
      </Section>

      <Section id="tags">
        <p>
          A tag names a group of keys to invalidate together when they do not share a prefix: everything derived from
          team 3, everything about users. <code>set_with_tags</code> replaces a key's tags; a plain <code>set</code> keeps
          them; deleting, pulling, flushing or expiring a key removes it from its tags.
        </p>
        <Snippet source={caching} region="tags" />
        <p>
          <code>remember_with_tags</code> is <code>remember</code> that tags what it stores, with a{' '}
          <code>Duration</code> TTL (<code>None</code> for no expiry):
        </p>
        <Snippet source={caching} region="remember-tags" />
        <p>
          <code>list_tags()</code> returns every tag in use; it looks at every tagged key, so keep it for tooling.
        </p>
      </Section>

      <Section id="locks">
        <p>
          <code>cache.lock(name, ttl)</code> gives a named lock with an owner token. Only the owner can release it, and it
          expires by itself after its TTL, so a crashed owner cannot hold it forever. Pick a TTL longer than the work it
          protects.
        </p>
        <Snippet source={caching} region="locks" />
        <p>
          <code>try_acquire</code> never waits; <code>acquire(wait)</code> polls until <code>wait</code> runs out;{' '}
          <code>release</code> answers <code>false</code> when the lock had already expired or belongs to someone else.
        </p>
      </Section>

      <Section id="flexible">
        <p>
          <code>flexible(key, fresh, stale, f)</code> never makes a reader wait for a refresh once a value exists. Younger
          than <code>fresh</code>, the value is served as is; older but younger than <code>stale</code>, it is served at
          once while one background task (one per key, across processes) recomputes it; missing or older than{' '}
          <code>stale</code>, it is computed like <code>remember</code>.
        </p>
        <Snippet source={caching} region="flexible" />
        <p>
          Because the refresh may outlive the request, <code>f</code> must own what it uses (<code>'static</code>):
          clone handles into it. A failed background refresh is logged and leaves the old value in place.
        </p>
      </Section>

      <Section id="cached-attribute">
        <p>
          <code>#[core_db::cached]</code> turns an <code>async fn</code> returning <code>Result</code> into a
          get-or-compute through a cache, on the same single-flight path as <code>remember</code>:
        </p>
        <Snippet source={caching} region="cached" />
        <table>
          <thead>
            <tr>
              <th>Option</th>
              <th>Meaning</th>
            </tr>
          </thead>
          <tbody>
            <tr><td><code>cache = expr</code></td><td>Required. The cache, evaluated inside the function: its arguments and <code>self</code> are in scope.</td></tr>
            <tr><td><code>key = "…"</code></td><td>Required. A <code>format!</code> string over the arguments.</td></tr>
            <tr><td><code>ttl = secs</code></td><td>Optional. Seconds; without it the value does not expire.</td></tr>
            <tr><td><code>tags = ["…"]</code></td><td>Optional. Tags, each a format string too, for <code>invalidate_tag</code>.</td></tr>
          </tbody>
        </table>
        <p>
          The value type must be <code>Serialize + DeserializeOwned</code> and the error type must implement{' '}
          <code>From&lt;core_db::Error&gt;</code> (<code>anyhow::Error</code> does). Only <code>Ok</code> values are
          stored. Misuse (a function that is not <code>async</code>, a return type that is not a <code>Result</code>, an
          unknown or missing option) is a compile error that says what to change.
        </p>
      </Section>

      <Section id="key-layout">
        <p>
          On Redis every key lives under the application prefix (<code>APP_NAME</code>), with one namespace per kind, so
          no operation of one part can touch another's keys:
        </p>
        <Snippet source={outputs} region="cache-keys" language="text" />
        <p>
          <code>cache.redis_connection()</code> hands out the underlying connection for commands the cache does not wrap;
          keys written through it are outside this layout unless you follow it.
        </p>
      </Section>
    </>
  )
}

export default definePage({
  title: 'Caching',
  summary: 'One Cache over memory, Redis or a tiered L1 + Redis: TTLs, typed JSON, single-flight remember, counters, tags, locks and #[cached].',
  headings,
  component: Caching,
})
