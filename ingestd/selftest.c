#include "ingestd/delivery.h"
#include "ingestd/intake.h"
#include "ingestd/journal.h"
#include "ingestd/jsjournal.h"
#include "ingestd/jsrejects.h"
#include "ingestd/peers.h"
#include "ingestd/route.h"
#include "ingestd/server.h"
#include "ingestd/tap.h"
#include "testsupport/selftest.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"journal", journal_test},     {"jsjournal", jsjournal_test},
                                       {"jsrejects", jsrejects_test}, {"peers", peers_test},
                                       {"route", route_test},         {"tap", tap_test},
                                       {"intake", intake_test},       {"delivery", delivery_test},
                                       {"server", server_test},       {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
