#include "proto/intake_client.h"
#include "proto/kinds.h"
#include "proto/mpjson.h"
#include "proto/wire.h"
#include "proto/record.h"
#include "testsupport/selftest.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"kinds", omni_kinds_test},
                                       {"record", omni_record_test},
                                       {"mpjson", omni_mpjson_test},
                                       {"wire", omni_wire_test},
                                       {"intake_client", omni_intake_client_test},
                                       {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
