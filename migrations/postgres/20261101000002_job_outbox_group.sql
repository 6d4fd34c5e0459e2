-- core-jobs: the outbox keeps a buffered job's FIFO group, so that it is dispatched into it.
ALTER TABLE job_outbox ADD COLUMN group_id TEXT;
