# relationald: the PostgreSQL writer. Its migrations and statements are
# embedded into the binary from C files generated at build time
# (pg/embed_sql.sh).
RELATIONALD_MIGRATIONS := $(sort $(wildcard relationald/migrations/*.sql))
RELATIONALD_GEN := $(BUILD)/gen/relationald/migrations.c
# relstore's statements, relationald/sql/<name>.sql, as relsql_<name> (sql.h)
RELATIONALD_SQL := $(sort $(wildcard relationald/sql/*.sql))
RELATIONALD_SQL_GEN := $(BUILD)/gen/relationald/sql.c
RELATIONALD_CLASSES := relationald/schema.c relationald/relstore.c $(RELATIONALD_GEN) \
                       $(RELATIONALD_SQL_GEN)

# The migrations include shared SQL (`\ir ../../pg/sql/...`)
$(RELATIONALD_GEN): $(EMBED_SQL) $(RELATIONALD_MIGRATIONS) $(wildcard pg/sql/*.sql) \
                    relationald/module.mk
	@mkdir -p $(@D)
	bash $(EMBED_SQL) migrations relationald/schema.h schema_migrations \
	    $(RELATIONALD_MIGRATIONS) > $@.tmp
	mv $@.tmp $@

$(RELATIONALD_SQL_GEN): $(EMBED_SQL) $(RELATIONALD_SQL) relationald/module.mk
	@mkdir -p $(@D)
	bash $(EMBED_SQL) files relationald/sql.h \
	    $(foreach f,$(RELATIONALD_SQL),relsql_$(basename $(notdir $(f)))=$(f)) > $@.tmp
	mv $@.tmp $@

$(eval $(call program,relationald,relationald/main.c $(RELATIONALD_CLASSES),libnats))
$(eval $(call selftest,relationald-selftest,relationald/selftest.c $(RELATIONALD_CLASSES),))
