# pg/: the PostgreSQL layer of the two PostgreSQL writers (connection, COPY,
# migrations, shared SQL); in libomni.a, self-tests in pg-selftest.
$(eval $(call selftest,pg-selftest,pg/selftest.c,))
# shared_sql.c embeds pg/sql/*.sql (assembler .incbin, paths from the
# repository root).
$(call obj,pg/shared_sql.c): $(wildcard pg/sql/*.sql)
$(call obj,pg/shared_sql.c): CFLAGS += -Wa,-I$(CURDIR)
