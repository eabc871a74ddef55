/*  Self-tests of omni-report's classes.                                      */
#include "tools/omni-report/analysis.h"
#include "tools/omni-report/chart.h"
#include "tools/omni-report/gather.h"
#include "tools/omni-report/htmlout.h"
#include "tools/omni-report/jsonout.h"
#include "tools/omni-report/model.h"
#include "tools/omni-report/pdfout.h"
#include "testsupport/selftest.h"
#include "tools/omni-report/server.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {
        {"model", model_test},     {"chart", chart_test},       {"jsonout", jsonout_test},
        {"htmlout", htmlout_test}, {"pdfout", pdfout_test},     {"gather", gather_test},
        {"server", server_test},   {"analysis", analysis_test}, {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
