/*  archiverd-selftest: the self-tests of archiverd's classes.               */
#include "archiverd/archive.h"
#include "archiverd/archive_ids.h"
#include "archiverd/bloom.h"
#include "archiverd/coldfile.h"
#include "testsupport/selftest.h"

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"bloom", bloom_test},
                                       {"coldfile", coldfile_test},
                                       {"archive_ids", archive_ids_test},
                                       {"archive", archive_test},
                                       {NULL, NULL}};
    return selftest_run (tests, argc, argv);
}
