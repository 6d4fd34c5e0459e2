-- core-jobs: `failed_jobs` keeps an exact row count, so `FailedJobs::count` (and any monitoring
-- that polls it) costs O(1) however many failures pile up.
SELECT rustforge_track_row_count('failed_jobs');
