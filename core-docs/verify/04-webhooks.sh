#!/usr/bin/env bash
# Chapter 4: webhooks as notifications. Register a webhook for a local receiver, see its secret
# once, run a job, check that the receiver got signed deliveries and that the deliveries log
# lists them. (The app must allow 127.0.0.1: WEBHOOK_ALLOW_NETWORKS=127.0.0.0/8.)
source "$(dirname "$0")/lib.sh"
TMP=$(mktemp -d)
RECEIVER=
trap 'if [ -n "$RECEIVER" ]; then kill "$RECEIVER" 2>/dev/null || true; fi; rm -rf "$TMP"' EXIT
KEY=$(new_client chapter-4)

step "a local receiver that answers 204 and keeps what it got"
# region: receiver
cat > "$TMP/receiver.py" <<'PY'
import http.server, json, os, sys
out = sys.argv[1]
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        name = os.path.join(out, self.headers["webhook-id"] + ".json")
        with open(name, "w") as f:
            json.dump({"headers": {k.lower(): v for k, v in self.headers.items()},
                       "body": body.decode()}, f)
        self.send_response(204)
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
print(server.server_port, flush=True)
server.serve_forever()
PY
mkdir "$TMP/got"
python3 "$TMP/receiver.py" "$TMP/got" > "$TMP/port" &
RECEIVER=$!
port_known() { [ -s "$TMP/port" ]; }
eventually port_known
URL="http://127.0.0.1:$(cat "$TMP/port")/hooks"
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
expect_eq "$(ls "$TMP/got")" "$EVENT.json" "the receiver got one message, webhook-id = the event id"
# endregion: deliver

step "the receiver checks the signature with the secret"
# region: verify-signature
CHECK=$(python3 - "$SECRET" "$TMP/got/$EVENT.json" <<'PY'
import base64, hashlib, hmac, json, sys
secret, got = sys.argv[1], json.load(open(sys.argv[2]))
h = got["headers"]
key = base64.b64decode(secret.removeprefix("whsec_"))
signed = f'{h["webhook-id"]}.{h["webhook-timestamp"]}.{got["body"]}'.encode()
expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
body = json.loads(got["body"])
ok = expected in h["webhook-signature"].split(" ")
print("valid" if ok else "INVALID", body["type"], body["data"]["job_id"], body["data"]["state"])
PY
)
expect_eq "$CHECK" "valid job.succeeded $JOB SUCCEEDED" "signature, type, job and state"
# endregion: verify-signature
