/*  Self-tests of omni-report's classes.                                      */
#include "analysis.h"
#include "chart.h"
#include "gather.h"
#include "htmlout.h"
#include "jsonout.h"
#include "model.h"
#include "pdfout.h"
#include "selftest.h"
#include "server.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {
        {"model", model_test},     {"chart", chart_test},       {"jsonout", jsonout_test},
        {"htmlout", htmlout_test}, {"pdfout", pdfout_test},     {"gather", gather_test},
        {"server", server_test},   {"analysis", analysis_test}, {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
