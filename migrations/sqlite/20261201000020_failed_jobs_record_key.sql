-- core-jobs: writing a failure is idempotent. A parked failure is written again when the reply
-- to its first INSERT was lost (the row committed, the worker never heard); the record's own
-- (job_id, attempts, failed_at) now identifies it, so the second write finds the first row.
DELETE FROM failed_jobs
 WHERE id NOT IN (SELECT MIN(id) FROM failed_jobs GROUP BY job_id, attempts, failed_at);
CREATE UNIQUE INDEX failed_jobs_record_key ON failed_jobs (job_id, attempts, failed_at);
