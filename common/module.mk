# The self-tests of the classes shared by every daemon (common/).
# jetstream.c and the writer daemons' JetStream delivery need libnats.
$(eval $(call selftest,common-selftest,common/selftest.c,libnats))
# shared_sql.c embeds common/sql/*.sql (assembler .incbin, paths from the
# repository root).
$(call obj,common/shared_sql.c): $(wildcard common/sql/*.sql)
$(call obj,common/shared_sql.c): CFLAGS += -Wa,-I$(CURDIR)
