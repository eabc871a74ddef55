/*  git_collector: `collectord git [options] REPO_PATH`. Reads a repository
    with libgit2 and sends

        git.commit  every commit reachable from the chosen refs (default: all
                    refs and HEAD, as `git rev-list --all`), with its numstat
                    against the first parent (gitdiff_t)
        git.branch  every local branch: name, target, whether HEAD is on it
        git.tag     every tag: name, peeled target, annotation

    Incremental: after a run is fully acknowledged, the tips it walked are
    saved (state_t); the next run hides them and their history, so only new
    commits are sent. Branches and tags are sent on every run (they move).
    src is the repository's absolute common git directory, or --source.    */
#ifndef OMNI_COLLECTORD_GIT_COLLECTOR_H
#define OMNI_COLLECTORD_GIT_COLLECTOR_H

#include "collectord/collector.h"

extern const collector_t git_collector;

void git_collector_test (bool verbose);

#endif
