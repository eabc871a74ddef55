/*  sql: the .sql files as read-only data (embed.h). Paths are relative to
    the repository root, where make runs; module.mk makes this object depend
    on the files.                                                             */
#include "metricsd/sql.h"
#include "common/embed.h"

EMBED_FILE (sql_points_native, "metricsd/sql/001_points.native.sql")
EMBED_FILE (sql_points_timescaledb, "metricsd/sql/001_points.timescaledb.sql")
EMBED_FILE (sql_access_native, "metricsd/sql/003_access.native.sql")
EMBED_FILE (sql_access_timescaledb, "metricsd/sql/003_access.timescaledb.sql")
EMBED_FILE (sql_series_native, "metricsd/sql/004_series.native.sql")
EMBED_FILE (sql_series_timescaledb, "metricsd/sql/004_series.timescaledb.sql")
EMBED_FILE (sql_points_view, "metricsd/sql/005_points_view.sql")
EMBED_FILE (sql_series_view, "metricsd/sql/006_series_view.sql")
EMBED_FILE (sql_host_daily, "metricsd/sql/007_host_daily.sql")
EMBED_FILE (sql_views, "metricsd/sql/views.sql")
EMBED_FILE (sql_rollups, "metricsd/sql/rollups.timescaledb.sql")
EMBED_FILE (sql_rollup_views, "metricsd/sql/rollup_views.sql")
