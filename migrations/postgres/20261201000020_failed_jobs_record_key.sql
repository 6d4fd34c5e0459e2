-- core-jobs: writing a failure is idempotent. A parked failure is written again when the reply
-- to its first INSERT was lost (the row committed, the worker never heard); the record's own
-- (job_id, attempts, failed_at) now identifies it, so the second write finds the first row.
DELETE FROM failed_jobs a USING failed_jobs b
 WHERE a.job_id = b.job_id AND a.attempts = b.attempts AND a.failed_at = b.failed_at AND a.id > b.id;
CREATE UNIQUE INDEX failed_jobs_record_key ON failed_jobs (job_id, attempts, failed_at);
