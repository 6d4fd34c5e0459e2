-- core-jobs: the outbox relay counts failed dispatches per row and parks a row that keeps
-- failing (visible and retryable through `JobBuffer::parked` / `retry_parked`) instead of
-- letting it block the rows behind it.
ALTER TABLE job_outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE job_outbox ADD COLUMN last_error TEXT;
ALTER TABLE job_outbox ADD COLUMN parked_at TIMESTAMPTZ;
