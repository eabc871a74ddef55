/*  jetstream: how OmniAudit lays its records out in a NATS JetStream
    stream, shared by ingestd (which publishes, and creates the stream and
    one durable consumer per writer) and the writers (which pull from their
    consumer), so that both sides spell the subjects the same way.

    A record's subject names the writers it is routed to, one token per
    writer role, then its kind:
        <prefix>.rec.<a|_>.<r|_>.<d|_>.<m|_>.<kind>
    (archive, relational, document, metrics; `_` where not routed), and a
    writer's consumer filters on its own token: relational takes
    <prefix>.rec.*.r.*.*.>. One filter subject per consumer is all
    nats-server 2.9 has, and a kind's routes are no single wildcard of
    kinds; tokens per writer are, REPLAY's narrower routes included.
    <prefix> is the stream name in lower case (OMNI: omni.rec.>).          */
#ifndef OMNI_JETSTREAM_H
#define OMNI_JETSTREAM_H

#include <nats/nats.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OMNI_JS_SUBJECT_MAX 256
#define OMNI_JS_STREAM_MAX  64

//  Whether `name` can be a stream name here: 1..64 of [A-Za-z0-9_-].
bool omni_js_stream_name_ok (const char *name);

//  The stream's subjects: "<prefix>.rec.>".
void omni_js_stream_subject (const char *stream, char *out, size_t size);

//  The subject of a record of `kind` (`kind_len` bytes) routed to the
//  writer roles in `writers` (omni_writer_role_t bits). Characters of the
//  kind that a subject cannot hold become `_` (the subject only routes;
//  the record's bytes are what is stored).
void omni_js_record_subject (const char *stream, unsigned writers, const char *kind,
                             size_t kind_len, char *out, size_t size);

//  The filter subject of the consumer of writer `role` (one bit).
void omni_js_writer_filter (const char *stream, unsigned role, char *out, size_t size);

//  Connects to the first of `urls` (NULL-terminated, nats://host:port)
//  that answers within `timeout_ms`, and keeps reconnecting to any of them
//  (or servers the cluster tells of) for ever after. `name` is shown by
//  the server's monitoring. Returns NULL with `error` filled.
natsConnection *omni_js_connect (const char *const *urls, const char *name, int64_t timeout_ms,
                                 char *error, size_t error_size);

//  A nats.c failure as text: the status, the JetStream error code if any,
//  and the library's last error.
void omni_js_error (natsStatus status, jsErrCode code, char *out, size_t size);

void omni_js_test (bool verbose);

#endif
