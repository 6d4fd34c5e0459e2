#!/usr/bin/env bash
# Chapter 9: production hardening. Liveness and readiness answer JSON naming each backend and its
# driver; /metrics is Prometheus text with the job counters; an invalid setting stops the process
# with status 78 naming the variable; the production example file is read; a server stops cleanly
# on SIGTERM.
source "$(dirname "$0")/lib.sh"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${APP:-$REPO/target/debug/app}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# region: health
step "Liveness and readiness"
curl -fsS "$BASE/health" | jq -c .data
curl -fsS "$BASE/ready" | jq -r '.data[] | "\(.name)\t\(.driver)\tok=\(.ok)"'
# endregion: health
expect_eq "$(curl -fsS "$BASE/health" | jq -r '.data.status + " " + .data.app')" "ok $APP_NAME" "/health"
expect_eq "$(curl -fsS "$BASE/ready" | jq -r '[.data[] | "\(.name)=\(.driver):\(.ok)"] | join(" ")')" \
    "database=postgres:true cache=redis:true queue=redis:true" "/ready on the multi-process shape"

# region: metrics
step "Metrics: one submission moves the counter by one"
submitted() { # 0 until the first submission creates the series
    curl -fsS "$BASE/metrics" | awk '/^jobs_submitted_total\{work_kind="SUCCESS_FAST"\}/ {n = $2} END {print n + 0}'
}
before=$(submitted)
KEY=$(new_client metrics)
curl -fsS -X POST "$BASE/v1/jobs" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d '{"work_kind": "SUCCESS_FAST"}' >/dev/null
after=$(submitted)
curl -fsS "$BASE/metrics" | grep -E '^(jobs_submitted_total|job_queue_depth|job_queue_ready)'
# endregion: metrics
expect_eq "$((after - before))" 1 "jobs_submitted_total{work_kind=\"SUCCESS_FAST\"} after one submission"
type=$(curl -fsS -D - -o /dev/null "$BASE/metrics" | tr -d '\r' | grep -i '^content-type:' | cut -d' ' -f2-)
expect_eq "$type" "text/plain; version=0.0.4; charset=utf-8" "the exposition format"
expect_contains "$(curl -fsS "$BASE/metrics")" 'http_requests_total{method="POST",route="/v1/jobs",status="202"}' \
    "HTTP counters by route template"

# region: invalid
step "An invalid setting: exit 78, the variable named, nothing started"
set +e
PORT=notaport "$BIN" serve 2>"$work/err"
status=$?
set -e
cat "$work/err"
# endregion: invalid
expect_eq "$status" 78 "exit status (EX_CONFIG)"
expect_contains "$(cat "$work/err")" 'invalid setting PORT="notaport"' "the variable and its value"

# region: production-file
step "The production file: APP_ENV=production without API_KEY_SECRET refuses to start"
set +e
RUSTFORGE_CONFIG="$REPO/app/rustforge.example.toml" "$BIN" serve 2>"$work/err"
status=$?
set -e
cat "$work/err"
# endregion: production-file
expect_eq "$status" 78 "exit status"
expect_contains "$(cat "$work/err")" "API_KEY_SECRET" "the missing secret is named"

# region: sigterm
step "SIGTERM: the server stops taking requests, drains, and exits 0"
PORT=0 LOG_FORMAT=json SHUTDOWN_GRACE_SECS=5 "$BIN" serve >"$work/log" 2>&1 &
pid=$!
listening() { grep -qs '"listening"' "$work/log"; }
eventually listening
addr=$(grep '"listening"' "$work/log" | jq -r .address)
curl -fsS "$addr/health" >/dev/null
kill -TERM "$pid"
wait "$pid"
# endregion: sigterm
echo "ok: exited 0 on SIGTERM"
expect_contains "$(cat "$work/log")" '"message":"stopped"' "the server logged its stop"
