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

-- Starts (or re-seeds) tracking: creates the triggers that are missing, enables disabled ones
-- (CREATE and ENABLE TRIGGER let reads go on, unlike DROP TRIGGER), and seeds the count while the
-- table's SHARE ROW EXCLUSIVE lock keeps writers out. Drops the rows of tables that no longer
-- exist. Returns the seeded count.
CREATE FUNCTION rustforge_track_row_count(rel REGCLASS) RETURNS BIGINT
LANGUAGE plpgsql AS $$
DECLARE
    trigger_name TEXT;
    timing TEXT;
    state "char";
    seeded BIGINT;
BEGIN
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', rel);
    PERFORM rustforge_row_count_lock(rel);
    FOR trigger_name, timing IN VALUES
        ('rustforge_row_count_insert',
         'AFTER INSERT ON %s REFERENCING NEW TABLE AS rustforge_new_rows FOR EACH STATEMENT'),
        ('rustforge_row_count_delete',
         'AFTER DELETE ON %s REFERENCING OLD TABLE AS rustforge_old_rows FOR EACH STATEMENT'),
        ('rustforge_row_count_truncate', 'AFTER TRUNCATE ON %s FOR EACH STATEMENT')
    LOOP
        SELECT tgenabled INTO state FROM pg_trigger WHERE tgrelid = rel AND tgname = trigger_name;
        IF NOT FOUND THEN
            EXECUTE format('CREATE TRIGGER %I ' || timing
                           || ' EXECUTE FUNCTION rustforge_row_count_changed()', trigger_name, rel);
        ELSIF state = 'D' THEN
            EXECUTE format('ALTER TABLE %s ENABLE TRIGGER %I', rel, trigger_name);
        END IF;
    END LOOP;
    DELETE FROM rustforge_row_counts
    WHERE relid = rel OR NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = relid);
    EXECUTE format('SELECT count(*) FROM %s', rel) INTO seeded;
    INSERT INTO rustforge_row_counts (relid, n) VALUES (rel, seeded);
    RETURN seeded;
END
$$;

-- Stops tracking: drops the triggers and the table's rows.
CREATE FUNCTION rustforge_untrack_row_count(rel REGCLASS) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS rustforge_row_count_insert ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS rustforge_row_count_delete ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS rustforge_row_count_truncate ON %s', rel);
    PERFORM rustforge_row_count_lock(rel);
    DELETE FROM rustforge_row_counts WHERE relid = rel;
END
$$;
