# The self-tests of the classes shared by every daemon (common/).
$(eval $(call selftest,common-selftest,common/selftest.c,))
# shared_sql.c embeds common/sql/*.sql (assembler .incbin, paths from the
# repository root).
$(call obj,common/shared_sql.c): $(wildcard common/sql/*.sql)
$(call obj,common/shared_sql.c): CFLAGS += -Wa,-I$(CURDIR)
