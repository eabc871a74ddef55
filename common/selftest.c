/*  common-selftest: the self-tests of the shared classes, each run in its own
    process by the selftest runner. `common-selftest -v config` runs one.     */
#include "config.h"
#include "curve.h"
#include "curve_roles.h"
#include "dirlock.h"
#include "httpd.h"
#include "idset.h"
#include "log.h"
#include "metrics.h"
#include "migrate.h"
#include "pgconn.h"
#include "selftest.h"
#include "util.h"
#include "writer.h"
#include "writer_daemon.h"

static const selftest_t s_tests[] = {
    {"util", util_test},       {"log", log_test},
    {"config", config_test},   {"metrics", metrics_test},
    {"idset", idset_test},     {"httpd", httpd_test},
    {"curve", curve_test},     {"curve_roles", curve_roles_test},
    {"writer", writer_test},   {"writer_daemon", writer_daemon_test},
    {"pgconn", pgconn_test},   {"migrate", migrate_test},
    {"dirlock", dirlock_test}, {NULL, NULL}};

int
main (int argc, char **argv)
{
    return selftest_run (s_tests, argc, argv);
}
