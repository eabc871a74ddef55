/*  junit_files: the report files that `collectord junit` PATH arguments
    name: a report file, a directory (searched recursively for files whose
    name matches one of the patterns, default *.xml), or a quoted glob where
    a `**` segment matches any number of directories (`**` then `TEST-*.xml`
    finds Surefire reports at any depth). Symbolic links to files are
    followed, to directories not (loops).                                 */
#ifndef OMNI_COLLECTORD_JUNIT_FILES_H
#define OMNI_COLLECTORD_JUNIT_FILES_H

#include <stdbool.h>
#include <stddef.h>

//  The files, sorted, without duplicates, NULL-terminated (free each and
//  the array). An argument that names nothing is logged as a warning.
char **junit_find_files (const char *const *args, size_t nargs, char *const *patterns);

//  Whether a PATH argument is a glob (has *, ? or [)
bool junit_is_glob (const char *arg);

void junit_files_test (bool verbose);

#endif
