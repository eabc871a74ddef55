# omnictl: the operator's status view (libcurl for the scrapes) and grants of
# per-project access in PostgreSQL (libpq, linked by every program).
# The top Makefile includes */module.mk one level deep only, so this file is
# included from tools/module.mk (`include tools/omnictl/module.mk`).
OMNICTL_CLASSES := tools/omnictl/promtext.c tools/omnictl/target.c tools/omnictl/status.c \
                   tools/omnictl/access.c
$(eval $(call program,omnictl,tools/omnictl/main.c $(OMNICTL_CLASSES),libcurl))
$(eval $(call selftest,omnictl-selftest,tools/omnictl/selftest.c $(OMNICTL_CLASSES),libcurl))
