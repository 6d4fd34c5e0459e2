# Chapter 12, "Event fan-out recipe": one job's events reach a local receiver as signed webhooks,
# the delivery log, the live stream and the database agree on the same event ids, and a fan-out
# that runs a second time sends nothing twice.
#
# The app must allow webhooks to 127.0.0.1: start it with WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8.
# The psql checks need DATABASE_URL (PostgreSQL). Needs curl, jq, psql and python3.
source "$(dirname "$0")/lib.sh"
: "${DATABASE_URL:?the psql checks need DATABASE_URL (PostgreSQL)}"
HERE=$(cd "$(dirname "$0")" && pwd)

sql() { psql "$DATABASE_URL" -X -q -A -t -v ON_ERROR_STOP=1 -c "$1"; }

step "The receiver checks signatures the Standard Webhooks way"
python3 "$HERE/receiver.py" --self-test

# region: receiver
RECV=$(mktemp -d)
start_receiver "$RECV"
trap 'kill "$RECEIVER_PID" 2>/dev/null; rm -rf "$RECV"' EXIT
HOOK_URL=$RECEIVER_URL
# endregion: receiver

# region: register
step "A client and a webhook for every event, pointed at the receiver"
KEY=$(new_client fanout)
AUTH="authorization: Bearer $KEY"
created=$(curl -fsS -X POST "$BASE/v1/webhooks" -H "$AUTH" -H 'content-type: application/json' \
    -d "{\"url\": \"$HOOK_URL/a\", \"events\": [\"*\"]}")
HOOK=$(jq -r .data.webhook_id <<<"$created")
jq -r .data.secret <<<"$created" >"$RECV/secrets/a" # the receiver verifies with it
expect_contains "$(cat "$RECV/secrets/a")" "whsec_" "the secret is shown once, whsec_…"
# endregion: register

# region: forged
step "A forged delivery is rejected by the receiver"
status=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$HOOK_URL/a" \
    -H 'webhook-id: forged' -H "webhook-timestamp: $(date +%s)" \
    -H 'webhook-signature: v1,bm90IGEgc2lnbmF0dXJl' -d '{"type": "job.succeeded"}')
expect_eq "$status" "401" "the receiver's answer to a bad signature"
# endregion: forged

# region: submit
step "Submit a job; read its events from the live stream"
JOB=$(curl -fsS -X POST "$BASE/v1/jobs" -H "$AUTH" -H 'content-type: application/json' \
    -d '{"work_kind": "SUCCESS_FAST"}' | jq -r .data.job_id)
job_state() { curl -fsS "$BASE/v1/jobs/$JOB" -H "$AUTH" | jq -r .data.state; }
succeeded() { [ "$(job_state)" = SUCCEEDED ]; }
eventually succeeded
# The job is final, so the stream sends its events and closes (--max-time: never wait forever).
stream=$(curl -sN --max-time 10 "$BASE/v1/jobs/$JOB/events" -H "$AUTH")
IDS=$(sed -n 's/^id: *//p' <<<"$stream")
expect_eq "$(sed -n 's/^event: *//p' <<<"$stream" | paste -sd' ')" \
    "job.created job.queued job.assigned job.running job.succeeded" "the stream's events"
SUCCEEDED_ID=$(sed -n 5p <<<"$IDS")
# endregion: submit

# region: received
step "The receiver has every event, once, each with a valid signature"
accepted() { jq -r "select(.path == \"/a\" and .verdict == \"accepted\" and .job_id == \"$JOB\") | .webhook_id" \
    "$RECV/received.jsonl" | sort; }
all_received() { [ "$(accepted)" = "$(sort <<<"$IDS")" ]; }
eventually all_received
expect_eq "$(jq -r "select(.webhook_id == \"$SUCCEEDED_ID\") | .type" "$RECV/received.jsonl")" \
    "job.succeeded" "the message whose webhook-id is the job.succeeded event id"
expect_eq "$(jq -r 'select(.verdict == "rejected") | .webhook_id' "$RECV/received.jsonl")" \
    "forged" "the only rejected request"
# endregion: received

