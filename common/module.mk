# common/: the bottom layer (config, log, metrics, HTTP, utilities); its
# classes live in libomni.a, their self-tests run from common-selftest.
$(eval $(call selftest,common-selftest,common/selftest.c,))
