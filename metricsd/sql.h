/*  sql: metricsd's SQL files (metricsd/sql/), embedded into the binary at
    build time (pg/embed_sql.sh), each a NUL-terminated string. The daemon needs no file at
    run time, and the SQL stays in .sql files that psql can run as they are. */
#ifndef OMNI_METRICSD_SQL_H
#define OMNI_METRICSD_SQL_H

extern const char sql_points_native[];      //  001_points.native.sql
extern const char sql_points_timescaledb[]; //  001_points.timescaledb.sql
extern const char sql_access_native[];      //  003_access.native.sql
extern const char sql_access_timescaledb[]; //  003_access.timescaledb.sql
extern const char sql_series_native[];      //  004_series.native.sql
extern const char sql_series_timescaledb[]; //  004_series.timescaledb.sql
extern const char sql_points_view[];        //  005_points_view.sql
extern const char sql_series_view[];        //  006_series_view.sql
extern const char sql_host_daily[];         //  007_host_daily.sql
extern const char sql_host_daily_epoch[];   //  008_host_daily_epoch.sql
extern const char sql_views[];              //  views.sql
extern const char sql_rollups[];            //  rollups.timescaledb.sql
extern const char sql_rollup_views[];       //  rollup_views.sql

#endif
