# client/: the two ends of the pipeline's links, above proto/: the intake
# client (collectors to ingestd) and the writer loop (ingestd to a store),
# with the writer daemons' shared main; in libomni.a, self-tests in
# client-selftest.
# jsdelivery.c (a writer's records from a JetStream stream) needs libnats.
$(eval $(call selftest,client-selftest,client/selftest.c,libnats))
