#include "ingestd/journal.h"
#include "ingestd/jsjournal.h"
#include "ingestd/peers.h"
#include "testsupport/selftest.h"
#include "ingestd/server.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"journal", journal_test},
                                       {"jsjournal", jsjournal_test},
                                       {"peers", peers_test},
                                       {"server", server_test},
                                       {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
