INGESTD_CLASSES := ingestd/journal.c ingestd/jsjournal.c ingestd/jsrejects.c ingestd/peers.c ingestd/route.c \
                   ingestd/tap.c ingestd/intake.c ingestd/delivery.c ingestd/server.c
# jsjournal.c (journal: jetstream) needs libnats.
$(eval $(call program,ingestd,ingestd/main.c $(INGESTD_CLASSES),libnats))
$(eval $(call selftest,ingestd-selftest,ingestd/selftest.c $(INGESTD_CLASSES),libnats))
