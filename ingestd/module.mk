INGESTD_CLASSES := ingestd/journal.c ingestd/peers.c ingestd/route.c ingestd/tap.c ingestd/intake.c \
                   ingestd/delivery.c ingestd/server.c
$(eval $(call program,ingestd,ingestd/main.c $(INGESTD_CLASSES),))
$(eval $(call selftest,ingestd-selftest,ingestd/selftest.c $(INGESTD_CLASSES),))
