INGESTD_CLASSES := ingestd/journal.c ingestd/jsjournal.c ingestd/peers.c ingestd/server.c
$(eval $(call program,ingestd,ingestd/main.c $(INGESTD_CLASSES),libnats))
$(eval $(call selftest,ingestd-selftest,ingestd/selftest.c $(INGESTD_CLASSES),libnats))
