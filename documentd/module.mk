# documentd: the MongoDB writer (docmap: record -> BSON, docstore: the store).
DOCUMENTD_CLASSES := documentd/docmap.c documentd/idmigrate.c documentd/docstore.c
$(eval $(call program,documentd,documentd/main.c $(DOCUMENTD_CLASSES),libmongoc-1.0 libnats))
$(eval $(call selftest,documentd-selftest,documentd/selftest.c $(DOCUMENTD_CLASSES),libmongoc-1.0))
