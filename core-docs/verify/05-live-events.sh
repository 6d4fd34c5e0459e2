#!/usr/bin/env bash
# Chapter 5: the live event stream. GET /v1/jobs/{id}/events of a finished job sends every
# event (id, event name, data) and closes; Last-Event-ID resumes after the event it names.
source "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
KEY=$(new_client chapter-5)
JOB=$(curl -fsS -X POST "$BASE/v1/jobs" -H "authorization: Bearer $KEY" \
    -H 'content-type: application/json' -d '{"work_kind": "SUCCESS_FAST"}' | jq -r .data.job_id)

step "follow the job live: the stream ends after the final event"
# region: follow
curl -sSN --max-time 20 "$BASE/v1/jobs/$JOB/events" -H "authorization: Bearer $KEY" \
    -D "$TMP/headers" > "$TMP/stream"
expect_contains "$(tr -d '\r' < "$TMP/headers")" "content-type: text/event-stream" "content type"
expect_eq "$(sed -n 's/^event: //p' "$TMP/stream" | paste -sd ' ')" \
    "job.created job.queued job.assigned job.running job.succeeded" "event names, in order"
# endregion: follow

step "each event: id = data.event_id, the same ids as the report"
# region: ids
IDS=$(sed -n 's/^id: //p' "$TMP/stream" | paste -sd ' ')
DATA_IDS=$(sed -n 's/^data: //p' "$TMP/stream" | jq -r .event_id | paste -sd ' ')
REPORT_IDS=$(curl -fsS "$BASE/v1/jobs/$JOB/report" -H "authorization: Bearer $KEY" \
    | jq -r '[.data.events[].event_id] | join(" ")')
expect_eq "$IDS" "$DATA_IDS" "id: lines and data.event_id"
expect_eq "$IDS" "$REPORT_IDS" "the report's events"
# endregion: ids

step "resume after the second event with Last-Event-ID"
# region: resume
SECOND=$(cut -d' ' -f2 <<<"$IDS")
curl -sSN --max-time 20 "$BASE/v1/jobs/$JOB/events" -H "authorization: Bearer $KEY" \
    -H "last-event-id: $SECOND" > "$TMP/resumed"
expect_eq "$(sed -n 's/^event: //p' "$TMP/resumed" | paste -sd ' ')" \
    "job.assigned job.running job.succeeded" "only the events after it"
# endregion: resume

step "resume after the final event: nothing more, and the stream closes"
# region: resume-final
LAST=$(awk '{print $NF}' <<<"$IDS")
START=$SECONDS
curl -sSN --max-time 20 "$BASE/v1/jobs/$JOB/events" -H "authorization: Bearer $KEY" \
    -H "last-event-id: $LAST" > "$TMP/after-final"
expect_eq "$(grep -c '^event: ' "$TMP/after-final" || true)" 0 "events after the final one"
expect_eq "$(( SECONDS - START < 15 ))" 1 "closed at once, not by --max-time"
# endregion: resume-final
