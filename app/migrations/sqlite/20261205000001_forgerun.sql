-- ForgeRun: clients and their API keys, jobs with their events, artifacts and idempotency keys.
-- Ids are UUIDs as text (the same on SQLite); times are RFC 3339 text (core_db::db::Timestamp).

CREATE TABLE clients (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

-- A key is stored only as HMAC-SHA-256(API_KEY_SECRET, key), hex; prefix and last four
-- characters are kept for display.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    last_four   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    expires_at  TEXT,
    revoked_at  TEXT
);
CREATE INDEX api_keys_client ON api_keys (client_id);

CREATE TABLE jobs (
    id                TEXT PRIMARY KEY,
    client_id         TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    work_kind         TEXT NOT NULL,
    state             TEXT NOT NULL,
    attempt           INTEGER NOT NULL,
    max_attempts      INTEGER NOT NULL,
    outcome           TEXT,
    error             TEXT,
    retryable         INTEGER NOT NULL DEFAULT 0,
    callback          TEXT,
    dispatch_id       TEXT,
    cancel_requested  INTEGER NOT NULL DEFAULT 0,
    output            TEXT,
    version           INTEGER NOT NULL DEFAULT 0,
    execution_at      TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    queued_at         TEXT,
    started_at        TEXT,
    finished_at       TEXT
);
CREATE INDEX jobs_client_created ON jobs (client_id, created_at);
CREATE INDEX jobs_client_updated ON jobs (client_id, updated_at);
CREATE INDEX jobs_client_state ON jobs (client_id, state);
CREATE INDEX jobs_active ON jobs (state, execution_at)
    WHERE state IN ('CREATED', 'QUEUED', 'ASSIGNED', 'RUNNING');
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE job_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    job_id      TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    event_name  TEXT NOT NULL,
    prev_state  TEXT,
    next_state  TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    detail      TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX job_events_job ON job_events (job_id, seq);

CREATE TABLE job_artifacts (
    job_id        TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    storage_key   TEXT NOT NULL,
    size          INTEGER NOT NULL,
    content_type  TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (job_id, name)
);

-- One row per (client, Idempotency-Key): claimed before the request runs (response_status
-- NULL while in flight), completed in the transaction that creates the job.
CREATE TABLE idempotency_keys (
    client_id        TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    idem_key         TEXT NOT NULL,
    request_hash     TEXT NOT NULL,
    response_status  INTEGER,
    response_body    TEXT,
    locked_until     TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (client_id, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
