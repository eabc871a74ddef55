# metricsd: the time-series writer. Its SQL files are embedded into the
# binary by metricsd/sql.c (assembler .incbin, paths from the repository root).
METRICSD_SQL := $(wildcard metricsd/sql/*.sql)
# testrec.c builds records for the classes' self-tests, which live in the
# classes' own files (as everywhere): only the self-test runner links it.
METRICSD_CLASSES := metricsd/derive.c metricsd/tsschema.c metricsd/pointstore.c \
                    metricsd/hostdaily.c \
                    metricsd/sql.c

$(call obj,metricsd/sql.c): $(METRICSD_SQL)
$(call obj,metricsd/sql.c): CFLAGS += -Wa,-I$(CURDIR)

$(eval $(call program,metricsd,metricsd/main.c $(METRICSD_CLASSES),))
$(eval $(call selftest,metricsd-selftest,metricsd/selftest.c $(METRICSD_CLASSES) metricsd/testrec.c,))
