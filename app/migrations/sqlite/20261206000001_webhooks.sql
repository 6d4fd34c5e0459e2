-- Webhooks: a client's endpoints (and a job's callback, a webhook of that one job), the
-- messages fanned out to them (one per event and webhook) and every delivery attempt.

CREATE TABLE webhooks (
    id               TEXT PRIMARY KEY,
    client_id        TEXT NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
    -- Set for a job's callback: the webhook receives that job's events only.
    job_id           TEXT REFERENCES jobs (id) ON DELETE CASCADE,
    url              TEXT NOT NULL,
    -- '*' or the event types between commas: ',job.created,job.succeeded,'.
    events           TEXT NOT NULL,
    -- The signing secret (whsec_…), shown to the client once.
    secret           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    disabled_at      TEXT,
    disabled_reason  TEXT
);
CREATE INDEX webhooks_client ON webhooks (client_id, created_at) WHERE job_id IS NULL;
CREATE INDEX webhooks_job ON webhooks (job_id) WHERE job_id IS NOT NULL;

-- One event to one webhook: written by the fan-out (which it keeps from sending twice), the
-- body fixed then so every retry sends the same bytes under the same webhook-id.
CREATE TABLE webhook_messages (
    webhook_id   TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id     TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    body         TEXT NOT NULL,
    -- pending, delivered, failed, disabled
    status       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (webhook_id, event_id)
);

-- One attempt of one message.
CREATE TABLE webhook_deliveries (
    id             TEXT PRIMARY KEY,
    webhook_id     TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event_id       TEXT NOT NULL,
    event_type     TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    -- delivered, retrying, failed, gone, refused
    outcome        TEXT NOT NULL,
    status_code    INTEGER,
    duration_ms    INTEGER NOT NULL,
    error          TEXT,
    next_retry_at  TEXT,
    created_at     TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);
