# relationald: the PostgreSQL writer. Its migrations are embedded into the
# binary from a C file generated at build time.
RELATIONALD_MIGRATIONS := $(sort $(wildcard relationald/migrations/*.sql))
RELATIONALD_GEN := $(BUILD)/gen/relationald/migrations.c
RELATIONALD_CLASSES := relationald/schema.c relationald/relstore.c $(RELATIONALD_GEN)

# The migrations include shared SQL (`\ir ../../pg/sql/...`)
$(RELATIONALD_GEN): relationald/gen_migrations.sh $(RELATIONALD_MIGRATIONS) \
                    $(wildcard pg/sql/*.sql) relationald/module.mk
	@mkdir -p $(@D)
	bash relationald/gen_migrations.sh $(RELATIONALD_MIGRATIONS) > $@.tmp
	mv $@.tmp $@

$(eval $(call program,relationald,relationald/main.c $(RELATIONALD_CLASSES),))
$(eval $(call selftest,relationald-selftest,relationald/selftest.c $(RELATIONALD_CLASSES),))
