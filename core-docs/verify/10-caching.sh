#!/usr/bin/env bash
# Chapter 10 (Caching recipe): the cached job read, its invalidation on write, the rate limit's
# counter and the report views counted in the cache and flushed to the database.
# Needs the app on Redis (REDIS_URL, so the cache and the queue are there), a worker, psql for
# DATABASE_URL; starts an `app scheduler` of its own for the flush (stopped on exit).
source "$(dirname "$0")/lib.sh"

# region: finished-job
step "A client and a finished job"
CLIENT=$(curl -fsS --max-time 10 -X POST "$BASE/v1/clients" \
    -H 'content-type: application/json' -d '{"name": "caching"}')
KEY=$(jq -r .data.api_key <<<"$CLIENT")
CLIENT_ID=$(jq -r .data.client_id <<<"$CLIENT")
JOB=$(curl -fsS --max-time 10 -X POST "$BASE/v1/jobs" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d '{"work_kind": "SUCCESS_FAST"}' | jq -r .data.job_id)
state_of() {
    curl -fsS --max-time 10 "$BASE/v1/jobs/$1" -H "authorization: Bearer $KEY" | jq -r .data.state
}
succeeded() { [ "$(state_of "$JOB")" = SUCCEEDED ]; }
eventually succeeded
# endregion: finished-job
echo "job $JOB"

# region: read-twice
step "Two reads, one answer: the second comes from the cache"
FIRST=$(curl -fsS --max-time 10 "$BASE/v1/jobs/$JOB" -H "authorization: Bearer $KEY")
SECOND=$(curl -fsS --max-time 10 "$BASE/v1/jobs/$JOB" -H "authorization: Bearer $KEY")
expect_eq "$SECOND" "$FIRST" "the second read"
# endregion: read-twice

# region: job-keys
step "The job's keys in Redis: the value, its tags, the generations that fence remember()"
redis-cli -u "$REDIS_URL" --scan --pattern "$APP_NAME:cache*:*job:$JOB" | sort
CACHED=$(redis-cli -u "$REDIS_URL" GET "$APP_NAME:cache:job:$JOB")
TTL=$(redis-cli -u "$REDIS_URL" TTL "$APP_NAME:cache:job:$JOB")
echo "TTL $TTL s"
# endregion: job-keys
expect_eq "$(jq -r .state <<<"$CACHED")" "$(jq -r .data.state <<<"$FIRST")" "the cached row's state"
expect_eq "$(jq -r .client_id <<<"$CACHED")" "$CLIENT_ID" "the cached row's client"
TAGS=$(redis-cli -u "$REDIS_URL" --scan --pattern "$APP_NAME:cache-tag:t:*" | sort)
expect_contains "$TAGS" "$APP_NAME:cache-tag:t:job:$JOB" "the job's tag"
expect_contains "$TAGS" "$APP_NAME:cache-tag:t:client:$CLIENT_ID:jobs" "the client's tag"
if [ "$TTL" -le 0 ] || [ "$TTL" -gt 300 ]; then
    echo "FAILED: the cached job's TTL is $TTL s, not within (0, 300]" >&2
    exit 1
fi
echo "ok: 0 < TTL $TTL <= 300 (CACHE_TTL in app/src/jobs/store.rs)"

