# proto/: the wire (records, kinds, the codec) and its security (CURVE keys and roles); in libomni.a, self-tests in proto-selftest.
# jetstream.c (the layout of records in a JetStream stream) needs libnats.
$(eval $(call selftest,proto-selftest,proto/selftest.c,libnats))
