/*  metricsd-selftest: the self-tests of metricsd's classes against a real
    PostgreSQL ($OMNI_TEST_PG_DSN, else 127.0.0.1:5432), each in a database
    of its own that it drops, and of the host collector's class (its
    program, collectord, is built elsewhere; its class is tested here until
    collectord's self-test lists it).                                        */
#include "derive.h"
#include "../collectord/host.h"
#include "pointstore.h"
#include "selftest.h"
#include "tsschema.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"derive", derive_test},
                                       {"tsschema", tsschema_test},
                                       {"pointstore", pointstore_test},
                                       {"host", host_test},
                                       {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
