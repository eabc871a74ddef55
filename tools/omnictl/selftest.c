#include "access.h"
#include "archread.h"
#include "export.h"
#include "jsonrec.h"
#include "promtext.h"
#include "replay.h"
#include "selftest.h"
#include "status.h"
#include "target.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {
        {"promtext", promtext_test}, {"target", target_test},   {"status", status_test},
        {"access", access_test},     {"jsonrec", jsonrec_test}, {"archread", archread_test},
        {"replay", replay_test},     {"export", export_test},   {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
