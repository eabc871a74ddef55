# proto/ classes live in libomni.a; their self-tests run from proto-selftest.
$(eval $(call selftest,proto-selftest,proto/selftest.c,))