# region: deliveries
step "The delivery log: one delivered attempt per event, under the same ids"
delivered() { curl -fsS -g "$BASE/v1/webhooks/$HOOK/deliveries?per_page=100&filter[outcome]=delivered" \
    -H "$AUTH" | jq -r '.data[].event_id' | sort; }
logged() { [ "$(delivered)" = "$(sort <<<"$IDS")" ]; }
eventually logged
attempt=$(curl -fsS -g "$BASE/v1/webhooks/$HOOK/deliveries?filter[event_id]=$SUCCEEDED_ID" -H "$AUTH" \
    | jq -c '.data | map({event_type, attempt, outcome, status_code})')
expect_eq "$attempt" '[{"event_type":"job.succeeded","attempt":1,"outcome":"delivered","status_code":204}]' \
    "the job.succeeded delivery"
# endregion: deliveries

# region: resume
step "The stream resumes after Last-Event-ID: the events after it, nothing twice"
SECOND=$(sed -n 2p <<<"$IDS")
resumed=$(curl -sN --max-time 10 "$BASE/v1/jobs/$JOB/events" -H "$AUTH" -H "Last-Event-ID: $SECOND" \
    | sed -n 's/^id: *//p')
expect_eq "$resumed" "$(sed -n '3,$p' <<<"$IDS")" "the ids after the second event"
# endregion: resume

# region: database
step "The database: no failed job, one delivered message per event"
expect_eq "$(sql 'SELECT count(*) FROM failed_jobs')" "0" "failed_jobs rows"
messages() { sql "SELECT event_id || ' ' || status || ' ' || attempts FROM webhook_messages \
    WHERE webhook_id = '$HOOK' ORDER BY event_id"; }
expect_eq "$(messages)" "$(sort <<<"$IDS" | sed 's/$/ delivered 1/')" "webhook A's messages"
# The key that makes a second fan-out of the same event write nothing: one message per
# (webhook, event).
expect_contains "$(sql "SELECT indexdef FROM pg_indexes WHERE tablename = 'webhook_messages'")" \
    "UNIQUE INDEX webhook_messages_pkey ON public.webhook_messages USING btree (webhook_id, event_id)" \
    "webhook_messages is keyed by (webhook_id, event_id)"
# endregion: database

# region: rerun
step "Run the job.succeeded fan-out again, as a duplicate from the queue would"
created=$(curl -fsS -X POST "$BASE/v1/webhooks" -H "$AUTH" -H 'content-type: application/json' \
    -d "{\"url\": \"$HOOK_URL/b\", \"events\": [\"*\"]}")
HOOK_B=$(jq -r .data.webhook_id <<<"$created")
jq -r .data.secret <<<"$created" >"$RECV/secrets/b"
# What Dispatches writes with a transition: a Fanout job in the outbox, then a wake-up for the relay.
sql "INSERT INTO job_outbox (job_id, job_name, queue, payload) VALUES (md5(random()::text), \
    'forgerun.fanout', 'webhooks', '{\"job_id\": \"$JOB\", \"event_id\": \"$SUCCEEDED_ID\"}'); \
    SELECT pg_notify('rustforge_job_outbox', '')" >/dev/null
on_b() { jq -r 'select(.path == "/b") | "\(.verdict) \(.type) \(.webhook_id)"' "$RECV/received.jsonl"; }
b_received() { [ -n "$(on_b)" ]; }
eventually b_received
b_delivered() { [ "$(sql "SELECT status FROM webhook_messages WHERE webhook_id = '$HOOK_B'")" = delivered ]; }
eventually b_delivered
expect_eq "$(on_b)" "accepted job.succeeded $SUCCEEDED_ID" "webhook B: the one event, same webhook-id"
expect_eq "$(messages)" "$(sort <<<"$IDS" | sed 's/$/ delivered 1/')" "webhook A's messages, unchanged"
expect_eq "$(delivered)" "$(sort <<<"$IDS")" "webhook A's delivery log, unchanged"
expect_eq "$(jq -r 'select(.path == "/a" and .verdict != "accepted") | .verdict' "$RECV/received.jsonl")" \
    "rejected" "webhook A: nothing sent twice (only the forged request was not accepted)"
expect_eq "$(sql 'SELECT count(*) FROM failed_jobs')" "0" "failed_jobs rows"
# endregion: rerun
