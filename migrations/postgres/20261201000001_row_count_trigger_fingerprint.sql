-- core-db: a tracked table's counter is trusted only while its triggers are exactly as they were
-- when the count was seeded.
--
-- Disabling a trigger and enabling it again (`ALTER TABLE … DISABLE TRIGGER …`, then `ENABLE`)
-- leaves every trigger enabled, but the rows written in between were never counted. Each such
-- change rewrites the trigger's `pg_trigger` row, which gives it a new `xmin`; so the seeding
-- records the three triggers' OIDs, `xmin`s and states, and `Database::row_count` uses the
-- counter only while they still match. Otherwise it counts with `COUNT(*)` until
-- `Database::track_row_count` re-seeds.
CREATE TABLE rustforge_row_count_tracking (
    relid    OID  PRIMARY KEY,
    triggers TEXT NOT NULL
);

-- The current fingerprint of a table's three row-count triggers (NULL when it has none).
CREATE FUNCTION rustforge_row_count_triggers(rel OID) RETURNS TEXT
LANGUAGE sql STABLE AS $$
    SELECT string_agg(t.oid::text || ':' || t.xmin::text || ':' || t.tgenabled::text, ','
                      ORDER BY t.tgname)
    FROM pg_trigger t
    WHERE t.tgrelid = rel
      AND t.tgname IN ('rustforge_row_count_insert', 'rustforge_row_count_delete',
                       'rustforge_row_count_truncate')
$$;

-- As before (see 20261124000001_row_counts.sql), and records the triggers' fingerprint with the
-- seed.
CREATE OR REPLACE FUNCTION rustforge_track_row_count(rel REGCLASS) RETURNS BIGINT
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
        ELSIF state <> 'O' THEN
            EXECUTE format('ALTER TABLE %s ENABLE TRIGGER %I', rel, trigger_name);
        END IF;
    END LOOP;
    DELETE FROM rustforge_row_counts
    WHERE relid = rel OR NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = relid);
    DELETE FROM rustforge_row_count_tracking
    WHERE relid = rel OR NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = relid);
    EXECUTE format('SELECT count(*) FROM %s', rel) INTO seeded;
    INSERT INTO rustforge_row_counts (relid, n) VALUES (rel, seeded);
    INSERT INTO rustforge_row_count_tracking (relid, triggers)
    VALUES (rel, rustforge_row_count_triggers(rel));
    RETURN seeded;
END
$$;

-- As before, and forgets the fingerprint.
CREATE OR REPLACE FUNCTION rustforge_untrack_row_count(rel REGCLASS) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS rustforge_row_count_insert ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS rustforge_row_count_delete ON %s', rel);
    EXECUTE format('DROP TRIGGER IF EXISTS rustforge_row_count_truncate ON %s', rel);
    PERFORM rustforge_row_count_lock(rel);
    DELETE FROM rustforge_row_counts WHERE relid = rel;
    DELETE FROM rustforge_row_count_tracking WHERE relid = rel;
END
$$;

-- Tables tracked before this migration have no fingerprint: re-seed those whose three triggers
-- are enabled (their counter may already have missed writes); the others count with COUNT(*)
-- until tracked again.
SELECT rustforge_track_row_count(c.oid::REGCLASS)
FROM pg_class c
WHERE c.oid IN (SELECT DISTINCT relid FROM rustforge_row_counts)
  AND (SELECT count(*) FROM pg_trigger t
       WHERE t.tgrelid = c.oid
         AND t.tgname IN ('rustforge_row_count_insert', 'rustforge_row_count_delete',
                          'rustforge_row_count_truncate')
         AND t.tgenabled = 'O') = 3;
