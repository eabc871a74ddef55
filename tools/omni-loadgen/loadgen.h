/*  loadgen: sends synth records to ingestd's intake at a given rate, for a
    count or a duration, and waits until every batch is acknowledged.

    The first SIGINT / SIGTERM stops generating and still waits for the
    acknowledgements of what was sent (so the summary is exact); a second
    one exits at once (the signal policy of common/daemon.h, installed by
    main with czmq's flag left down).                                        */
#ifndef OMNI_LOADGEN_H
#define OMNI_LOADGEN_H

#include "proto/curve.h"
#include "tools/omni-loadgen/synth.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *intake;     //  ingestd intake endpoint
    uint64_t count;         //  records to send; 0 = no limit (see duration)
    int64_t duration_ms;    //  stop generating after this long; 0 = no limit
    double rate;            //  records per second; 0 = as fast as possible
    uint64_t start_index;   //  index of the first record
    size_t batch;           //  records per batch (0 = intake_client's default)
    size_t window;          //  unacknowledged batches (0 = intake_client's default)
    int64_t give_up_ms;     //  fail when ingestd acknowledges nothing this long; 0 = never
    int64_t ack_timeout_ms; //  resend a batch unacknowledged this long (0 = default)
    const char *ids_out;    //  file to write the hex id of every valid record sent, or NULL
    const char *dump;       //  write the records to this file instead of sending, or NULL
    const synth_bad_t *bad; //  send bad inputs of these modes in turn instead of records
    size_t nbad;
    bool preencode;                   //  build every record (count of them) before the clock starts
    const omni_curve_client_t *curve; //  CURVE keys for intake, or NULL
} loadgen_config_t;

typedef struct _loadgen_t loadgen_t;

//  NULL with a message in `error` when a file cannot be opened or the
//  endpoint is malformed. `synth` stays the caller's.
loadgen_t *loadgen_new (const loadgen_config_t *config, synth_t *synth, char *error,
                        size_t error_size);
void loadgen_destroy (loadgen_t **self_p);

//  Sends (or dumps) everything. Returns 0 once every batch is acknowledged,
//  -1 when ingestd stayed silent past give_up_ms, or when a file could not
//  be written.
int loadgen_run (loadgen_t *self);

uint64_t loadgen_sent (loadgen_t *self);
uint64_t loadgen_accepted (loadgen_t *self);
uint64_t loadgen_rejected (loadgen_t *self);
double loadgen_seconds (loadgen_t *self);

//  The closing line:
//  sent=N accepted=N rejected=N seconds=X rate=Y resent=N
//  (with --dump: sent=0 dumped=N bytes=N seconds=X rate=Y). With preencode,
//  seconds and rate cover the sending only (from the first record sent to
//  the last acknowledgement), and encode_seconds=X started=T follow, T the
//  CLOCK_MONOTONIC time in seconds the sending started at, so that a
//  benchmark can line several senders up.
void loadgen_summary (loadgen_t *self, char *text, size_t size);

void loadgen_test (bool verbose);

#endif
