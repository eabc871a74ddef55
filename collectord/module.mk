# collectord: one program, one collector per mode (collector.c has the table).
COLLECTORD_CLASSES := collectord/collector.c collectord/session.c collectord/progress.c \
    collectord/state.c collectord/utf8.c collectord/gittext.c collectord/gitdiff.c collectord/gitpack.c \
    collectord/gitpool.c collectord/git_collector.c collectord/host.c \
    collectord/host_collector.c collectord/junit.c \
    collectord/junit_parse.c collectord/junit_files.c \
    collectord/builds.c collectord/exec.c collectord/codestats.c collectord/lang_count.c \
    collectord/srcname.c collectord/runner.c
$(eval $(call program,collectord,collectord/main.c $(COLLECTORD_CLASSES),libgit2 libxml-2.0 jansson zlib))
$(eval $(call selftest,collectord-selftest,collectord/selftest.c $(COLLECTORD_CLASSES),libgit2 libxml-2.0 jansson zlib))
