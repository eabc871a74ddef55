#include "tools/omnictl/access.h"
#include "tools/omnictl/archread.h"
#include "tools/omnictl/export.h"
#include "tools/omnictl/jsonrec.h"
#include "tools/omnictl/promtext.h"
#include "tools/omnictl/rejects.h"
#include "tools/omnictl/replay.h"
#include "testsupport/selftest.h"
#include "tools/omnictl/status.h"
#include "tools/omnictl/target.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"promtext", promtext_test}, {"target", target_test},
                                       {"status", status_test},     {"access", access_test},
                                       {"jsonrec", jsonrec_test},   {"archread", archread_test},
                                       {"replay", replay_test},     {"export", export_test},
                                       {"rejects", rejects_test},   {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
