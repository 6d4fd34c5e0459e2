#!/usr/bin/env bash
# Chapter 4: webhooks as notifications. Register a webhook for a local receiver, see its secret
# once, run a job, check that the receiver got signed deliveries and that the deliveries log
# lists them. (The app must allow 127.0.0.1: WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8.)
source "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d)
RECEIVER_PID=
trap 'if [ -n "$RECEIVER_PID" ]; then kill "$RECEIVER_PID" 2>/dev/null || true; fi; rm -rf "$TMP"' EXIT
KEY=$(new_client chapter-4)

step "a local receiver that checks each delivery's signature and keeps what it got"
# region: receiver
start_receiver "$TMP"
URL="$RECEIVER_URL/hooks"
# endregion: receiver

step "register a webhook: 201, the secret shown once"
# region: register
CREATED=$(curl -sS -w '\n%{http_code}' -X POST "$BASE/v1/webhooks" \
    -H "authorization: Bearer $KEY" -H 'content-type: application/json' \
    -d "{\"url\": \"$URL\", \"events\": [\"job.succeeded\", \"job.failed\"]}")
expect_eq "$(tail -n1 <<<"$CREATED")" 201 "status"
HOOK=$(head -n1 <<<"$CREATED" | jq -r .data.webhook_id)
SECRET=$(head -n1 <<<"$CREATED" | jq -r .data.secret)
expect_contains "$SECRET" "whsec_" "the secret starts with whsec_"
printf %s "$SECRET" >"$TMP/secrets/hooks" # what the receiver verifies /hooks with
# endregion: register

step "list it: the secret is not shown again"
# region: list
LIST=$(curl -fsS "$BASE/v1/webhooks" -H "authorization: Bearer $KEY")
expect_eq "$(jq -r '.data | length' <<<"$LIST")" 1 "one webhook"
expect_eq "$(jq -r '.data[0].events | join(",")' <<<"$LIST")" "job.succeeded,job.failed" "its events"
expect_eq "$(jq -r '.data[0] | has("secret")' <<<"$LIST")" false "no secret in the list"
# endregion: list

step "a job succeeds: one signed delivery of job.succeeded"
# region: deliver
JOB=$(curl -fsS -X POST "$BASE/v1/jobs" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d '{"work_kind": "SUCCESS_FAST"}' | jq -r .data.job_id)
delivered() {
    [ "$(curl -gfsS "$BASE/v1/webhooks/$HOOK/deliveries?filter[outcome]=delivered" \
        -H "authorization: Bearer $KEY" | jq -r '.data | length')" = 1 ]
}
eventually delivered
DELIVERY=$(curl -fsS "$BASE/v1/webhooks/$HOOK/deliveries" -H "authorization: Bearer $KEY" | jq .data[0])
expect_eq "$(jq -r .event_type <<<"$DELIVERY")" job.succeeded "event_type"
expect_eq "$(jq -r .status_code <<<"$DELIVERY")" 204 "status_code"
expect_eq "$(jq -r .attempt <<<"$DELIVERY")" 1 "attempt"
EVENT=$(jq -r .event_id <<<"$DELIVERY")
# endregion: deliver

step "the receiver checked the signature with the secret"
# region: received
GOT=$(jq -r '"\(.verdict) \(.webhook_id) \(.type) \(.job_id) \(.state)"' "$TMP/received.jsonl")
# endregion: received
expect_eq "$GOT" "accepted $EVENT job.succeeded $JOB SUCCEEDED" \
    "one message: a valid signature, webhook-id = the event id, its type, job and state"
