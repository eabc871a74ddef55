# proto/: the wire (records, kinds, the codec) and its security (CURVE keys and roles); in libomni.a, self-tests in proto-selftest.
$(eval $(call selftest,proto-selftest,proto/selftest.c,))
