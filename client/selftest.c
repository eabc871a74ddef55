/*  client-selftest: the self-tests of the intake client and the writer loop,
    each against the test peer. `client-selftest -v writer` runs one.        */
#include "client/intake_client.h"
#include "client/jsdelivery.h"
#include "client/writer.h"
#include "client/writer_daemon.h"
#include "testsupport/selftest.h"

static const selftest_t s_tests[] = {{"intake_client", omni_intake_client_test},
                                     {"writer", omni_writer_test},
                                     {"writer_daemon", omni_writer_daemon_test},
                                     {"jsdelivery", omni_jsdelivery_test},
                                     {NULL, NULL}};

int
main (int argc, char **argv)
{
    return selftest_run (s_tests, argc, argv);
}
