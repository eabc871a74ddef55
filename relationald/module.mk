# relationald: the PostgreSQL writer.
$(eval $(call selftest,relationald-selftest,relationald/selftest.c,))
