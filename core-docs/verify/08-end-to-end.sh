#!/usr/bin/env bash
# Chapter 8: one job followed through every part. Submitted once (an Idempotency-Key replay
# returns the same job), written with its events, relayed to the queue, run by the worker, its
# transitions recorded in order, its cached read dropped on every change, and its five events
# delivered three ways: the report, the live stream and a signed webhook.
# Needs WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8 on the app, for the local receiver.
source "$(dirname "$0")/lib.sh"

work=$(mktemp -d)
RECEIVER_PID=
trap 'if [ -n "$RECEIVER_PID" ]; then kill "$RECEIVER_PID" 2>/dev/null || true; fi; rm -rf "$work"' EXIT

# region: receiver
step "A local webhook receiver: checks each delivery's signature, records it, answers 204"
start_receiver "$work"
HOOK_URL="$RECEIVER_URL/in"
# endregion: receiver

KEY=$(new_client end-to-end)
auth=(-H "authorization: Bearer $KEY")
# region: webhook
created=$(curl -fsS -X POST "$BASE/v1/webhooks" "${auth[@]}" -H 'content-type: application/json' \
    -d "{\"url\": \"$HOOK_URL\", \"events\": [\"*\"]}")
jq -r .data.secret <<<"$created" >"$work/secrets/in" # what the receiver verifies /in with
jq -c '.data | {webhook_id, events}' <<<"$created"
# endregion: webhook

# region: submit
step "Submit with an Idempotency-Key; the same request again replays the answer"
submit() {
    curl -fsS -D "$work/headers" -X POST "$BASE/v1/jobs" "${auth[@]}" \
        -H 'content-type: application/json' -H 'idempotency-key: order-42' \
        -d '{"work_kind": "SUCCESS_FAST"}'
}
JOB=$(submit | jq -r .data.job_id)
AGAIN=$(submit | jq -r .data.job_id)
replayed=$(tr -d '\r' <"$work/headers" | grep -i '^idempotency-replayed:' | cut -d' ' -f2)
# endregion: submit
expect_eq "$AGAIN" "$JOB" "the replay's job id"
expect_eq "$replayed" true "Idempotency-Replayed on the replay"
expect_eq "$(curl -fsS "$BASE/v1/jobs" "${auth[@]}" | jq '.data | length')" 1 "jobs the client has after two submissions"

# region: report
step "The report: every transition, in order, one event each"
done_() { [ "$(curl -fsS "$BASE/v1/jobs/$JOB" "${auth[@]}" | jq -r .data.state)" = SUCCEEDED ]; }
eventually done_
curl -fsS "$BASE/v1/jobs/$JOB/report" "${auth[@]}" \
    | jq -r '.data.events[] | "\(.event_name)\t\(.prev_state // "-") -> \(.next_state)\tattempt \(.attempt)"'
# endregion: report
names=$(curl -fsS "$BASE/v1/jobs/$JOB/report" "${auth[@]}" | jq -r '[.data.events[].event_name] | join(" ")')
expect_eq "$names" "job.created job.queued job.assigned job.running job.succeeded" "the report's events"

# region: rows
step "The same in the database: the row (version 4: 1 at insert, +2 at the start, +1 at the end) and its events"
psql "$DATABASE_URL" -At -F' ' -c "SELECT state, attempt, version, outcome FROM jobs WHERE id = '$JOB'"
psql "$DATABASE_URL" -At -c "SELECT event_name FROM job_events WHERE job_id = '$JOB' ORDER BY seq"
psql "$DATABASE_URL" -At -c "SELECT count(*) FROM job_outbox"
# endregion: rows
expect_eq "$(psql "$DATABASE_URL" -At -F' ' -c "SELECT state, attempt, version, outcome FROM jobs WHERE id = '$JOB'")" \
    "SUCCEEDED 1 4 SUCCEEDED" "state, attempt, version, outcome"
expect_eq "$(psql "$DATABASE_URL" -At -c "SELECT string_agg(event_name, ' ' ORDER BY seq) FROM job_events WHERE job_id = '$JOB'")" \
    "$names" "job_events, by seq"
outbox_empty() { [ "$(psql "$DATABASE_URL" -At -c "SELECT count(*) FROM job_outbox")" = 0 ]; }
eventually outbox_empty
echo "ok: the relay sent every committed dispatch (job_outbox is empty)"

# region: stream
step "The live stream: the past events, then closed after the final one"
curl -sSN --max-time 10 "$BASE/v1/jobs/$JOB/events" "${auth[@]}" >"$work/stream"
grep '^event:' "$work/stream"
# endregion: stream
expect_eq "$(grep '^event:' "$work/stream" | cut -d' ' -f2 | tr '\n' ' ' | sed 's/ $//')" "$names" \
    "the stream's events (and it ended by itself)"
expect_eq "$(grep '^id:' "$work/stream" | cut -d' ' -f2 | tr '\n' ' ')" \
    "$(curl -fsS "$BASE/v1/jobs/$JOB/report" "${auth[@]}" | jq -r '[.data.events[].event_id] | join(" ")') " \
    "the stream's ids are the event ids"

# region: cache
step "Reads go through the cache; the next transition drops the entry"
# A second job, due in 3 s: read while QUEUED, then started by the worker.
LATER=$(curl -fsS -X POST "$BASE/v1/jobs" "${auth[@]}" -H 'content-type: application/json' \
    -d "{\"work_kind\": \"SUCCESS_FAST\", \"execution_at\": \"$(date -u -d '+3 seconds' +%FT%TZ)\"}" \
    | jq -r .data.job_id)
curl -fsS "$BASE/v1/jobs/$LATER" "${auth[@]}" | jq -r .data.state
ttl=$(redis-cli -u "$REDIS_URL" TTL "$APP_NAME:cache:job:$LATER")
echo "cached for $ttl s"
dropped() { [ "$(redis-cli -u "$REDIS_URL" EXISTS "$APP_NAME:cache:job:$LATER")" = 0 ]; }
eventually dropped
# endregion: cache
[ "$ttl" -gt 0 ] && [ "$ttl" -le 300 ] || { echo "FAILED: cached job TTL $ttl, expected 1-300" >&2; exit 1; }
echo "ok: the cached read of $LATER was dropped when the worker started it"

# region: delivered
step "The webhook: one signed delivery per event, webhook-id = the event id"
mine() { jq -r "select(.job_id == \"$JOB\") | $1" "$work/received.jsonl" 2>/dev/null; }
five() { [ "$(mine .webhook_id | wc -l)" -ge 5 ]; }
eventually five
mine '"\(.webhook_id)\t\(.type)\t\(.verdict)"'
# endregion: delivered
expect_eq "$(mine .webhook_id | sort | tr '\n' ' ')" \
    "$(curl -fsS "$BASE/v1/jobs/$JOB/report" "${auth[@]}" | jq -r '.data.events[].event_id' | sort | tr '\n' ' ')" \
    "the deliveries' webhook-ids are the report's event ids"
expect_eq "$(mine .verdict | sort -u)" accepted "every delivery's signature checks out (Standard Webhooks v1)"
