-- ci_tests keeps what its readers use and no more: every test result of every
-- build lands here, so each index and constraint is paid once per result
-- (docs/performance.md, "ci_tests' layout": the case index and the foreign
-- key were more than half of PostgreSQL's work for a result).
--
-- - ci_tests_case (source_id, suite, class, name, observed): no view reads
--   by it (slowest_tests and flakiest_tests group the whole table: a scan
--   either way); each result put a wide key (three texts) at a random place
--   of it. omni-report's test count read it as a covering index; it reads
--   the source's rows by ci_tests_build now.
-- - ci_tests_build (source_id, pipeline, build_id) stays: omni-report reads
--   a source's results by it and a build's results (flakiest, per failed
--   commit) by it, the delete check below by its source_id. A build's
--   results come together, so they land on the same few pages.
-- - The foreign key to sources: a check of sources per inserted row (a
--   query and a row lock each). relationald takes the batch's sources with
--   FOR KEY SHARE once per batch instead (relstore.c), and the trigger below
--   refuses to delete (or renumber) a source that still has results, as the
--   key did. Sources are never deleted by OmniAudit itself.
DROP INDEX ci_tests_case;
ALTER TABLE ci_tests DROP CONSTRAINT ci_tests_source_id_fkey;

-- Security definer: row-level security must not hide rows from the check
CREATE FUNCTION ci_tests_keep_source () RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path FROM CURRENT AS $$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.id <> OLD.id)
       AND EXISTS (SELECT 1 FROM ci_tests WHERE source_id = OLD.id) THEN
        RAISE foreign_key_violation USING
            MESSAGE = format ('source %s (%s) still has ci_tests rows', OLD.id, OLD.name);
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ci_tests_keep_source BEFORE DELETE OR UPDATE OF id ON sources
    FOR EACH ROW EXECUTE FUNCTION ci_tests_keep_source ();
