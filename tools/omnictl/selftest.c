#include "access.h"
#include "promtext.h"
#include "selftest.h"
#include "status.h"
#include "target.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"promtext", promtext_test},
                                       {"target", target_test},
                                       {"status", status_test},
                                       {"access", access_test},
                                       {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
