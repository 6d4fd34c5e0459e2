-- Framework tables for core-jobs. Timestamps are RFC 3339 UTC text, which sorts in time order.

-- Jobs that exhausted their retries, or could not be run at all (unknown name, undecodable
-- payload). `payload` is kept byte for byte.
CREATE TABLE failed_jobs (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id     TEXT    NOT NULL,
    job_name   TEXT    NOT NULL,
    queue      TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    error      TEXT    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    group_id   TEXT,
    failed_at  TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX failed_jobs_failed_at_idx ON failed_jobs (failed_at);
CREATE INDEX failed_jobs_job_name_idx ON failed_jobs (job_name);

-- Transactional dispatch: jobs written inside the caller's transaction, pushed to the queue after
-- commit and deleted. A row whose relay died is claimed again once `claimed_until` has passed.
CREATE TABLE job_outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id        TEXT NOT NULL UNIQUE,
    job_name      TEXT NOT NULL,
    queue         TEXT NOT NULL,
    payload       TEXT NOT NULL,
    available_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    created_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    claimed_until TEXT
);
CREATE INDEX job_outbox_claimed_until_idx ON job_outbox (claimed_until, id);
