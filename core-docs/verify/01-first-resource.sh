#!/usr/bin/env bash
# Chapter 1: a first resource end to end. A client, a job submitted and read back through
# GET /v1/jobs/{id}, the row in PostgreSQL, and the 404 for an id that is not the caller's.
source "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

step "a client and its key"
# region: client
KEY=$(new_client chapter-1)
expect_contains "$KEY" "frk_" "the API key starts with frk_"
# endregion: client

step "submit a job, then read it back"
# region: submit-and-get
JOB=$(curl -fsS -X POST "$BASE/v1/jobs" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d '{"work_kind": "SUCCESS_FAST"}' | jq -r .data.job_id)

job_state() {
    curl -fsS "$BASE/v1/jobs/$JOB" -H "authorization: Bearer $KEY" | jq -r .data.state
}
succeeded() { [ "$(job_state)" = SUCCEEDED ]; }
eventually succeeded

BODY=$(curl -sS -w '\n%{http_code}' "$BASE/v1/jobs/$JOB" -H "authorization: Bearer $KEY")
expect_eq "$(tail -n1 <<<"$BODY")" 200 "GET /v1/jobs/{id} status"
expect_eq "$(head -n1 <<<"$BODY" | jq -r .data.job_id)" "$JOB" "data.job_id"
expect_eq "$(head -n1 <<<"$BODY" | jq -r .data.outcome)" SUCCEEDED "data.outcome"
expect_eq "$(head -n1 <<<"$BODY" | jq -r .data.attempt)" 1 "data.attempt"
# endregion: submit-and-get

step "the row in PostgreSQL"
# region: psql
ROW=$(psql "$DATABASE_URL" -At -F ' ' \
    -c "SELECT work_kind, state, attempt, outcome FROM jobs WHERE id = '$JOB'")
expect_eq "$ROW" "SUCCESS_FAST SUCCEEDED 1 SUCCEEDED" "the jobs row"
# endregion: psql

step "another client's job, or no job at all, is a 404"
# region: not-found
OTHER=$(new_client someone-else)
STATUS=$(curl -s -o "$TMP/other.json" -w '%{http_code}' "$BASE/v1/jobs/$JOB" \
    -H "authorization: Bearer $OTHER")
expect_eq "$STATUS" 404 "another client's job"
expect_eq "$(jq -r .error_code "$TMP/other.json")" RFA_JOB_NOT_FOUND "error_code"
STATUS=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/v1/jobs/not-a-uuid" \
    -H "authorization: Bearer $KEY")
expect_eq "$STATUS" 404 "an id that is not a UUID"
# endregion: not-found
