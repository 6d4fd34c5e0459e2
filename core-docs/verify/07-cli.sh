#!/usr/bin/env bash
# Chapter 7: the command line. A job that fails every attempt ends FAILED for the client and as
# a `failed_jobs` row for the operator; `app jobs failed list|show|retry|forget|prune` manage the
# rows on the same DATABASE_URL and REDIS_URL as the running processes; `app migrate` is
# idempotent; `app scheduler` stops cleanly on SIGTERM.
source "$(dirname "$0")/lib.sh"
export LOG_LEVEL=warn # the commands' own output only

KEY=$(new_client cli)
auth=(-H "authorization: Bearer $KEY")

# region: fail
step "A job that fails on its only attempt"
JOB=$(curl -fsS -X POST "$BASE/v1/jobs" "${auth[@]}" -H 'content-type: application/json' \
    -d '{"work_kind": "FAIL_IMMEDIATE", "max_attempts": 1}' | jq -r .data.job_id)
failed() { [ "$(curl -fsS "$BASE/v1/jobs/$JOB" "${auth[@]}" | jq -r .data.state)" = FAILED ]; }
eventually failed
# endregion: fail
echo "ok: job $JOB is FAILED"

# region: list
step "The operator's view: app jobs failed list"
# A failed_jobs row names the core-jobs dispatch (jobs.dispatch_id), not the ForgeRun job.
failure_of() {
    psql "$DATABASE_URL" -At -c "SELECT f.id FROM failed_jobs f
        JOIN jobs j ON j.dispatch_id = f.job_id WHERE j.id = '$1'"
}
has_row() { [ -n "$(failure_of "$JOB")" ]; }
eventually has_row # written right after failed() marked the job FAILED
app jobs failed list
ID=$(failure_of "$JOB")
# endregion: list
listed=$(app jobs failed list | grep "^$ID"$'\t')
expect_eq "$(cut -f3 <<<"$listed")" forgerun.run "the core-jobs job that ran it"
expect_eq "$(cut -f5 <<<"$listed")" 1 "attempts"
expect_eq "$(cut -f6 <<<"$listed")" "FAIL_IMMEDIATE failed on attempt 1" "the error"

# region: show
step "One failure in full: app jobs failed show ID"
app jobs failed show "$ID"
# endregion: show
shown=$(app jobs failed show "$ID")
expect_contains "$shown" "job:       forgerun.run" "the job's name"
expect_contains "$shown" "payload:   {\"job_id\":\"$JOB\",\"attempts\":1," "the payload names the ForgeRun job"
expect_eq "$(psql "$DATABASE_URL" -At -c "SELECT job_name FROM failed_jobs WHERE id = $ID")" \
    forgerun.run "the row in failed_jobs"

# region: retry
step "Re-dispatch it: the row goes, the run finds its job final and leaves it alone"
app jobs failed retry "$ID"
# endregion: retry
expect_eq "$(failure_of "$JOB")" "" "the failed_jobs row after the retry"
sleep 1 # the worker picks the dispatch up at once; give it time to (not) act
expect_eq "$(curl -fsS "$BASE/v1/jobs/$JOB" "${auth[@]}" | jq -r .data.state)" FAILED \
    "the ForgeRun job: a final job is never run again by a redelivered dispatch"

# region: client-retry
step "The client's retry is the one that runs the job again (one more attempt)"
curl -fsS -X POST "$BASE/v1/jobs/$JOB/retry" "${auth[@]}" | jq -c '.data | {state, attempt}'
eventually failed
eventually has_row
# endregion: client-retry
expect_eq "$(curl -fsS "$BASE/v1/jobs/$JOB" "${auth[@]}" | jq -r .data.attempt)" 2 "attempts after the client's retry"

# region: forget-prune
step "Forget one row; prune old ones"
app jobs failed forget "$(failure_of "$JOB")"
app jobs failed prune 7d
# endregion: forget-prune
expect_eq "$(failure_of "$JOB")" "" "the row after forget"
expect_eq "$(app jobs failed prune 7d)" "pruned 0 failed job(s) older than 7d" "prune of recent rows"

# region: usage
step "Bad usage exits 2 with the usage text"
set +e
app jobs failed show 2>/tmp/usage.$$
status=$?
set -e
# endregion: usage
expect_eq "$status" 2 "exit status of a missing ID"
expect_contains "$(cat /tmp/usage.$$)" "usage: app" "the usage text"
rm -f /tmp/usage.$$

# region: migrate
step "app migrate: applies what is pending (nothing here) and exits 0"
app migrate
# endregion: migrate
echo "ok: app migrate exited 0"

# region: scheduler
step "app scheduler: runs until SIGTERM, then exits 0"
BIN=${APP:-target/debug/app}
"$BIN" scheduler >/tmp/scheduler.$$ 2>&1 &
pid=$!
sleep 2
kill -TERM "$pid"
wait "$pid"
# endregion: scheduler
echo "ok: app scheduler exited 0 on SIGTERM"
rm -f /tmp/scheduler.$$
