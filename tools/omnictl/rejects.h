/*  rejects: `omnictl rejects`, what ingestd rejected in journal: jetstream
    mode, read from the rejects stream (ingestd/jsrejects.h): the newest
    rejects, by reason if asked, with why, when and from whom, as text or
    JSON lines with the input's bytes in hex; or one of them, its bytes
    alone (--raw) for a decoder. It only reads: the stream's limits (age,
    bytes) are what removes rejects.                                       */
#ifndef OMNI_REJECTS_H
#define OMNI_REJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const char *const *urls; //  NATS servers, NULL-terminated
    const char *stream;      //  the records' stream (ingestd.stream)
    const char *rejects;     //  the rejects stream; "" = <stream>_REJECTS (ingestd.rejects_stream)
    const char *reason;      //  only this reason; "" = every one
    uint64_t seq;            //  one reject, by its stream sequence; 0 = the newest `limit`
    size_t limit;
    bool json; //  JSON lines (the bytes in hex) rather than text
    bool raw;  //  with seq: the input's bytes alone
    FILE *out;
} rejects_config_t;

//  0 when done (no reject is not an error), 1 when the cluster or the
//  stream does not answer or `seq` is not there, 2 on a usage error.
int rejects_run (const rejects_config_t *config);

void rejects_test (bool verbose);

#endif
