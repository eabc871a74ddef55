/*  metricsd-selftest: the self-tests of metricsd's classes against a real
    PostgreSQL ($OMNI_TEST_PG_DSN, else 127.0.0.1:5432), each in a database
    of its own that it drops. (The host collector's class is tested by
    collectord-selftest.)                                                    */
#include "metricsd/derive.h"
#include "metricsd/hostdaily.h"
#include "metricsd/pointstore.h"
#include "testsupport/selftest.h"
#include "metricsd/tsschema.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"derive", derive_test},
                                       {"tsschema", tsschema_test},
                                       {"hostdaily", hostdaily_test},
                                       {"pointstore", pointstore_test},
                                       {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
