-- metricsd schema, version 8, both modes: a batch marks only the host days
-- its writer has not marked since the last refresh.
--
-- Version 7 marked every (source, day) pair of every batch of host points:
-- an upsert and a new gen per pair and batch, though the batch before had
-- marked the pair already, most of the time. The call cost the server
-- 0.4 ms of CPU for one pair and 0.7-1 ms for 50 (a SQL function's INSERT
-- is planned at every call), against about 4.5 ms for a whole batch of
-- 1,000 points (docs/performance.md, "Issue 15"). A mark is needed again
-- only when a refresh may have deleted it, so:
--
-- - host_daily_epoch: a refresh that may delete marks takes a new value
--   first (nextval, which every session sees at once: a sequence is not
--   transactional), then waits until no batch holds the writers' lock
--   (below), then goes on as in version 7.
-- - A writer keeps, in memory, the pairs it marked in committed batches
--   under the epoch it read; a batch calls metricsd_host_daily_mark_new
--   first in its transaction with that epoch and the pairs not among them.
--   The call holds the writers' lock (shared, to the end of the batch) and
--   reads the epoch: the same one, it marks the new pairs and the writer
--   skips the others; another one, it marks nothing and the writer marks
--   every pair of the batch (metricsd_host_daily_mark) and forgets the old
--   epoch's pairs.
--
-- Why that is exact: a skipped pair was marked by a batch of this writer
-- that committed under the same epoch, and no mark is deleted but by a
-- refresh. A refresh that read the marks after a new epoch: every batch
-- that read the old one had committed when it read them (it waited for
-- the writers' lock), so it counts their points; a batch that read the new
-- epoch marked its pairs with a new gen, which version 7's gen check keeps
-- pending. The lock is held by the refresh only for that wait, not while it
-- computes: a writer waits at most for the batch in flight of another.

CREATE SEQUENCE host_daily_epoch;
-- Called once: nextval now moves last_value (a new sequence's first does not)
SELECT setval ('host_daily_epoch', 1);

-- Returns the epoch; marks `sources`, `days` only when it is `known`
CREATE FUNCTION metricsd_host_daily_mark_new (known bigint, sources text[], days date[])
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    epoch bigint;
BEGIN
    PERFORM pg_advisory_xact_lock_shared (5723352100006884408);  -- "OmniMetR" + 1
    -- After the lock: a refresh's new epoch is seen by every batch it does
    -- not wait for
    SELECT last_value INTO epoch FROM host_daily_epoch;
    IF epoch = known AND cardinality (sources) > 0 THEN
        INSERT INTO host_daily_pending AS q (source, day)
        SELECT DISTINCT s, d FROM unnest (sources, days) u (s, d) ORDER BY 1, 2
        ON CONFLICT (source, day) DO UPDATE SET gen = nextval ('host_daily_gen');
    END IF;
    RETURN epoch;
END $$;

-- The refresh: version 7's, after the new epoch and the wait (it takes the
-- same refresh lock again, which this transaction holds)
ALTER FUNCTION metricsd_host_daily_refresh (integer) RENAME TO metricsd_host_daily_compute_pending;

CREATE FUNCTION metricsd_host_daily_refresh (max_days integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    lock_wait text := current_setting ('lock_timeout');
BEGIN
    IF NOT pg_try_advisory_xact_lock (5723352100006884407) THEN  -- "OmniMetR"
        RETURN -1;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM host_daily_pending
                   WHERE day < (now () AT TIME ZONE 'UTC')::date) THEN
        RETURN 0;
    END IF;
    -- Writers mark again; those of the old epoch are waited out. A session
    -- lock, so that it ends here (a transaction's lasts to its end), given
    -- back on any error. Every new batch queues behind this wait: a batch
    -- in flight for over 2 s (a stalled writer) ends it, for a later pass,
    -- rather than stall every writer
    PERFORM nextval ('host_daily_epoch');
    BEGIN
        PERFORM set_config ('lock_timeout', '2s', true);
        PERFORM pg_advisory_lock (5723352100006884408);
        PERFORM pg_advisory_unlock (5723352100006884408);
    EXCEPTION
        WHEN lock_not_available THEN
            RETURN -1;
        WHEN others OR query_canceled THEN
            PERFORM pg_advisory_unlock (5723352100006884408);
            RAISE;
    END;
    PERFORM set_config ('lock_timeout', lock_wait, true);
    -- Its statements see what was committed when each began: every batch
    -- of the old epoch
    RETURN metricsd_host_daily_compute_pending (max_days);
END $$;
