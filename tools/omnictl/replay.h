/*  replay: sends the archive's records back through ingestd's intake, ids
    and bytes unchanged, as REPLAY messages routed to the named writers only
    (never the archive), so that a store lost, restored from an old backup or
    added later gets every record; writers are idempotent on ids, so what a
    store already holds is not stored twice.

    Resumable: a state file says where in the archive every record before
    is acknowledged; it is replaced whole (temp file, fsync, rename) at most
    every second, so a replay killed at any point (kill -9 included) goes on
    from there when run again with the same options, sending at most a
    second's worth again. It is removed when the replay ends with every
    record acknowledged.                                                     */
#ifndef OMNI_REPLAY_H
#define OMNI_REPLAY_H

#include "tools/omnictl/archread.h"
#include "proto/curve.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    const char *archive_dir;
    const char *intake;       //  ingestd's intake endpoint
    const char *writers;      //  "relational,metrics"; "" = every configured writer but the archive
    archread_filter_t filter; //  --kind, --source, --since, --until
    const char *state_path;   //  the resume file
    const omni_curve_client_t *curve;
    int64_t give_up_ms; //  stop when ingestd acknowledges nothing for this long
    int64_t rate;       //  records per second at most, so a rebuild leaves room for live
                        //  collection; 0 = as fast as ingestd takes them
} replay_config_t;

//  Exit status: 0 every record read was acknowledged and accepted; 1 not
//  (ingestd unreachable, refused, interrupted: the state file is kept; or
//  records rejected); 2 a usage error (say why); 3 every record read was
//  acknowledged, but lines of the archive were damaged and skipped (each
//  reported as file:line on stderr).
int replay_run (const replay_config_t *config);

void replay_test (bool verbose);

#endif
