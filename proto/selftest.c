#include "intake_client.h"
#include "kinds.h"
#include "mpjson.h"
#include "wire.h"
#include "record.h"
#include "selftest.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"kinds", kinds_test},
                                       {"record", record_test},
                                       {"mpjson", mpjson_test},
                                       {"wire", wire_test},
                                       {"intake_client", intake_client_test},
                                       {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
