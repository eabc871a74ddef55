# The self-tests of the classes shared by every daemon (common/).
$(eval $(call selftest,common-selftest,common/selftest.c,))
