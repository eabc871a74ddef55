# pg/: the PostgreSQL layer of the two PostgreSQL writers (connection, COPY,
# migrations, shared SQL); in libomni.a, self-tests in pg-selftest.
$(eval $(call selftest,pg-selftest,pg/selftest.c,))

# The SQL of pg/sql/, embedded by pg/embed_sql.sh, the one embedding of the
# project's .sql files (relationald and metricsd use it too).
PG_SHARED_SQL := $(BUILD)/gen/pg/shared_sql.c
LIBOMNI_SRCS += $(PG_SHARED_SQL)
$(PG_SHARED_SQL): $(EMBED_SQL) pg/sql/access.sql pg/module.mk
	@mkdir -p $(@D)
	bash $(EMBED_SQL) files pg/shared_sql.h omni_shared_sql_access=pg/sql/access.sql > $@.tmp
	mv $@.tmp $@
