import jobsMod from '../../../../../app/src/jobs/mod.rs?raw'
import run from '../../../../../app/src/jobs/run.rs?raw'
import verify from '../../../../verify/03-jobs.sh?raw'
import { Snippet } from '../../components/Code'
import { DecisionRule, FileRef } from '../../components/Recipe'
import { Callout, sectionsOf } from '../../components/Section'
import { hrefFor } from '../../lib/router'
import { definePage } from '../define'

const headings = {
  'step-0': 'Step 0: Scope',
  'step-1': 'Step 1: The job type',
  'step-2': 'Step 2: Dispatch in the transaction',
  'step-3': 'Step 3: A failed attempt',
  'step-4': 'Step 4: failed(), when the attempts run out',
  'step-5': 'Step 5: Register it with the worker',
  'step-6': 'Step 6: Verify',
  'decision-rule': 'Decision rule',
}
const Section = sectionsOf(headings)

function Chapter03Jobs() {
  return (
    <>
      <Section id="step-0">
        <p>
          A submitted ForgeRun job is run by one core-jobs job, <code>RunJob</code>. It is written in the same
          transaction as the job's row, retried with backoff while attempts remain, and handed to{' '}
          <code>failed()</code> after the last one, which marks the job FAILED; the worker keeps the dispatch in{' '}
          <code>failed_jobs</code> for operators.
        </p>
        <p>
          The code is in <code>app/src/jobs/</code>: <code>run.rs</code> (the job), <code>mod.rs</code> (submit and
          the worker). It depends on the queue (<code>QUEUE_URL</code>: Redis, or the in-process queue), the{' '}
          <code>JobBuffer</code> in the context, and the store's transitions (Chapter 1's table). The framework's side
          is on <a href={hrefFor('jobs')}>Jobs</a>.
        </p>
      </Section>

      <Section id="step-1">
        <FileRef path="app/src/jobs/run.rs" />
        <Snippet source={run} region="run-job" title="app/src/jobs/run.rs" />
        <ul>
          <li>
            The payload is the struct, serialised: the job's id and what this dispatch allows, never the row. The
            handler reads the row when it runs, so it always sees the current state.
          </li>
          <li>
            <code>max_retries</code> comes from the payload: a job submitted with <code>max_attempts: 2</code> runs at
            most twice.
          </li>
          <li>
            <code>backoff</code> doubles from a unit (1 s times <code>WORK_TIME_SCALE</code>), capped at ten
            minutes, with ±20 % jitter so jobs that failed together do not retry together.
          </li>
          <li>
            <code>NAME</code> is what the queue stores and the worker looks up: rename it and the jobs already
            queued under the old name go to <code>failed_jobs</code> as unknown.
          </li>
        </ul>
      </Section>

      <Section id="step-2">
        <FileRef path="app/src/jobs/mod.rs" />
        <p>
          The job is dispatched inside the transaction that writes the row, through the <code>JobBuffer</code>:
        </p>
        <Snippet source={jobsMod} region="submit-transaction" title="app/src/jobs/mod.rs" />
        <Snippet source={jobsMod} region="dispatch" title="app/src/jobs/mod.rs" />
        <p>
          <code>push</code> writes the dispatch into <code>job_outbox</code> with the transaction; the caller commits
          with <code>ctx.buffer.commit(tx)</code>, and a relay moves the committed row to the queue. A rollback leaves
          nothing to run; a commit is never followed by a lost dispatch, even when the process dies right after it.{' '}
          <code>push_in</code> delays the dispatch to <code>execution_at</code>. The returned <code>JobId</code> is
          stored on the row as <code>dispatch_id</code>, so a run of a replaced dispatch recognises it is not its
          turn.
        </p>
        <Callout kind="warning">
          Never <code>queue.dispatch</code> next to a transaction: before the commit, the worker can run the job before
          its row is visible; after it, a crash in between loses the job.
        </Callout>
      </Section>

      <Section id="step-3">
        <FileRef path="app/src/jobs/run.rs" />
        <p>When an attempt fails, the handler records it and returns the error:</p>
        <Snippet source={run} region="attempt-failed" title="app/src/jobs/run.rs" />
        <p>
          While attempts remain, the job goes back to QUEUED with an event whose <code>detail</code> says why (
          <code>attempt 1 failed: …</code>), and the returned <code>Err</code> tells core-jobs to run it again after{' '}
          <code>backoff</code>. On the last attempt only the error is stored: the move to FAILED is{' '}
          <code>failed()</code>'s. The next run may be on another worker, and a queue delivers at least once, so{' '}
          <code>run</code> starts by checking the row's state and <code>dispatch_id</code>: a duplicate does nothing.
        </p>
      </Section>

      <Section id="step-4">
        <FileRef path="app/src/jobs/run.rs" />
        <p>
          core-jobs calls <code>failed(ctx, error)</code> once, after the last attempt's error. ForgeRun's moves the
          job to FAILED (CANCELED when a cancel was pending) through allowed transitions only, so the events stay a
          valid path through the state machine:
        </p>
        <Snippet source={run} region="fail" title="app/src/jobs/run.rs" />
        <p>
          Then the worker writes a <code>failed_jobs</code> row: the name, the payload byte for byte, the last error
          and the number of runs. <code>app jobs failed list</code>, <code>show ID</code> and <code>retry ID</code>{' '}
          read and replay it (Chapter 7).
        </p>
      </Section>

      <Section id="step-5">
        <FileRef path="app/src/jobs/mod.rs" />
        <Snippet source={jobsMod} region="worker" title="app/src/jobs/mod.rs" />
        <p>
          A worker runs only the names registered with it; a dispatch with an unknown name goes straight to{' '}
          <code>failed_jobs</code>. <code>job_context()</code> carries the <code>AppContext</code>, which{' '}
          <code>AppContext::of(ctx)</code> gets back inside <code>handle</code> and <code>failed</code>. The{' '}
          <code>WORKER_CONCURRENCY</code> and <code>WORKER_LEASE_SECS</code> settings come in through{' '}
          <code>config</code>; <code>grace</code> is how long a SIGTERM waits for running jobs before leaving them to
          lease recovery.
        </p>
      </Section>

      <Section id="step-6">
        <p>
          <code>core-docs/verify/03-jobs.sh</code> uses two kinds of the catalog (<code>app/src/jobs/kinds.rs</code>):{' '}
          <code>RETRY_ON_FAIL</code> fails its first attempt only, <code>RETRY_LIMIT_REACHED</code> fails every one.
        </p>
        <Snippet source={verify} region="retry" language="bash" title="core-docs/verify/03-jobs.sh" />
        <Snippet source={verify} region="exhausted" language="bash" title="core-docs/verify/03-jobs.sh" />
        <p>
          The <code>failed_jobs</code> row, found by the ForgeRun job id inside its payload, and the operator's
          command:
        </p>
        <Snippet source={verify} region="failed-jobs" language="bash" title="core-docs/verify/03-jobs.sh" />
      </Section>

      <Section id="decision-rule">
        <DecisionRule
          rules={[
            [
              'Work that is slow, can fail, or talks to anything outside the database',
              'A job. The request answers at once (202) with what the client needs to follow it.',
            ],
            [
              'The job follows a database change',
              <>
                <code>ctx.buffer.push(&mut tx, …)</code> in that change's transaction, then{' '}
                <code>ctx.buffer.commit(tx)</code>. Never a direct dispatch beside the transaction.
              </>,
            ],
            [
              'A failure that may pass (a timeout, a busy service)',
              <>
                Return the error and let the retries and <code>backoff</code> handle it; make the handler safe to run
                twice.
              </>,
            ],
            [
              'A failure retrying cannot fix (bad input, a row that is gone)',
              'Record it and return Ok: a retry would only fail again.',
            ],
            [
              'Something must happen when the attempts run out',
              <>
                <code>failed()</code>: mark the record failed, tell someone. Keep it small and idempotent; the payload
                stays in <code>failed_jobs</code> for a later retry.
              </>,
            ],
          ]}
        />
      </Section>
    </>
  )
}

export default definePage({
  title: 'Chapter 3: Jobs',
  summary:
    'RunJob, the job behind every ForgeRun job: dispatched in the submitting transaction with JobBuffer, retried with backoff, failed() after the last attempt, kept in failed_jobs.',
  headings,
  component: Chapter03Jobs,
})
