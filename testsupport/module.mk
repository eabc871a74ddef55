# testsupport/ builds into libomnitest.a (the top Makefile), linked by the
# self-test runners only; its own classes are tested here.
$(eval $(call selftest,testsupport-selftest,testsupport/selftest.c,))
