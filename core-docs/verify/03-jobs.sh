#!/usr/bin/env bash
# Chapter 3: jobs. A kind whose first attempt fails is retried after the backoff and succeeds;
# a kind that always fails runs out of attempts, `failed()` marks it FAILED, and the worker
# keeps the dispatch in failed_jobs.
source "$(dirname "$0")/lib.sh"
KEY=$(new_client chapter-3)

# Submits a job of kind $1 with max_attempts $2; prints its id.
submit() {
    curl -fsS -X POST "$BASE/v1/jobs" -H "authorization: Bearer $KEY" \
        -H 'content-type: application/json' \
        -d "{\"work_kind\": \"$1\", \"max_attempts\": $2}" | jq -r .data.job_id
}
state_is() {
    [ "$(curl -fsS "$BASE/v1/jobs/$1" -H "authorization: Bearer $KEY" | jq -r .data.state)" = "$2" ]
}

step "RETRY_ON_FAIL: the first attempt fails, the retry succeeds"
# region: retry
JOB=$(submit RETRY_ON_FAIL 3)
eventually state_is "$JOB" SUCCEEDED
REPORT=$(curl -fsS "$BASE/v1/jobs/$JOB/report" -H "authorization: Bearer $KEY")
expect_eq "$(jq -r .data.outcome <<<"$REPORT")" SUCCEEDED "outcome"
expect_eq "$(curl -fsS "$BASE/v1/jobs/$JOB" -H "authorization: Bearer $KEY" | jq -r .data.attempt)" 2 "attempts used"
expect_eq "$(jq -r '[.data.events[].event_name] | join(" ")' <<<"$REPORT")" \
    "job.created job.queued job.assigned job.running job.queued job.assigned job.running job.succeeded" \
    "the events: one failed attempt, back to QUEUED, then success"
expect_contains "$(jq -r '.data.events[4].detail' <<<"$REPORT")" "attempt 1 failed" "why it was queued again"
# endregion: retry

step "RETRY_LIMIT_REACHED: every attempt fails, failed() marks the job FAILED"
# region: exhausted
JOB=$(submit RETRY_LIMIT_REACHED 2)
eventually state_is "$JOB" FAILED
VIEW=$(curl -fsS "$BASE/v1/jobs/$JOB" -H "authorization: Bearer $KEY")
expect_eq "$(jq -r .data.outcome <<<"$VIEW")" FAILED "outcome"
expect_eq "$(jq -r .data.attempt <<<"$VIEW")" 2 "attempts used"
expect_contains "$(jq -r .data.error <<<"$VIEW")" "fail" "the last error"
# endregion: exhausted

step "the dispatch lands in failed_jobs"
# region: failed-jobs
in_failed_jobs() {
    [ "$(psql "$DATABASE_URL" -At -c \
        "SELECT count(*) FROM failed_jobs WHERE payload::jsonb ->> 'job_id' = '$JOB'")" = 1 ]
}
eventually in_failed_jobs
ROW=$(psql "$DATABASE_URL" -At -F ' ' -c \
    "SELECT job_name, attempts FROM failed_jobs WHERE payload::jsonb ->> 'job_id' = '$JOB'")
expect_eq "$ROW" "forgerun.run 2" "job_name and attempts"
expect_contains "$(app jobs failed list)" "forgerun.run" "app jobs failed list"
# endregion: failed-jobs
