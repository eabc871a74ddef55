# metricsd: the time-series writer. Its SQL files are embedded into the
# binary from a C file generated at build time (pg/embed_sql.sh), each under
# the name metricsd/sql.h declares.
METRICSD_SQL := sql_points_native=metricsd/sql/001_points.native.sql \
    sql_points_timescaledb=metricsd/sql/001_points.timescaledb.sql \
    sql_access_native=metricsd/sql/003_access.native.sql \
    sql_access_timescaledb=metricsd/sql/003_access.timescaledb.sql \
    sql_series_native=metricsd/sql/004_series.native.sql \
    sql_series_timescaledb=metricsd/sql/004_series.timescaledb.sql \
    sql_points_view=metricsd/sql/005_points_view.sql \
    sql_series_view=metricsd/sql/006_series_view.sql \
    sql_host_daily=metricsd/sql/007_host_daily.sql \
    sql_host_daily_epoch=metricsd/sql/008_host_daily_epoch.sql \
    sql_views=metricsd/sql/views.sql \
    sql_rollups=metricsd/sql/rollups.timescaledb.sql \
    sql_rollup_views=metricsd/sql/rollup_views.sql
METRICSD_GEN := $(BUILD)/gen/metricsd/sql.c
# testrec.c builds metricsd's kinds as records (testsupport/testrec.c) for the
# classes' self-tests, which live in the classes' own files (as everywhere):
# only the self-test runner links it.
METRICSD_CLASSES := metricsd/derive.c metricsd/tsschema.c metricsd/pointstore.c \
                    metricsd/hostdaily.c $(METRICSD_GEN)

$(METRICSD_GEN): $(EMBED_SQL) $(wildcard metricsd/sql/*.sql) metricsd/module.mk
	@mkdir -p $(@D)
	bash $(EMBED_SQL) files metricsd/sql.h $(METRICSD_SQL) > $@.tmp
	mv $@.tmp $@

$(eval $(call program,metricsd,metricsd/main.c $(METRICSD_CLASSES),libnats))
$(eval $(call selftest,metricsd-selftest,metricsd/selftest.c $(METRICSD_CLASSES) metricsd/testrec.c,))
