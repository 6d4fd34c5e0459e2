#!/usr/bin/env bash
# Chapter 2: request DTOs, validation and errors. Malformed JSON is a 400, a field that breaks a
# rule a 422 naming the field, and the same errors come as problem details when asked for.
source "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
KEY=$(new_client chapter-2)

# POSTs $1 to /v1/jobs with any further curl arguments; the body lands in $TMP/body and the
# status is printed.
submit() {
    local body=$1
    shift
    curl -s -o "$TMP/body" -w '%{http_code}' -X POST "$BASE/v1/jobs" \
        -H "authorization: Bearer $KEY" -H 'content-type: application/json' "$@" -d "$body"
}

step "malformed JSON: 400 BAD_REQUEST"
# region: bad-json
STATUS=$(submit '{"work_kind": ')
expect_eq "$STATUS" 400 "status"
expect_eq "$(jq -r .error_code "$TMP/body")" BAD_REQUEST "error_code"
# endregion: bad-json

step "a field the DTO does not have: 400 too (deny_unknown_fields)"
# region: unknown-field
STATUS=$(submit '{"work_kind": "SUCCESS_FAST", "priority": 9}')
expect_eq "$STATUS" 400 "status"
expect_contains "$(jq -r .message "$TMP/body")" "priority" "the message names the field"
# endregion: unknown-field

step "a validator rule broken: 422 with the field named"
# region: rule
STATUS=$(submit '{"work_kind": "SUCCESS_FAST", "max_attempts": 11}')
expect_eq "$STATUS" 422 "status"
expect_eq "$(jq -r .error_code "$TMP/body")" VALIDATION_ERROR "error_code"
expect_eq "$(jq -r '.errors | keys | join(",")' "$TMP/body")" max_attempts "errors names max_attempts"
# endregion: rule

step "a rule the handler checks: 422 on work_kind"
# region: handler-rule
STATUS=$(submit '{"work_kind": "PAYLOAD_INVALID"}')
expect_eq "$STATUS" 422 "status"
expect_contains "$(jq -r '.errors.work_kind[0]' "$TMP/body")" "not a work kind that can be submitted" \
    "errors.work_kind"
# endregion: handler-rule

step "the same error as problem details"
# region: problem
STATUS=$(submit '{"work_kind": "SUCCESS_FAST", "max_attempts": 0}' \
    -H 'accept: application/problem+json' -D "$TMP/headers")
expect_eq "$STATUS" 422 "status"
expect_contains "$(tr -d '\r' < "$TMP/headers")" "content-type: application/problem+json" "content type"
expect_eq "$(jq -r .status "$TMP/body")" 422 "status member"
expect_eq "$(jq -r .title "$TMP/body")" "Unprocessable Entity" "title"
expect_eq "$(jq -r .code "$TMP/body")" VALIDATION_ERROR "code"
expect_eq "$(jq -r .instance "$TMP/body")" /v1/jobs "instance"
expect_eq "$(jq -r '.errors | keys | join(",")' "$TMP/body")" max_attempts "errors"
# endregion: problem

step "an application error keeps its code: 404 RFA_JOB_NOT_FOUND"
# region: coded
STATUS=$(curl -s -o "$TMP/body" -w '%{http_code}' -H "authorization: Bearer $KEY" \
    -H 'accept: application/problem+json' "$BASE/v1/jobs/$(python3 -c 'import uuid; print(uuid.uuid4())')")
expect_eq "$STATUS" 404 "status"
expect_eq "$(jq -r .code "$TMP/body")" RFA_JOB_NOT_FOUND "code"
expect_eq "$(jq -r .title "$TMP/body")" "Not Found" "title"
# endregion: coded
