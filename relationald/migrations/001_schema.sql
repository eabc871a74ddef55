-- OmniAudit relational schema, version 1.
--
-- relationald applies every migration it does not find in schema_migrations,
-- in version order, each in the same transaction as its schema_migrations
-- row, under an advisory lock. Never edit a migration that has been released:
-- add the next NNN_name.sql instead. No BEGIN/COMMIT in these files.
--
-- Record ids (16 bytes, the hash of the kind's natural key) are the primary
-- keys of the per-record tables, which is what makes every write idempotent.
-- Times are timestamptz; git's own UTC offsets are kept next to them in
-- minutes. Text never holds U+0000: relationald stores U+FFFD instead.

CREATE TABLE sources (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,  -- the records' src: repository path or URL, CI project
    first_seen  timestamptz NOT NULL DEFAULT now()
);

-- One collection run of one collector on one source, from run.start and run.end.
CREATE TABLE runs (
    source_id     bigint NOT NULL REFERENCES sources (id),
    run_id        text NOT NULL,             -- the records' run
    collector     text NOT NULL,             -- git, junit, code, ...
    instance      text NOT NULL,             -- the records' col
    target        text,                      -- body.source
    status        text NOT NULL,             -- running | ok | failed | interrupted
    started       timestamptz,
    finished      timestamptz,
    duration      double precision,          -- seconds
    counts        jsonb,                     -- records sent per kind
    config        jsonb,
    error         text,
    start_record  bytea,
    end_record    bytea,
    PRIMARY KEY (source_id, run_id, collector)
);
CREATE INDEX runs_started ON runs (source_id, started);

CREATE TABLE commits (
    id               bytea PRIMARY KEY CHECK (length (id) = 16),
    source_id        bigint NOT NULL REFERENCES sources (id),
    sha              text NOT NULL,
    parents          text[] NOT NULL,
    author_name      text NOT NULL,
    author_email     text NOT NULL,
    author_time      timestamptz NOT NULL,
    author_tz        smallint NOT NULL,      -- UTC offset, minutes
    committer_name   text NOT NULL,
    committer_email  text NOT NULL,
    committer_time   timestamptz NOT NULL,
    committer_tz     smallint NOT NULL,
    message          text NOT NULL,
    files_changed    integer NOT NULL,       -- first-parent numstat, no renames
    insertions       integer NOT NULL,
    deletions        integer NOT NULL,
    raw              jsonb,                  -- original bytes of fields that were not UTF-8
    run_id           text NOT NULL,          -- the run that first stored it
    UNIQUE (source_id, sha)
);
CREATE INDEX commits_author_time ON commits (source_id, author_time);
CREATE INDEX commits_author ON commits (source_id, author_email);

CREATE TABLE commit_files (
    commit_id   bytea NOT NULL REFERENCES commits (id) ON DELETE CASCADE,
    path        text NOT NULL,
    insertions  integer,                     -- NULL for binary files
    deletions   integer,
    is_binary   boolean NOT NULL DEFAULT false,
    PRIMARY KEY (commit_id, path)
);

-- Mutable state: a later observation (record ts) replaces an earlier one.
CREATE TABLE branches (
    id          bytea PRIMARY KEY CHECK (length (id) = 16),
    source_id   bigint NOT NULL REFERENCES sources (id),
    name        text NOT NULL,
    target      text NOT NULL,               -- sha the branch points to
    head        boolean NOT NULL,
    observed    timestamptz NOT NULL,        -- record ts of the state stored
    first_seen  timestamptz NOT NULL DEFAULT now(),
    updated     timestamptz NOT NULL DEFAULT now(),
    run_id      text NOT NULL,
    UNIQUE (source_id, name)
);

CREATE TABLE tags (
    id            bytea PRIMARY KEY CHECK (length (id) = 16),
    source_id     bigint NOT NULL REFERENCES sources (id),
    name          text NOT NULL,
    target        text NOT NULL,
    annotated     boolean NOT NULL,
    tagger_name   text,
    tagger_email  text,
    tagger_time   timestamptz,
    message       text,
    observed      timestamptz NOT NULL,
    updated       timestamptz NOT NULL DEFAULT now(),
    run_id        text NOT NULL,
    UNIQUE (source_id, name)
);

CREATE TABLE ci_builds (
    id          bytea PRIMARY KEY CHECK (length (id) = 16),
    source_id   bigint NOT NULL REFERENCES sources (id),
    pipeline    text NOT NULL,
    build_id    text NOT NULL,
    status      text NOT NULL,               -- success | failure | cancelled | other
    system      text,
    branch      text,
    sha         text,
    started     timestamptz,
    finished    timestamptz,
    duration    double precision,            -- seconds
    trigger     text,
    tests       jsonb,                       -- {total, passed, failed, error, skipped}
    observed    timestamptz NOT NULL,
    updated     timestamptz NOT NULL DEFAULT now(),
    run_id      text NOT NULL,
    UNIQUE (source_id, pipeline, build_id)
);
CREATE INDEX ci_builds_week ON ci_builds (source_id, pipeline, started);

CREATE TABLE ci_tests (
    id               bytea PRIMARY KEY CHECK (length (id) = 16),
    source_id        bigint NOT NULL REFERENCES sources (id),
    suite            text NOT NULL,
    class            text,
    name             text NOT NULL,
    status           text NOT NULL,          -- passed | failed | error | skipped
    duration         double precision NOT NULL,
    pipeline         text,
    build_id         text,
    file             text,
    failure_type     text,
    failure_message  text,
    flaky            boolean,
    observed         timestamptz NOT NULL,
    run_id           text NOT NULL
);
CREATE INDEX ci_tests_case ON ci_tests (source_id, suite, class, name, observed);
CREATE INDEX ci_tests_build ON ci_tests (source_id, pipeline, build_id);

CREATE TABLE code_stats (
    id          bytea PRIMARY KEY CHECK (length (id) = 16),
    source_id   bigint NOT NULL REFERENCES sources (id),
    rev         text NOT NULL,
    language    text NOT NULL,
    path        text,                        -- NULL: the totals of the language
    files       integer NOT NULL,
    blank       bigint NOT NULL,
    comment     bigint NOT NULL,
    code        bigint NOT NULL,
    observed    timestamptz NOT NULL,
    run_id      text NOT NULL
);
CREATE INDEX code_stats_rev ON code_stats (source_id, rev, language);

-- Records PostgreSQL refused for their content (a value out of range, a key
-- too long for an index...), kept with the error and the record as JSON.
-- Keyed on the record id, so a redelivered reject stays one row.
CREATE TABLE rejected_records (
    record_id   bytea PRIMARY KEY,
    kind        text NOT NULL,
    source      text NOT NULL,
    error       text NOT NULL,
    sqlstate    text,
    record      jsonb NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 1
);
CREATE INDEX rejected_records_seen ON rejected_records (last_seen);

-- ---------------------------------------------------------------------------
-- Views for the dashboards. Days and weeks are UTC; weeks start on Monday.

-- Per repository and author (by e-mail; the name is the latest one used).
CREATE VIEW contributors AS
SELECT s.name AS source,
       c.author_email,
       (array_agg (c.author_name ORDER BY c.author_time DESC, c.sha))[1] AS author_name,
       count(*) AS commits,
       count(*) FILTER (WHERE cardinality (c.parents) > 1) AS merges,
       sum(c.insertions) AS insertions,
       sum(c.deletions) AS deletions,
       min(c.author_time) AS first_commit,
       max(c.author_time) AS last_commit
FROM commits c
JOIN sources s ON s.id = c.source_id
GROUP BY s.name, c.author_email;

CREATE VIEW commit_activity_daily AS
SELECT s.name AS source,
       (c.author_time AT TIME ZONE 'UTC')::date AS day,
       count(*) AS commits,
       count(DISTINCT c.author_email) AS authors,
       sum(c.insertions) AS insertions,
       sum(c.deletions) AS deletions
FROM commits c
JOIN sources s ON s.id = c.source_id
GROUP BY s.name, (c.author_time AT TIME ZONE 'UTC')::date;

CREATE VIEW commit_activity_weekly AS
SELECT s.name AS source,
       date_trunc('week', c.author_time AT TIME ZONE 'UTC')::date AS week,
       count(*) AS commits,
       count(DISTINCT c.author_email) AS authors,
       sum(c.insertions) AS insertions,
       sum(c.deletions) AS deletions
FROM commits c
JOIN sources s ON s.id = c.source_id
GROUP BY s.name, date_trunc('week', c.author_time AT TIME ZONE 'UTC')::date;

-- success_rate = success / (builds that were not cancelled); the week is the
-- build's start (else its end, else when it was observed).
CREATE VIEW build_success_rate AS
SELECT s.name AS source,
       b.pipeline,
       date_trunc('week', coalesce (b.started, b.finished, b.observed) AT TIME ZONE 'UTC')::date
           AS week,
       count(*) AS builds,
       count(*) FILTER (WHERE b.status = 'success') AS succeeded,
       count(*) FILTER (WHERE b.status = 'failure') AS failed,
       count(*) FILTER (WHERE b.status = 'cancelled') AS cancelled,
       round(count(*) FILTER (WHERE b.status = 'success')::numeric
             / nullif (count(*) FILTER (WHERE b.status <> 'cancelled'), 0), 4) AS success_rate
FROM ci_builds b
JOIN sources s ON s.id = b.source_id
GROUP BY s.name, b.pipeline,
         date_trunc('week', coalesce (b.started, b.finished, b.observed) AT TIME ZONE 'UTC')::date;

-- Durations of the runs that ran (skipped excluded). Order by avg_duration.
CREATE VIEW slowest_tests AS
SELECT s.name AS source,
       t.suite, t.class, t.name,
       count(*) AS runs,
       avg(t.duration) AS avg_duration,
       max(t.duration) AS max_duration,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY t.duration) AS p95_duration,
       max(t.observed) AS last_run
