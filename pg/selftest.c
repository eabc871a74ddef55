/*  pg-selftest: the self-tests of the PostgreSQL layer, each against a
    database of its own (testsupport/pgtest). `pg-selftest -v pgconn` runs one. */
#include "pg/migrate.h"
#include "pg/pgconn.h"
#include "pg/pgcopy.h"
#include "pg/pgwriter.h"
#include "testsupport/selftest.h"

static const selftest_t s_tests[] = {{"pgconn", omni_pgconn_test},
                                     {"pgcopy", omni_pgcopy_test},
                                     {"migrate", omni_migrate_test},
                                     {"pgwriter", omni_pgwriter_test},
                                     {NULL, NULL}};

int
main (int argc, char **argv)
{
    return selftest_run (s_tests, argc, argv);
}
