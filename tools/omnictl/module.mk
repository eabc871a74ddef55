# omnictl: the operator's status view (libcurl for the scrapes) and grants of
# per-project access in PostgreSQL (libpq, linked by every program).
# The top Makefile includes */module.mk one level deep only, so this file is
# included from tools/module.mk (`include tools/omnictl/module.mk`).
# replay and export read the archive (archiverd's file naming, archive.c),
# JSON with jansson and zstd with libzstd. rejects reads the rejects stream
# of journal: jetstream (libnats).
OMNICTL_CLASSES := tools/omnictl/promtext.c tools/omnictl/target.c tools/omnictl/status.c \
                   tools/omnictl/access.c tools/omnictl/jsonrec.c tools/omnictl/archread.c \
                   tools/omnictl/replay.c tools/omnictl/export.c tools/omnictl/rejects.c archiverd/archive.c archiverd/archive_ids.c archiverd/bloom.c archiverd/coldfile.c
OMNICTL_PKGS    := libcurl jansson libzstd libnats
$(eval $(call program,omnictl,tools/omnictl/main.c $(OMNICTL_CLASSES),$(OMNICTL_PKGS)))
$(eval $(call selftest,omnictl-selftest,tools/omnictl/selftest.c $(OMNICTL_CLASSES),$(OMNICTL_PKGS)))