FROM ci_tests t
JOIN sources s ON s.id = t.source_id
WHERE t.status <> 'skipped'
GROUP BY s.name, t.suite, t.class, t.name;

-- A test is flaky when it passed on a rerun (flaky = true) or when its
-- outcome flips between consecutive runs (passed <-> failed/error, in
-- observation order). flakiness = (flaky runs + flips) / runs. Only tests
-- with at least one of either are listed. Order by flakiness.
CREATE VIEW flakiest_tests AS
WITH ordered AS (
    SELECT t.source_id, t.suite, t.class, t.name, t.status, coalesce (t.flaky, false) AS flaky,
           lag(t.status) OVER (PARTITION BY t.source_id, t.suite, t.class, t.name
                               ORDER BY t.observed, t.id) AS previous
    FROM ci_tests t
    WHERE t.status IN ('passed', 'failed', 'error')
)
SELECT s.name AS source,
       o.suite, o.class, o.name,
       count(*) AS runs,
       count(*) FILTER (WHERE o.status = 'passed') AS passed,
       count(*) FILTER (WHERE o.status <> 'passed') AS failed,
       count(*) FILTER (WHERE o.flaky) AS flaky_runs,
       count(*) FILTER (WHERE o.previous IS NOT NULL
                        AND (o.previous = 'passed') <> (o.status = 'passed')) AS flips,
       round((count(*) FILTER (WHERE o.flaky)
              + count(*) FILTER (WHERE o.previous IS NOT NULL
                                 AND (o.previous = 'passed') <> (o.status = 'passed')))::numeric
             / count(*), 4) AS flakiness
FROM ordered o
JOIN sources s ON s.id = o.source_id
GROUP BY s.name, o.suite, o.class, o.name
HAVING count(*) FILTER (WHERE o.flaky) > 0
    OR count(*) FILTER (WHERE o.previous IS NOT NULL
                        AND (o.previous = 'passed') <> (o.status = 'passed')) > 0;
