/*  proto-selftest: the self-tests of the wire layer's classes.              */
#include "proto/curve.h"
#include "proto/curve_roles.h"
#include "proto/jetstream.h"
#include "proto/jsbatch.h"
#include "proto/kinds.h"
#include "proto/mpjson.h"
#include "proto/record.h"
#include "proto/wire.h"
#include "testsupport/selftest.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"kinds", omni_kinds_test},
                                       {"record", omni_record_test},
                                       {"mpjson", omni_mpjson_test},
                                       {"wire", omni_wire_test},
                                       {"curve", omni_curve_test},
                                       {"curve_roles", omni_curve_roles_test},
                                       {"jetstream", omni_js_test},
                                       {"jsbatch", omni_js_batch_test},
                                       {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
