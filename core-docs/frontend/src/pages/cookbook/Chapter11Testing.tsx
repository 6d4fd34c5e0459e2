import appLib from '../../../../../app/src/lib.rs?raw'
import apiTests from '../../../../../app/tests/api.rs?raw'
import binaryTests from '../../../../../app/tests/binary.rs?raw'
import common from '../../../../../app/tests/common/mod.rs?raw'
import process from '../../../../../app/tests/common/process.rs?raw'
import jobsApiTests from '../../../../../app/tests/jobs_api.rs?raw'
import jobsEngineTests from '../../../../../app/tests/jobs_engine.rs?raw'
import multiprocessTests from '../../../../../app/tests/multiprocess.rs?raw'
import recipes from '../../../../../app/tests/recipes.rs?raw'
import testScript from '../../../../../scripts/test?raw'
import supportHttp from '../../../../../test-support/src/http.rs?raw'
import { Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: The helper module',
  'step-2': 'Step 2: Contracts',
  'step-3': 'Step 3: Handlers through oneshot',
  'step-4': 'Step 4: Jobs',
  'step-5': 'Step 5: An integration test over a real database',
  'step-6': 'Step 6: Running them',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)

function Chapter11Testing() {
  return (
    <>
      <Section id="step-0">
        <p>
          This recipe is how ForgeRun is tested, and how a new piece of it gets its tests. Every block on this page is a
          region of a file under <code>app/tests/</code> (or of the code those tests call), so what you read is what{' '}
          <code>cargo test -p app</code> runs. The tests are integration tests in the Cargo sense: each file of{' '}
          <code>app/tests/</code> is its own test binary, one per area (<code>jobs_api.rs</code> for{' '}
          <code>/v1/jobs</code>, <code>jobs_engine.rs</code> for the engine without HTTP, <code>webhooks.rs</code>,{' '}
          <code>auth.rs</code>, <code>streams.rs</code>, <code>files.rs</code>, <code>openapi.rs</code>,{' '}
          <code>settings.rs</code>, <code>binary.rs</code>, <code>multiprocess.rs</code>), and they share one helper
          module, <code>app/tests/common/</code>.
        </p>
        <p>
          Every test gets backends of its own, so tests run in parallel and never see each other's rows or keys.{' '}
          <code>test-support</code>, the workspace's harness, hands them out and removes them when its guard is dropped:
        </p>
        <ul>
          <li>
            <strong>PostgreSQL</strong>: <code>test_support::postgres(name)</code> creates a database{' '}
            <code>rf_test_&lt;random&gt;</code> on the server at <code>DATABASE_URL</code>, applies{' '}
            <code>migrations/postgres</code>, and drops it (<code>WITH (FORCE)</code>) when the{' '}
            <code>TestPostgres</code> is dropped.
          </li>
          <li>
            <strong>Redis</strong>: <code>test_support::redis(name)</code> gives a fresh key prefix{' '}
            <code>rf-test-&lt;random&gt;</code> on the Redis at <code>REDIS_URL</code>; every key under it is deleted
            on drop. The app takes the prefix as its <code>APP_NAME</code>, which prefixes its cache and queue keys.
          </li>
          <li>
            <strong>SQLite</strong>: a file in a temporary directory, which the app's helpers create and the app
            migrates when it connects (<code>MIGRATE_ON_START</code> is on by default);{' '}
            <code>test_support::sqlite()</code> gives the same to code below the app. SQLite is embedded, so it never
            skips.
          </li>
          <li>
            <strong>S3</strong>: <code>test_support::s3(name)</code> makes a fresh bucket on the server at{' '}
            <code>S3_ENDPOINT</code> (<code>scripts/s3-server</code> starts one) and empties and removes it on drop.
          </li>
        </ul>
        <p>
          When Redis, PostgreSQL or the S3 server is unreachable, the helper prints one <code>SKIPPED</code> line and
          returns <code>None</code>, and the test returns early: a contributor without the services can still run{' '}
          <code>cargo test</code>. With <code>RUSTFORGE_REQUIRE_SERVICES=1</code> (which <code>scripts/test</code> and CI
          set) the same helper panics, naming the service and how to start it, so a missing service fails the run
          instead of passing it silently.
        </p>
        <p>
          Fixtures are made through the app wherever the test is about what a client sees: a client comes from{' '}
          <code>POST /v1/clients</code>, a job from <code>POST /v1/jobs</code>, so the fixture is a row the app really
          writes. Tests of the engine below HTTP (<code>jobs_engine.rs</code>) submit through the app's own{' '}
          <code>jobs::submit</code> and insert by hand only the client row they need. The whole <code>test-support</code> API (the guards, the fault proxy, the webhook
          receiver) is on the framework's <a href={hrefFor('testing')}>Testing</a> page; this chapter only uses it.
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/tests/common/mod.rs" />
        <p>
          Each test binary says <code>mod common;</code> (with <code>#[macro_use]</code> when it uses{' '}
          <code>on_both!</code>) and gets the same helpers. The simplest builds the whole app on a fresh SQLite file and
          the memory cache, through the same <code>Settings</code> and <code>AppContext::connect</code> as{' '}
          <code>app serve</code>; only the settings come from a map instead of the environment:
        </p>
        <Snippet source={common} region="sqlite-app" title="app/tests/common/mod.rs" />
        <p>
          A client and a call as that client, through the router. <code>register</code> asserts the 201 itself, so a
          test that needs a client never has to think about it:
        </p>
        <Snippet source={common} region="client" title="app/tests/common/mod.rs" />
        <p>
          Tests that must hold on PostgreSQL and Redis as well as on SQLite use a <code>TestApp</code>, which owns what
          keeps its backends alive: the temporary directory, the <code>TestPostgres</code>, the <code>TestRedis</code>.
          Dropping it at the end of the test removes the database and the keys.
        </p>
        <Snippet source={common} region="test-app-type" title="app/tests/common/mod.rs" />
        <Snippet source={common} region="test-app" title="app/tests/common/mod.rs" />
        <p>
          <code>on_both!</code> writes the behaviour once and runs it twice: every listed{' '}
          <code>async fn NAME(drivers, test)</code> becomes <code>embedded::NAME</code> and{' '}
          <code>services::NAME</code>, two <code>#[tokio::test]</code>s on a multi-threaded runtime.
        </p>
        <Snippet source={common} region="on-both" title="app/tests/common/mod.rs" />
        <p>
          The app's background work (the relay that pushes dispatched jobs to the queue, and the workers) is not
          running in a <code>TestApp</code> until a test starts it, exactly as a worker process would:
        </p>
        <Snippet source={common} region="start-stop" title="app/tests/common/mod.rs" />
        <p>
          For tests of the binary itself, <code>common/process.rs</code> starts <code>app serve</code> and{' '}
          <code>app worker</code> with a clean environment and JSON logs, and gives processes of one test a shared
          database and prefix:
        </p>
        <Snippet source={process} region="serve-worker" title="app/tests/common/process.rs" />
        <Snippet source={process} region="services" title="app/tests/common/process.rs" />
      </Section>

      <Section id="step-2">
        <FileRef path="app/tests/recipes.rs" />
        <p>
          A request's contract is its DTO's rules plus whatever the handler checks on top. The rules declared with{' '}
          <code>#[validate(...)]</code> on <code>SubmitJob</code> are plain Rust: test them on the struct, with no
          router, no database and no runtime. Assert the rule that failed (its <code>code</code>), not only that
          something did:
        </p>
        <Snippet source={recipes} region="contract-direct" title="app/tests/recipes.rs" />
        <p>
          Then the same contract through HTTP, where a client meets it: a 422 <code>VALIDATION_ERROR</code> with the
          messages under <code>errors</code>, per field. This is also where the handler's own rules are tested (a work
          kind that exists and may be submitted, <code>execution_at</code> not in the past), since they are not on the
          struct. The last assertion is the one that is easy to forget: a refused request writes nothing.
        </p>
        <Snippet source={recipes} region="contract-http" title="app/tests/recipes.rs" />
        <p>
          <code>jobs_api.rs</code>'s <code>bad_submissions_are_refused_with_field_errors</code> runs the full table of
          refused bodies (every field, the callback addresses that would reach the server's own network, unknown fields
          as 400) on both driver sets. How the validated extractor answers is on the framework's{' '}
          <a href={hrefFor('validation')}>Validation</a> page.
        </p>
      </Section>

      <Section id="step-3">
        <FileRef path="app/src/lib.rs" />
        <p>
          The app exposes its whole HTTP surface as one function, so a test gets exactly the router{' '}
          <code>app serve</code> runs, middleware stack included:
        </p>
        <Snippet source={appLib} region="router" title="app/src/lib.rs" />
        <p>
          A <code>Router</code> is a tower <code>Service</code>: <code>tower::ServiceExt::oneshot</code> sends it one
          request and returns the response, in process, without opening a port. <code>test-support</code>'s{' '}
          <code>send_json</code> does that and reads the JSON body, failing loudly if an answer is not JSON; the app's{' '}
          helpers re-export it as <code>common::send</code>:
        </p>
        <Snippet source={supportHttp} region="send-json" title="test-support/src/http.rs" />
        <p>
          A handler test is then a request and assertions on the status, the headers and the body. This one runs{' '}
          <code>/health</code> and <code>/ready</code> through the real stack (the request id header comes from the
          middleware):
        </p>
        <Snippet source={apiTests} region="health" title="app/tests/api.rs" />
        <Callout kind="tip">
          Use <code>oneshot</code> for everything that is request → response. Open a real socket only when the
          connection itself is the subject: streaming (<code>streams.rs</code>), random bytes on the wire
          (<code>fuzz.rs</code>), or the binary (Step 5's last part).
        </Callout>
      </Section>

      <Section id="step-4">
        <FileRef path="app/tests/recipes.rs" />
        <p>
          A job is a value and two methods. <code>handle</code> and <code>failed</code> take a <code>JobContext</code>;{' '}
          <code>AppContext::job_context()</code> builds the one the worker hands every job, so a direct call runs the
          job's code on the same database, cache and storage. Only the run's own facts are missing outside a worker
          (<code>job_id()</code> is <code>None</code>, <code>attempt()</code> is 0), and <code>RunJob</code> then
          starts the job from its row. With no worker started, the direct call is the only run: nothing races it.
        </p>
        <Snippet source={recipes} region="job-handle" title="app/tests/recipes.rs" />
        <p>
          The failure path is where direct calls pay off: the test decides which attempt is the last and calls{' '}
          <code>failed</code> itself, instead of waiting for a worker's retries and backoff. It checks the contract
          between the two methods (the last <code>handle</code> leaves the job RUNNING with its error,{' '}
          <code>failed</code> marks it FAILED) and that <code>failed</code> may run twice, since every job may:
        </p>
        <Snippet source={recipes} region="job-failed" title="app/tests/recipes.rs" />
        <p>
          Then the same jobs through a real worker, which adds what a direct call cannot test: dispatch, retries with
          backoff, the attempt count, the events of every transition. <code>jobs_engine.rs</code> submits every work
          kind, starts the worker, and waits for each outcome:
        </p>
        <Snippet source={jobsEngineTests} region="through-worker" title="app/tests/jobs_engine.rs" />
        <p>
          (The test goes on to check each kind's attempts, errors and artifacts.) Retries, <code>failed()</code> and{' '}
          <code>failed_jobs</code> are described on the framework's <a href={hrefFor('jobs')}>Jobs</a> page.
        </p>
      </Section>

      <Section id="step-5">
        <FileRef path="app/tests/jobs_api.rs" />
        <p>
          An integration test follows one request to the database and back, with the worker in between. Written as{' '}
          <code>async fn NAME(drivers: Drivers, test: &str)</code> and listed in the file's <code>on_both!</code>, it
          runs on SQLite and, as <code>services::NAME</code>, on a fresh PostgreSQL database with Redis as cache and
          queue:
        </p>
        <Snippet source={jobsApiTests} region="on-both-list" title="app/tests/jobs_api.rs" />
        <p>
          Submit, let the worker run it, read it, read its report, all through HTTP as a client would. The test asserts
          the shape of what the client gets (every field present), the final state, and the report's history of
          transitions in order:
        </p>
        <Snippet source={jobsApiTests} region="integration" title="app/tests/jobs_api.rs" />
        <p>
          (It goes on to check the list's order, filters and pagination.) One level further out, tests run the compiled
          binary: <code>binary.rs</code> starts <code>app serve</code> on a free port and drives it over TCP,
        </p>
        <Snippet source={binaryTests} region="binary-serve" title="app/tests/binary.rs" />
        <p>and ends by checking that SIGTERM stops it cleanly:</p>
        <Snippet source={binaryTests} region="binary-sigterm" title="app/tests/binary.rs" />
        <p>
          <code>multiprocess.rs</code> puts two servers and two workers on one PostgreSQL database and Redis prefix,
          submits 2,000 jobs and SIGKILLs a worker mid-run, then checks that every job still reaches a final state.
          Its processes, all started from one <code>Services</code> environment:
        </p>
        <Snippet source={multiprocessTests} region="ch9-shape" title="app/tests/multiprocess.rs" />
      </Section>

      <Section id="step-6">
        <FileRef path="scripts/test" />
        <p>
          <code>cargo test -p app</code> runs every test binary of the app. Most need only SQLite; the{' '}
          <code>services::</code> variants, <code>multiprocess.rs</code>, <code>streams.rs</code>' cross-process test,{' '}
          <code>cookbook.rs</code> and parts of <code>auth.rs</code> need PostgreSQL and Redis, and one test of{' '}
          <code>files.rs</code> needs the S3 server. Point the helpers at your servers with <code>REDIS_URL</code> and{' '}
          <code>DATABASE_URL</code> (the defaults are below), and set <code>RUSTFORGE_REQUIRE_SERVICES=1</code> so that
          nothing is skipped without failing. <code>scripts/test</code> sets them the same way:
        </p>
        <Snippet source={testScript} region="services-env" language="bash" title="scripts/test" />
        <p>
          While working on one area, run one binary with <code>--test NAME</code> (its file name without{' '}
          <code>.rs</code>), and narrow it further by name: <code>cargo test -p app --test recipes services::</code>{' '}
          runs only the PostgreSQL and Redis variants of that file. Before pushing, run the whole suite the way CI does:
        </p>
        <Snippet source={testScript} region="usage" language="bash" title="scripts/test" />
        <p>
          It starts Redis, PostgreSQL and the S3 server when they are not running, checks formatting and lints, then
          runs every crate's tests at once:
        </p>
        <Snippet source={testScript} region="cargo-test" language="bash" title="scripts/test" />
        <p>
          It ends with one summary line that counts skipped tests as not passed, so a run that skipped anything is not
          reported as green.
        </p>
      </Section>

      <Section id="decision-rule">
        <DecisionRule
          rules={[
            [
              'A DTO\'s rules, pure logic, a job\'s handle or failed',
              <>
                A unit-level test: call it directly (<code>validate()</code> on the struct, the function, the job with{' '}
                <code>job_context()</code>). No router, and no worker: the test picks the attempt.
              </>,
            ],
            [
              'Request → database → response, or anything a worker does',
              <>
                An integration test on a <code>TestApp</code> through <code>oneshot</code>, listed in{' '}
                <code>on_both!</code> so it also runs on PostgreSQL and Redis; start the worker with{' '}
                <code>common::start</code> when the request dispatches work.
              </>,
            ],
            [
              'Start-up, settings, signals, several processes',
              <>
                End to end against the binary (<code>binary.rs</code>, <code>multiprocess.rs</code>), through{' '}
                <code>common::process</code>. These are the slowest tests: keep them to what only a process shows.
              </>,
            ],
            [
              'A framework behaviour (the cache driver, the queue, the extractor)',
              <>
                Not from the app. The framework crates test it in their own suites; the app tests what it builds on top.
              </>,
            ],
            [
              'A custom validation rule or a business rule',
              <>Always: the passing case, each failing case with its field, and that a refusal writes nothing.</>,
            ],
            [
              'Code that talks to Redis, PostgreSQL or a receiver',
              <>
                Also test it under faults: put <code>test-support</code>'s{' '}
                <a
                  href={hrefFor('testing', 'proxy')}
                  className="text-orange-700 underline decoration-orange-300 underline-offset-2 dark:text-orange-400"
                >
                  fault proxy
                </a> between it and the service and check that it
                times out, retries or fails cleanly instead of hanging.
              </>,
            ],
          ]}
        />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 11: Testing recipe',
  summary:
    'How ForgeRun is tested: a fresh database per test, one helper module, contracts, handlers through oneshot, jobs called directly and through a worker, integration on PostgreSQL, and how to run them.',
  headings,
  component: Chapter11Testing,
})
