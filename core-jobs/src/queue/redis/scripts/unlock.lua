-- Releases a lock only if it is still held with the caller's token (a compare-and-delete: a
-- lock that expired and was taken by another holder stays).
-- KEYS: lock. ARGV: token.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
