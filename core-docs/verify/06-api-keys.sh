#!/usr/bin/env bash
# Chapter 6: API-key auth. No key, a malformed key and an unknown key are 401s; a good key gets
# 200 with the rate-limit headers; the database keeps only the key's HMAC, prefix and last four;
# a renewed key keeps working during the overlap; a revoked key is refused at once.
source "$(dirname "$0")/lib.sh"

# region: create
step "A client and its first key (shown once)"
created=$(curl -fsS -X POST "$BASE/v1/clients" -H 'content-type: application/json' \
    -d '{"name": "acme"}')
KEY=$(jq -r .data.api_key <<<"$created")
CLIENT=$(jq -r .data.client_id <<<"$created")
KEY_ID=$(jq -r .data.key_id <<<"$created")
# endregion: create
expect_eq "$(jq -r .data.key_prefix <<<"$created")" "${KEY:0:8}" "key_prefix is the first eight characters"
expect_eq "$(jq -r .data.key_last_four <<<"$created")" "${KEY: -4}" "key_last_four is the last four"

# region: refused
step "No key, a malformed key, an unknown key: 401 with WWW-Authenticate"
status=$(curl -sS -o /tmp/body.$$ -w '%{http_code}' "$BASE/v1/jobs")
expect_eq "$status" 401 "no key"
expect_eq "$(jq -r .error_code /tmp/body.$$)" RFA_AUTH_INVALID_CREDENTIALS "error_code"
challenge=$(curl -sS -D - -o /dev/null "$BASE/v1/jobs" | tr -d '\r' | grep -i '^www-authenticate:')
expect_eq "$challenge" "www-authenticate: Bearer" "the challenge"
status=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/v1/jobs" -H 'authorization: Bearer frk_nope')
expect_eq "$status" 401 "a malformed key (rejected offline: wrong length and checksum)"
# A well-formed key (right prefix, length and checksum) that was never issued: looked up, not found.
UNKNOWN=$(python3 -c '
import secrets, zlib
A = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
def b62(n, width):
    out = ""
    for _ in range(width):
        n, r = divmod(n, 62)
        out = A[r] + out
    return out
body = b62(int.from_bytes(secrets.token_bytes(32), "big"), 43)
print("frk_" + body + b62(zlib.crc32(body.encode()), 6))')
status=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/v1/jobs" -H "authorization: Bearer $UNKNOWN")
expect_eq "$status" 401 "a well-formed key that was never issued"
# endregion: refused
rm -f /tmp/body.$$

# region: accepted
step "A good key: 200, with the client's rate limit in the headers"
headers=$(curl -fsS -D - -o /dev/null "$BASE/v1/jobs" -H "authorization: Bearer $KEY" | tr -d '\r')
policy=$(grep -i '^ratelimit-policy:' <<<"$headers" | cut -d' ' -f2-)
limit=$(grep -i '^ratelimit:' <<<"$headers" | cut -d' ' -f2-)
# endregion: accepted
expect_eq "$policy" '"default";q=600;w=60' "RateLimit-Policy (RATE_LIMIT_PER_MINUTE=600)"
expect_contains "$limit" '"default";r=' "RateLimit: what is left in this window"
remaining=$(sed -E 's/.*r=([0-9]+).*/\1/' <<<"$limit")
[ "$remaining" -lt 600 ] || { echo "FAILED: r=$remaining is not below the quota" >&2; exit 1; }
echo "ok: r=$remaining left of 600"

# region: stored
step "The database keeps the HMAC, the prefix and the last four; never the key"
row=$(psql "$DATABASE_URL" -At -F' ' -c \
    "SELECT prefix, last_four, length(key_hash) FROM api_keys WHERE id = '$KEY_ID'")
stored_key=$(psql "$DATABASE_URL" -At -c "SELECT count(*) FROM api_keys WHERE key_hash = '$KEY'")
# endregion: stored
expect_eq "$row" "${KEY:0:8} ${KEY: -4} 64" "prefix, last four, a 64-hex-digit HMAC-SHA-256"
expect_eq "$stored_key" 0 "rows holding the raw key"

# region: renew
step "Renew: a new key now; the old one works until the overlap ends"
renewed=$(curl -fsS -X POST "$BASE/v1/clients/$CLIENT/keys/renew" -H "authorization: Bearer $KEY")
NEW_KEY=$(jq -r .data.api_key <<<"$renewed")
old_expires=$(jq -r .data.previous_key.expires_at <<<"$renewed")
old=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/v1/jobs" -H "authorization: Bearer $KEY")
new=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/v1/jobs" -H "authorization: Bearer $NEW_KEY")
# endregion: renew
expect_eq "$(jq -r .data.previous_key.key_id <<<"$renewed")" "$KEY_ID" "previous_key is the key of the request"
[ "$NEW_KEY" != "$KEY" ] || { echo "FAILED: the renewed key is the old one" >&2; exit 1; }
overlap=$(python3 -c "
from datetime import datetime, timezone
at = datetime.fromisoformat('$old_expires'.replace('Z', '+00:00'))
print(round((at - datetime.now(timezone.utc)).total_seconds() / 60))")
expect_eq "$overlap" 60 "minutes until the old key stops (API_KEY_RENEW_OVERLAP=1h)"
expect_eq "$old" 200 "the old key during the overlap"
expect_eq "$new" 200 "the new key"

# region: revoke
step "Revoke the old key: refused at once (403), the new one still works"
curl -fsS -X POST "$BASE/v1/clients/$CLIENT/keys/revoke" -H "authorization: Bearer $NEW_KEY" \
    -H 'content-type: application/json' -d "{\"key_id\": \"$KEY_ID\"}" >/dev/null
revoked=$(curl -sS "$BASE/v1/jobs" -H "authorization: Bearer $KEY")
status=$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/v1/jobs" -H "authorization: Bearer $KEY")
# endregion: revoke
expect_eq "$status" 403 "the revoked key"
expect_eq "$(jq -r .error_code <<<"$revoked")" RFA_AUTH_API_KEY_DISABLED "error_code"
expect_eq "$(curl -sS -o /dev/null -w '%{http_code}' "$BASE/v1/jobs" -H "authorization: Bearer $NEW_KEY")" 200 "the new key"

# region: redis
step "Lookups are cached by the key's HMAC for 60 s; the limiter counts on the cache too"
NEW_KEY_ID=$(jq -r .data.key_id <<<"$renewed")
hash=$(psql "$DATABASE_URL" -At -c "SELECT key_hash FROM api_keys WHERE id = '$NEW_KEY_ID'")
ttl=$(redis-cli -u "$REDIS_URL" TTL "$APP_NAME:cache:apikey:hash:$hash")
counters=$(redis-cli -u "$REDIS_URL" --scan --pattern "$APP_NAME:cache:rl:default:*" | wc -l)
# endregion: redis
[ "$ttl" -gt 0 ] && [ "$ttl" -le 60 ] || { echo "FAILED: cached key TTL $ttl, expected 1-60" >&2; exit 1; }
echo "ok: the new key's lookup is cached for $ttl more seconds"
[ "$counters" -ge 1 ] || { echo "FAILED: no rate-limit counter in Redis" >&2; exit 1; }
echo "ok: $counters rate-limit counter(s) in Redis"
