-- OmniAudit per-project access: the roles, the grants table and the policy
-- function, shared by relationald's and metricsd's migrations (both embed
-- this one file), so it works whether the two share a database or not.
-- Idempotent: whichever migration runs first creates, the other finds.
--
--   omni_reader  NOLOGIN, reads every row of every source
--   omni_viewer  NOLOGIN, SELECT on the tables and views, rows restricted
--                to the sources its members were granted
--   omni_access_grants (role, pattern): role (or any role that is a member
--                of it, through groups too) may read the sources whose
--                name is LIKE pattern, e.g. 'github.com/acme/%'
--
-- `omnictl grant ROLE PATTERN` adds a row and makes ROLE a member of
-- omni_viewer; `omnictl revoke` removes the row. A role with no grant sees
-- no row. The writers own the tables and so bypass row-level security
-- (it is enabled, not forced).

-- relationald and metricsd each hold their own migration lock, and may
-- migrate one database at the same moment: this part takes turns under a
-- lock of its own ("OmniAcc"; advisory locks are per database).
SELECT pg_advisory_xact_lock (5723297880567706467);

-- Roles belong to the cluster, not to a database: two databases migrated at
-- the same moment may both try to create them. The loser's CREATE ROLE
-- waits for the winner's commit, then fails on the catalog's unique index
-- (unique_violation) or finds the name taken (duplicate_object): both mean
-- the role is there.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['omni_reader', 'omni_viewer'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format ('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION
                WHEN duplicate_object OR unique_violation THEN
                    NULL;
                WHEN insufficient_privilege THEN
                    RAISE EXCEPTION 'role % does not exist and % may not create it', r, current_user
                        USING HINT = 'create it once per cluster as a superuser: CREATE ROLE '
                                     || r || ' NOLOGIN';
            END;
        END IF;
    END LOOP;
END
$$;

CREATE TABLE IF NOT EXISTS omni_access_grants (
    role     name NOT NULL,                    -- a role of the cluster (by name)
    pattern  text NOT NULL CHECK (pattern <> ''),  -- LIKE pattern on the source name
    granted  timestamptz NOT NULL DEFAULT now (),
    PRIMARY KEY (role, pattern)
);
REVOKE ALL ON omni_access_grants FROM PUBLIC;

-- The LIKE patterns of the sources `who` may read: {'%'} for omni_reader's
-- members and the function's owner (the writer that made it, which owns the
-- tables), the patterns granted to `who` or to any role it is a member of,
-- or none. Policies and views call it once per query as
--   source LIKE ANY ((SELECT omni_visible_patterns (current_user))::text[])
-- (the sub-select makes it an init plan, not a call per row).
--
-- SECURITY DEFINER so that viewers need no right on the grants table; its
-- current_user is then the owner, hence the argument. Asked about a role
-- the session cannot become, it answers nothing, so no one reads another
-- team's patterns through it. Grants of roles dropped since are skipped
-- (pg_has_role would fail on a name that is not a role). The search path
-- is pinned (pg_catalog first, pg_temp last) against shadowing objects.
DO $do$
BEGIN
    IF to_regprocedure ('omni_visible_patterns(name)') IS NULL THEN
        EXECUTE format ($f$
CREATE FUNCTION omni_visible_patterns (who name) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, %I, pg_temp AS $b$
    SELECT CASE
        WHEN NOT pg_has_role (session_user, who, 'MEMBER') THEN '{}'::text[]
        WHEN pg_has_role (who, 'omni_reader', 'MEMBER')
             OR pg_has_role (who, current_user, 'MEMBER') THEN ARRAY['%%']
        ELSE coalesce ((SELECT array_agg (DISTINCT g.pattern ORDER BY g.pattern)
                        FROM omni_access_grants g
                        JOIN pg_roles r ON r.rolname = g.role
                        WHERE pg_has_role (who, r.oid, 'MEMBER')), '{}'::text[])
    END
$b$
$f$, current_schema ());
    END IF;
END
$do$;
