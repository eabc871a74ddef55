/*  srcname: the name of a source, the same whoever collects it. A git
    repository is named by the URL of its `origin` remote, normalized
    (scheme, user, password, port and a trailing `.git` removed, the host
    lowercased): https://User@GitHub.com:443/acme/widget.git and
    git@github.com:acme/widget are both `github.com/acme/widget`. So two
    clones of one repository are one source, and a CI system's URL of the
    repository names the same source as the repository itself.             */
#ifndef OMNI_COLLECTORD_SRCNAME_H
#define OMNI_COLLECTORD_SRCNAME_H

#include <git2.h>
#include <stdbool.h>
#include <stddef.h>

//  The normalized form of a repository URL (https://, ssh://, git://,
//  scp-like user@host:path, file:// or a local path, which stays a path) in
//  `buf`. NULL when nothing is left of it.
const char *srcname_from_url (const char *url, char *buf, size_t size);

//  The source name of an open repository: its origin's URL normalized, else
//  (no origin, or an origin without URL) the name of its directory (the
//  work tree's, or the bare repository's without `.git`). `from_remote`
//  says which. The caller frees the result.
char *srcname_from_repo (git_repository *repo, bool *from_remote);

void srcname_test (bool verbose);

#endif
