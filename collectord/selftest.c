/*  collectord-selftest: the self-tests of collectord's classes.            */
#include "collectord/collector.h"
#include "collectord/git_collector.h"
#include "collectord/gitdiff.h"
#include "collectord/gitpack.h"
#include "collectord/gitpool.h"
#include "collectord/gittext.h"
#include "collectord/host.h"
#include "collectord/host_collector.h"
#include "collectord/progress.h"
#include "collectord/builds.h"
#include "collectord/codestats.h"
#include "collectord/exec.h"
#include "collectord/junit.h"
#include "collectord/junit_files.h"
#include "collectord/junit_parse.h"
#include "collectord/lang_count.h"
#include "testsupport/selftest.h"
#include "collectord/runner.h"
#include "collectord/session.h"
#include "collectord/srcname.h"
#include "collectord/state.h"
#include "collectord/utf8.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"utf8", utf8_test},
                                       {"state", state_test},
                                       {"progress", progress_test},
                                       {"session", session_test},
                                       {"runner", runner_test},
                                       {"collector", collector_test},
                                       {"srcname", srcname_test},
                                       {"gittext", gittext_test},
                                       {"gitdiff", gitdiff_test},
                                       {"gitpack", gitpack_test},
                                       {"gitpool", gitpool_test},
                                       {"git_collector", git_collector_test},
                                       {"host", host_test},
                                       {"host_collector", host_collector_test},
                                       {"junit_parse", junit_parse_test},
                                       {"junit_files", junit_files_test},
                                       {"junit", junit_test},
                                       {"builds", builds_test},
                                       {"exec", exec_test},
                                       {"lang_count", lang_count_test},
                                       {"codestats", codestats_test},
                                       {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
