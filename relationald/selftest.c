/*  relationald-selftest: the self-tests of relationald's classes and of the
    shared PostgreSQL helper, against a real server ($OMNI_TEST_PG_DSN, else
    127.0.0.1:5432), each in a database of its own that it drops.            */
#include "pg/pgconn.h"
#include "relationald/relstore.h"
#include "relationald/schema.h"
#include "testsupport/selftest.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {
        {"schema", schema_test}, {"relstore", relstore_test}, {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
