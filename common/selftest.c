/*  common-selftest: the self-tests of the bottom layer's classes, each run in
    its own process by the selftest runner. `common-selftest -v config` runs one. */
#include "common/buf.h"
#include "common/config.h"
#include "common/daemon.h"
#include "common/dirlock.h"
#include "common/httpd.h"
#include "common/idset.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"
#include "testsupport/selftest.h"

static const selftest_t s_tests[] = {{"util", omni_util_test},       {"buf", omni_buf_test},
                                     {"log", omni_log_test},         {"config", omni_config_test},
                                     {"metrics", omni_metrics_test}, {"idset", omni_idset_test},
                                     {"httpd", omni_httpd_test},     {"dirlock", omni_dirlock_test},
                                     {"daemon", omni_daemon_test},   {NULL, NULL}};

int
main (int argc, char **argv)
{
    return selftest_run (s_tests, argc, argv);
}
