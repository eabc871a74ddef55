-- metricsd schema, version 1, for PostgreSQL with TimescaleDB (>= 2.11).
--
-- The same table as the native variant, made a hypertable: TimescaleDB
-- creates its chunks itself, for any time, so metricsd makes no partitions.
-- The chunk interval follows metricsd.partition_interval at every start
-- (set_chunk_time_interval; it applies to chunks created from then on).
-- Applied once, like every migration (see 001_points.native.sql).

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE metricsd_settings (
    key    text PRIMARY KEY,
    value  text NOT NULL
);
INSERT INTO metricsd_settings VALUES ('mode', 'timescaledb');

CREATE TABLE points (
    time    timestamptz NOT NULL,
    name    text NOT NULL,
    value   double precision NOT NULL,
    source  text NOT NULL,
    tags    jsonb NOT NULL DEFAULT '{}'
);

-- Unique indexes of a hypertable must contain its time column: this one does.
CREATE UNIQUE INDEX points_key ON points (name, source, tags, time);

SELECT create_hypertable ('points', 'time', chunk_time_interval => INTERVAL '30 days',
                          create_default_indexes => false);

CREATE INDEX points_name_time ON points (name, time);
