-- job_events is keyed by its event id, the key it is looked up by (the live stream's
-- Last-Event-ID, the fan-out). `seq` keeps ordering a job's events through (job_id, seq); it is
-- unique by construction (a sequence), so it needs no index of its own. Every transition writes
-- one or two events: one index fewer to maintain on the hottest insert.
ALTER TABLE job_events DROP CONSTRAINT job_events_pkey;
ALTER TABLE job_events DROP CONSTRAINT job_events_event_id_key;
ALTER TABLE job_events ADD PRIMARY KEY (event_id);
