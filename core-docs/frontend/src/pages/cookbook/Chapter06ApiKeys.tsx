import authMod from '../../../../../app/src/auth/mod.rs?raw'
import authStore from '../../../../../app/src/auth/store.rs?raw'
import routesMod from '../../../../../app/src/routes/mod.rs?raw'
import verify from '../../../../verify/06-api-keys.sh?raw'
import { Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: Store a key as its HMAC',
  'step-2': 'Step 2: The key as an extractor',
  'step-3': 'Step 3: One middleware for a group, then the rate limiter',
  'step-4': 'Step 4: Renew with an overlap, revoke at once',
  'step-5': 'Step 5: Verify',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)

function Chapter06ApiKeys() {
  return (
    <>
      <Section id="step-0">
        <p>
          ForgeRun's clients call the API with <code>Authorization: Bearer frk_…</code>. This chapter is the whole of
          that: how a key is issued and stored, how a handler asks for the caller, how a group of routes is protected
          and rate-limited per client, and how a key is rotated or withdrawn. Everything lives in{' '}
          <code>app/src/auth/</code> (the key format in <code>keys.rs</code>, the <code>KeyStore</code> in{' '}
          <code>store.rs</code>, the extractor in <code>mod.rs</code>) and the layers in{' '}
          <code>app/src/routes/mod.rs</code>. It needs the database (the <code>api_keys</code> table), the cache
          (lookups and the limiter's counters) and one secret, <code>API_KEY_SECRET</code>.
        </p>
        <p>
          The failures, all JSON in the framework's error shape (see <a href={hrefFor('responses')}>Responses</a>):
          no, malformed or unknown key → 401 <code>RFA_AUTH_INVALID_CREDENTIALS</code> with{' '}
          <code>WWW-Authenticate: Bearer</code>; expired → 401 <code>RFA_AUTH_TOKEN_EXPIRED</code>; revoked → 403{' '}
          <code>RFA_AUTH_API_KEY_DISABLED</code>; over the limit → 429 <code>RFA_REQUEST_RATE_LIMITED</code> with{' '}
          <code>Retry-After</code>.
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/src/auth/store.rs" />
        <p>
          A key is <code>frk_</code>, 32 random bytes in base62 and a CRC32 checksum, so a typo or a random string is
          refused without a lookup. The raw key is returned once, in the response that creates it; the database keeps
          its HMAC-SHA-256 under the server secret and, for display, its first eight and last four characters:
        </p>
        <Snippet source={authStore} region="ch6-new-key" title="app/src/auth/store.rs" />
        <Snippet source={authStore} region="ch6-hash" title="app/src/auth/store.rs" />
        <p>
          An HMAC rather than a plain hash: a leaked <code>api_keys</code> table cannot be checked against guesses
          without the secret too. Authentication hashes the presented key, looks the hash up (cache first, 60 s, then
          the database), compares in constant time and checks revocation and expiry on every request, so a cached
          entry never outlives an expiry:
        </p>
        <Snippet source={authStore} region="ch6-authenticate" title="app/src/auth/store.rs" />
        <Callout kind="warning">
          In production <code>APP_ENV=production</code> refuses to start without <code>API_KEY_SECRET</code> (32
          characters or more), and every process must share it: a server with another secret computes other hashes and
          rejects every key. Changing it invalidates all keys. In development the secret is generated once into{' '}
          <code>data/api_key_secret</code>.
        </Callout>
      </Section>

      <Section id="step-2">
        <FileRef path="app/src/auth/mod.rs" />
        <p>
          A handler that needs the caller takes a <code>Caller</code> argument; Axum runs the extractor before the
          handler, and a rejection becomes the 401/403 above. The extractor first looks for a <code>Caller</code> that
          a middleware already left in the request's extensions, so a request is authenticated once however many
          layers and handlers ask:
        </p>
        <Snippet source={authMod} region="ch6-caller" title="app/src/auth/mod.rs" />
      </Section>

      <Section id="step-3">
        <FileRef path="app/src/routes/mod.rs" />
        <p>
          For a group of routes that all need a key, the same check runs as middleware. It has to run before the rate
          limiter, because the limiter counts per client and reads the client from the <code>Caller</code> the
          middleware stored:
        </p>
        <Snippet source={authMod} region="ch6-require" title="app/src/auth/mod.rs" />
        <Snippet source={routesMod} region="ch6-layers" title="app/src/routes/mod.rs" />
        <p>
          <code>route_layer</code>s wrap inside out: the last one added runs first, so <code>auth::require</code>{' '}
          runs, then the limiter, then the handler. Layers added with <code>route_layer</code> apply only to matched
          routes, so an unknown path is still a 404, not a 401. The limiter counts on the cache (Redis on the
          multi-process shape), so every server process shares one budget per client, and answers with{' '}
          <code>RateLimit-Policy: "default";q=600;w=60</code> and <code>RateLimit: "default";r=…;t=…</code>. If the
          cache fails, it lets the request through without the headers (it fails open). The limiter and the rest of
          the stack are on the <a href={hrefFor('middleware')}>Middleware</a> page.
        </p>
      </Section>

      <Section id="step-4">
        <FileRef path="app/src/auth/store.rs" />
        <p>
          <code>POST /v1/clients/{'{id}'}/keys/renew</code> issues a new key and, in the same transaction, gives the
          key of the request an expiry <code>API_KEY_RENEW_OVERLAP</code> (1 hour by default) from now, or keeps its
          own expiry if that is sooner. Deployed clients keep working while the new key is rolled out:
        </p>
        <Snippet source={authStore} region="ch6-renew" title="app/src/auth/store.rs" />
        <p>
          Revoking is immediate. After the commit, the key's cache entries are dropped by their tag on every process
          that shares the cache, so no server keeps accepting a revoked key from its cache for the rest of the 60
          seconds:
        </p>
        <Snippet source={authStore} region="ch6-revoke" title="app/src/auth/store.rs" />
        <Snippet source={authStore} region="ch6-evict" title="app/src/auth/store.rs" />
      </Section>

      <Section id="step-5">
        <FileRef path="core-docs/verify/06-api-keys.sh" />
        <p>Create a client; its first key is in the response, and nowhere else:</p>
        <Snippet source={verify} region="create" language="bash" title="core-docs/verify/06-api-keys.sh" />
        <p>
          No key, a malformed one and a well-formed one that was never issued are all 401s. The last is made with the
          key format's own checksum, so it passes the offline check and goes to the lookup:
        </p>
        <Snippet source={verify} region="refused" language="bash" />
        <p>A good key passes and carries the client's budget:</p>
        <Snippet source={verify} region="accepted" language="bash" />
        <p>The table holds the HMAC (64 hex digits), the prefix and the last four, never the key:</p>
        <Snippet source={verify} region="stored" language="bash" />
        <p>After a renewal both keys work, and the old one stops in 60 minutes. A revoked key is refused at once:</p>
        <Snippet source={verify} region="renew" language="bash" />
        <Snippet source={verify} region="revoke" language="bash" />
        <p>In Redis, the lookup cached under the key's HMAC (TTL 60 s) and the limiter's counters:</p>
        <Snippet source={verify} region="redis" language="bash" />
      </Section>

      <Section id="decision-rule">
        <DecisionRule
          rules={[
            [
              'Every route of a group needs a key',
              <>
                Put the group behind <code>auth::require</code> with <code>route_layer</code>, the rate limiter after it;
                handlers still take <code>Caller</code> to learn who calls.
              </>,
            ],
            [
              'One route in a public group needs a key',
              <>
                Take <code>Caller</code> as a handler argument; no middleware needed.
              </>,
            ],
            [
              'A client rotates its key',
              <>
                <code>keys/renew</code> with the old key: the new key now, the old one for{' '}
                <code>API_KEY_RENEW_OVERLAP</code>. Use <code>{'{"rotate": true}'}</code> on{' '}
                <code>POST …/keys</code> to wind down all other keys the same way.
              </>,
            ],
            [
              'A key leaked',
              <>
                <code>keys/revoke</code>: refused with 403 on every server at once. Do not wait for an expiry.
              </>,
            ],
            [
              'People signing in from a browser',
              <>
                Not API keys: a key is for programs, kept in a server's configuration. A browser login needs a session or
                an OAuth flow, which this chapter does not cover.
              </>,
            ],
          ]}
        />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 6: API-key auth',
  summary:
    'Keys stored as their HMAC, a Caller extractor and one middleware for a group of routes, a rate limit per client, renewal with an overlap and immediate revocation.',
  headings,
  component: Chapter06ApiKeys,
})
