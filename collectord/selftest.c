/*  collectord-selftest: the self-tests of collectord's classes.            */
#include "collector.h"
#include "git_collector.h"
#include "gitdiff.h"
#include "gitpool.h"
#include "gittext.h"
#include "host.h"
#include "host_collector.h"
#include "progress.h"
#include "builds.h"
#include "codestats.h"
#include "exec.h"
#include "junit.h"
#include "junit_files.h"
#include "junit_parse.h"
#include "lang_count.h"
#include "selftest.h"
#include "session.h"
#include "srcname.h"
#include "state.h"
#include "utf8.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"utf8", utf8_test},
                                       {"state", state_test},
                                       {"progress", progress_test},
                                       {"session", session_test},
                                       {"collector", collector_test},
                                       {"srcname", srcname_test},
                                       {"gittext", gittext_test},
                                       {"gitdiff", gitdiff_test},
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