# region: invalidate
step "A write invalidates: cancel a job scheduled an hour ahead"
LATER=$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)
QUEUED=$(curl -fsS --max-time 10 -X POST "$BASE/v1/jobs" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' \
    -d "{\"work_kind\": \"SUCCESS_FAST\", \"execution_at\": \"$LATER\"}" | jq -r .data.job_id)
expect_eq "$(state_of "$QUEUED")" QUEUED "the read before the write"
expect_eq "$(redis-cli -u "$REDIS_URL" EXISTS "$APP_NAME:cache:job:$QUEUED")" 1 "the cached key"
CANCEL=$(curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -X POST \
    "$BASE/v1/jobs/$QUEUED/cancel" -H "authorization: Bearer $KEY")
expect_eq "$CANCEL" 200 "the cancel's status"
expect_eq "$(redis-cli -u "$REDIS_URL" EXISTS "$APP_NAME:cache:job:$QUEUED")" 0 "the key after the cancel"
expect_eq "$(state_of "$QUEUED")" CANCELED "the read after the write"
expect_eq "$(redis-cli -u "$REDIS_URL" GET "$APP_NAME:cache:job:$QUEUED" | jq -r .state)" CANCELED \
    "the key the next read cached"
# endregion: invalidate

# region: rate-limit
step "The rate limit: headers, and the counter they come from"
HEADERS=$(curl -fsS --max-time 10 -D - -o /dev/null "$BASE/v1/jobs/$JOB" \
    -H "authorization: Bearer $KEY" | tr -d '\r')
POLICY=$(sed -n 's/^ratelimit-policy: //Ip' <<<"$HEADERS")
LIMIT=$(sed -n 's/^ratelimit: //Ip' <<<"$HEADERS")
echo "RateLimit-Policy: $POLICY"
echo "RateLimit: $LIMIT"
QUOTA=$(sed -n 's/.*;q=\([0-9]*\).*/\1/p' <<<"$POLICY")
REMAINING=$(sed -n 's/.*;r=\([0-9]*\).*/\1/p' <<<"$LIMIT")
# The counter's key holds the client id's SHA-256 (first 16 bytes, hex), never the id itself.
HASH=$(printf %s "$CLIENT_ID" | sha256sum | cut -c1-32)
COUNTER=$(redis-cli -u "$REDIS_URL" --scan --pattern "$APP_NAME:cache:rl:default:*:$HASH" | sort | tail -1)
echo "$COUNTER = $(redis-cli -u "$REDIS_URL" GET "$COUNTER"), TTL $(redis-cli -u "$REDIS_URL" TTL "$COUNTER") s"
# endregion: rate-limit
expect_contains "$POLICY" '"default";q=' "RateLimit-Policy names the policy and its quota"
expect_contains "$POLICY" ';w=60' "a one-minute window"
expect_contains "$LIMIT" '"default";r=' "RateLimit gives what is left"
COUNT=$(redis-cli -u "$REDIS_URL" GET "$COUNTER")
if [ -z "$COUNTER" ] || [ "$COUNT" -lt $((QUOTA - REMAINING)) ]; then
    echo "FAILED: counter ${COUNTER:-missing} = ${COUNT:-none}, below the ticket $((QUOTA - REMAINING))" >&2
    exit 1
fi
echo "ok: the counter ($COUNT) covers this request's ticket ($((QUOTA - REMAINING)) of $QUOTA)"
RL_TTL=$(redis-cli -u "$REDIS_URL" TTL "$COUNTER")
if [ "$RL_TTL" -le 0 ] || [ "$RL_TTL" -gt 61 ]; then
    echo "FAILED: the counter's TTL is $RL_TTL s, not within the window (0, 61]" >&2
    exit 1
fi
echo "ok: the counter expires with its window (TTL $RL_TTL s)"

# region: report-views
step "Report views: one cache increment per read"
for n in 1 2 3; do
    VIEWS=$(curl -fsS --max-time 10 "$BASE/v1/jobs/$JOB/report" \
        -H "authorization: Bearer $KEY" | jq -r .data.report_views)
    expect_eq "$VIEWS" "$n" "report_views of read $n"
done
redis-cli -u "$REDIS_URL" GET "$APP_NAME:cache:report-views:$JOB"
# endregion: report-views
expect_eq "$(redis-cli -u "$REDIS_URL" GET "$APP_NAME:cache:report-views:$JOB")" 3 "the pending counter"
expect_eq "$(redis-cli -u "$REDIS_URL" EXISTS "$APP_NAME:cache:report-views-pending:$JOB")" 1 \
    "the marker the flush looks for"

# region: flush
step "The scheduled flush moves the counts to the database (every 15 s)"
${APP:-cargo run -q -p app --} scheduler >scheduler.log 2>&1 &
SCHEDULER=$!
trap 'kill "$SCHEDULER" 2>/dev/null || true' EXIT
flushed() {
    [ "$(redis-cli -u "$REDIS_URL" EXISTS "$APP_NAME:cache:report-views:$JOB")" = 0 ]
}
DEADLINE=$((SECONDS + 45))
until flushed; do
    [ "$SECONDS" -lt "$DEADLINE" ] || { echo "FAILED: not flushed within 45 s" >&2; exit 1; }
    sleep 0.5
done
psql "$DATABASE_URL" -tAc "SELECT views FROM job_report_views WHERE job_id = '$JOB'"
# endregion: flush
expect_eq "$(psql "$DATABASE_URL" -tAc "SELECT views FROM job_report_views WHERE job_id = '$JOB'")" 3 \
    "the stored views"
expect_eq "$(redis-cli -u "$REDIS_URL" EXISTS "$APP_NAME:cache:report-views-pending:$JOB")" 0 \
    "the marker after the flush"
VIEWS=$(curl -fsS --max-time 10 "$BASE/v1/jobs/$JOB/report" -H "authorization: Bearer $KEY" |
    jq -r .data.report_views)
expect_eq "$VIEWS" 4 "report_views after the flush (3 stored + 1 pending)"
