#include "testsupport/selftest.h"
#include "testsupport/testpeer.h"
#include "testsupport/testrec.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {
        {"testpeer", testpeer_test}, {"testrec", testrec_test}, {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
