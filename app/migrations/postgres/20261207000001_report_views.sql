-- How many times each job's report was read (GET /v1/jobs/{id}/report). Reads are counted in the
-- cache and moved here by the scheduled `forgerun.report_views` job (app/src/jobs/views.rs), so a
-- read never writes to the database. A table of its own, not a column of `jobs`: the flush never
-- locks the row that transitions compare-and-set.
-- region: report-views-table
CREATE TABLE job_report_views (
    job_id  TEXT PRIMARY KEY REFERENCES jobs (id) ON DELETE CASCADE,
    views   BIGINT NOT NULL
);
-- endregion: report-views-table
