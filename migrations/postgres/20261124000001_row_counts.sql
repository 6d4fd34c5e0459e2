-- core-db: exact row counts in O(1) for the tables `Database::track_row_count` tracks.
--
-- Each tracked table has one seed row (its count when tracking began) and one delta row per
-- statement that inserted or deleted rows since, written by the table's statement-level triggers.
-- Writers only ever append, so they never wait on each other here. The count is the sum of the
-- table's rows; readers fold the deltas back into one row now and then
-- (`rustforge_row_count_compact`). Rows are keyed by the table's OID, so a renamed table keeps its
-- count.
CREATE TABLE rustforge_row_counts (
    relid OID    NOT NULL,
    n     BIGINT NOT NULL
);
CREATE INDEX rustforge_row_counts_relid_idx ON rustforge_row_counts (relid);

-- Serialises what rewrites a table's rows here (TRUNCATE, compaction, seeding) within a
-- transaction. The OID is shifted into int4's range for the two-key advisory lock.
CREATE FUNCTION rustforge_row_count_lock(rel OID) RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_xact_lock(1919312741, (rel::bigint - 2147483648)::int4)
$$;

-- The trigger function behind the three triggers of a tracked table: AFTER INSERT and AFTER
-- DELETE statements (with transition tables, so a bulk statement appends a single row) and
-- AFTER TRUNCATE.
CREATE FUNCTION rustforge_row_count_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    delta BIGINT;
BEGIN
    IF TG_OP = 'INSERT' THEN
        SELECT count(*) INTO delta FROM rustforge_new_rows;
    ELSIF TG_OP = 'DELETE' THEN
        SELECT -count(*) INTO delta FROM rustforge_old_rows;
    ELSE
        PERFORM rustforge_row_count_lock(TG_RELID);
        DELETE FROM rustforge_row_counts WHERE relid = TG_RELID;
        INSERT INTO rustforge_row_counts (relid, n) VALUES (TG_RELID, 0);
        RETURN NULL;
    END IF;
    IF delta <> 0 THEN
        INSERT INTO rustforge_row_counts (relid, n) VALUES (TG_RELID, delta);
    END IF;
    RETURN NULL;
END
$$;

-- Folds a table's rows into one. Skips (returns false) while another transaction holds the
-- table's lock; a delta committed meanwhile is not visible to the DELETE and stays as it is.
CREATE FUNCTION rustforge_row_count_compact(rel OID) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_try_advisory_xact_lock(1919312741, (rel::bigint - 2147483648)::int4) THEN
        RETURN false;
    END IF;
    WITH gone AS (
        DELETE FROM rustforge_row_counts WHERE relid = rel RETURNING n
    )
    INSERT INTO rustforge_row_counts (relid, n)
    SELECT rel, sum(n) FROM gone HAVING count(*) > 0;
    RETURN true;
END
$$;
