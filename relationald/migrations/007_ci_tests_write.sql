-- ci_tests keeps what its readers use and no more: every test result of every
-- build lands here, so each index and constraint is paid once per result
-- (docs/performance.md, "ci_tests' layout": the two lookup indexes and the
-- foreign key were two thirds of PostgreSQL's work for a result).
--
-- - ci_tests_case (source_id, suite, class, name, observed): no view or
--   report reads by it. slowest_tests and flakiest_tests group the whole
--   table (a scan and a sort or hash either way); omni-report reads a
--   source's results in a time range. Each result put a wide key (three
--   texts) at a random place of it.
-- - ci_tests_build (source_id, pipeline, build_id): omni-report used it only
--   for its leading source_id. It joins ci_builds from the results, by
--   ci_builds' own key.
-- - ci_tests_observed (source_id, observed) takes their place: a source's
--   results in a time range (omni-report), a source's rows (the access
--   policy, the delete check below). A source's results arrive in about
--   time order, so its entries go to the end of the source's range.
-- - The foreign key to sources: a check of sources per inserted row (a
--   query and a row lock each). relationald takes the batch's sources with
--   FOR KEY SHARE once per batch instead (relstore.c), and the trigger below
--   refuses to delete (or renumber) a source that still has results, as the
--   key did. Sources are never deleted by OmniAudit itself.
DROP INDEX ci_tests_case;
DROP INDEX ci_tests_build;
CREATE INDEX ci_tests_observed ON ci_tests (source_id, observed);
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
