/*  common-selftest: the self-tests of the shared classes, each run in its own
    process by the selftest runner. `common-selftest -v config` runs one.     */
#include "common/config.h"
#include "common/curve.h"
#include "common/curve_roles.h"
#include "common/dirlock.h"
#include "common/httpd.h"
#include "common/idset.h"
#include "common/jetstream.h"
#include "common/jsdelivery.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/migrate.h"
#include "common/pgconn.h"
#include "testsupport/selftest.h"
#include "common/util.h"
#include "common/writer.h"
#include "common/writer_daemon.h"

static const selftest_t s_tests[] = {{"util", omni_util_test},
                                     {"log", omni_log_test},
                                     {"config", omni_config_test},
                                     {"metrics", omni_metrics_test},
                                     {"idset", omni_idset_test},
                                     {"httpd", omni_httpd_test},
                                     {"curve", omni_curve_test},
                                     {"curve_roles", omni_curve_roles_test},
                                     {"writer", omni_writer_test},
                                     {"writer_daemon", omni_writer_daemon_test},
                                     {"pgconn", omni_pgconn_test},
                                     {"migrate", omni_migrate_test},
                                     {"dirlock", omni_dirlock_test},
                                     {"jetstream", omni_js_test},
                                     {"jsdelivery", omni_jsdelivery_test},
                                     {NULL, NULL}};

int
main (int argc, char **argv)
{
    return selftest_run (s_tests, argc, argv);
}
