# Shared by the cookbook's verify scripts (core-docs/verify/*.sh): sourced, never run alone.
#
# Each script checks one chapter's "Verify" step against a running ForgeRun:
#   BASE          the app's address (default http://127.0.0.1:3000, i.e. `cargo run -p app`)
#   APP           the app binary (default: `cargo run -q -p app --`)
#   REDIS_URL     for the redis-cli checks (default redis://127.0.0.1:6379)
#   APP_NAME      the app's Redis key prefix (default rustforge)
#   DATABASE_URL  for the psql checks
# A check that fails prints what it expected and what it saw, and the script exits non-zero.
# `app/tests/cookbook.rs` runs every script against a server and a worker of its own.

set -euo pipefail

BASE=${BASE:-http://127.0.0.1:3000}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
APP_NAME=${APP_NAME:-rustforge}
export BASE REDIS_URL APP_NAME

# The app's command line: `$APP jobs failed list`.
app() {
    if [ -n "${APP:-}" ]; then "$APP" "$@"; else cargo run -q -p app -- "$@"; fi
}

# Prints a step's title.
step() { printf '\n== %s\n' "$*"; }

# Fails the script unless "$1" equals "$2"; "$3" says what was compared.
expect_eq() {
    if [ "$1" != "$2" ]; then
        printf 'FAILED: %s: expected %q, got %q\n' "$3" "$2" "$1" >&2
        exit 1
    fi
    printf 'ok: %s = %s\n' "$3" "$1"
}

# Fails the script unless "$1" contains "$2".
expect_contains() {
    case "$1" in
        *"$2"*) printf 'ok: %s\n' "$3" ;;
        *) printf 'FAILED: %s: %q does not contain %q\n' "$3" "$1" "$2" >&2; exit 1 ;;
    esac
}

# Retries "$@" (a command that fails until something is true) for up to 30 s.
eventually() {
    local deadline=$((SECONDS + 30))
    until "$@"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            printf 'FAILED: not true within 30 s: %s\n' "$*" >&2
            exit 1
        fi
        sleep 0.2
    done
}

# Starts receiver.py (this directory's Standard Webhooks receiver) on a free port of 127.0.0.1,
# keeping what it gets in directory "$1"; sets RECEIVER_PID and RECEIVER_URL. A webhook at
# "$RECEIVER_URL/NAME" is verified with the secret written to "$1/secrets/NAME"; each request is a
# line of "$1/received.jsonl". The caller stops it: trap 'kill "$RECEIVER_PID"' EXIT.
start_receiver() {
    python3 "$(dirname "${BASH_SOURCE[0]}")/receiver.py" --dir "$1" &
    RECEIVER_PID=$!
    eventually test -s "$1/port"
    RECEIVER_URL="http://127.0.0.1:$(cat "$1/port")"
}

# A new client; prints its API key.
new_client() {
    curl -fsS -X POST "$BASE/v1/clients" -H 'content-type: application/json' \
        -d "{\"name\": \"${1:-cookbook}\"}" | jq -r .data.api_key
}
