/*  Self-tests of the tools' classes (omni-tap, omni-loadgen).               */
#include "tools/omni-loadgen/loadgen.h"
#include "testsupport/selftest.h"
#include "tools/omni-loadgen/synth.h"
#include "tools/omni-tap/tap_printer.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"tap_printer", tap_printer_test},
                                       {"synth", synth_test},
                                       {"loadgen", loadgen_test},
                                       {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
