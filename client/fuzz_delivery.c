/*  fuzz_delivery: libFuzzer target for a writer's handling of what ingestd
    sends it (WELCOME, DELIVER, RESET, HEARTBEAT, ERROR, and anything else).

    It includes writer.c to drive s_recv and s_handle_message exactly as
    the writer's loop does (the input goes over the inproc socket pair, as
    ingestd's frames come), then the loop's flush and the commit, synchronously: each
    input is one message, its effects finish before the next input, so a
    crash or a sanitizer report points at the input that caused it. The
    store checks what a store may rely on (every record decoded, its kind
    routed to this writer) and fails now and then, as stores do.

    Input: the first byte chooses the shape. Odd: a well-formed head
    ("OD/1", a command chosen by the second byte, and for DELIVER and
    DELIVERP an 8-byte `upto`) followed by frames; even: raw frames only. Frames are cut by a
    2-byte big-endian length before each one; the rest is the last frame.
    Records in the seeds (proto/fuzz_seeds) are reached through the
    length-prefixed frames.                                                  */
#include "client/writer.c"
#include "testsupport/fuzz_frames.h"

static omni_writer_t *s_writer;
static zsock_t *s_ingestd;
static unsigned s_store_calls;

static int
s_store (void *store, const omni_record_t *records, size_t count, uint8_t *conflicts, char *error,
         size_t error_size)
{
    (void) store;
    for (size_t i = 0; i < count; i++) {
        //  What the writer promises its store: decoded records of its kinds
        assert (records[i].spec);
        assert (records[i].spec->writers & WRITER_ARCHIVE);
    }
    //  One record in eleven meets other content: the conflict path too
    for (size_t i = 0; i < count; i++)
        conflicts[i] = (s_store_calls + i) % 11 == 0;
    if (s_store_calls % 1000 == 0)
        (void) !truncate (s_writer->conflicts_path, 0);
    //  One commit in seven fails: the retry and RESET paths are exercised
    if (++s_store_calls % 7 == 0) {
        snprintf (error, error_size, "the fuzzer's store fails now and then");
        return s_store_calls % 2 ? -1 : WRITER_STORE_PERMANENT;
    }
    return 0;
}

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    fuzz_init ("fuzz-delivery");
    s_ingestd = zsock_new_router ("inproc://fuzz-delivery");
    assert (s_ingestd);
    //  retry_max 1 ms: a failing store must not slow the fuzzer down
    //  Conflicts are filed next to the fuzzer's corpora, cut short now and
    //  then (s_store)
    omni_writer_config_t config = {"inproc://fuzz-delivery", "archive", 50, 1, 200, 1, 1, NULL,
                                   "build-fuzz/conflicts"};
    s_writer = omni_writer_new (&config, s_store, NULL, NULL);
    assert (s_writer);
    //  A routing id of its own, so that the ROUTER can send to it at once
    zsock_set_router_mandatory (s_ingestd, 1);
    s_writer->dealer = zsock_new (ZMQ_DEALER);
    assert (s_writer->dealer);
    zsock_set_identity (s_writer->dealer, "w");
    zsock_set_sndtimeo (s_writer->dealer, 0);
    int rc = zsock_connect (s_writer->dealer, "inproc://fuzz-delivery");
    assert (rc == 0);
    return 0;
}

//  The next length-prefixed frame, or the rest as the last one.

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    static const omni_wire_command_t commands[] = {WIRE_DELIVER,   WIRE_WELCOME, WIRE_RESET,
                                                   WIRE_HEARTBEAT, WIRE_REFUSED, WIRE_DELIVERY_ACK,
                                                   WIRE_DELIVERP};
    zmsg_t *msg = zmsg_new ();
    if (size >= 2 && (data[0] & 1)) {
        omni_wire_command_t command = commands[data[1] % 7];
        zmsg_addstr (msg, WIRE_DELIVERY_SIGNATURE);
        zmsg_addstr (msg, omni_wire_command_name (command));
        data += 2;
        size -= 2;
        if ((command == WIRE_DELIVER || command == WIRE_DELIVERP) && size >= 8) {
            zmsg_addmem (msg, data, 8);
            data += 8;
            size -= 8;
        }
    } else if (size >= 1) {
        data++;
        size--;
    }
    for (int frames = 0; frames < 2000 && fuzz_next_frame (&data, &size, msg); frames++)
        ;
    if (zmsg_size (msg) == 0)
        zmsg_addmem (msg, "", 0); //  ZeroMQ has no message without a frame
    zmsg_pushstr (msg, "w");
    int rc = zmsg_send (&msg, s_ingestd);
    assert (rc == 0);
    s_message_t *got = s_recv (s_writer);
    assert (got);
    if (!s_handle_message (s_writer, got)) {
        //  ERROR before a WELCOME, or a DELIVERP it cannot read: the writer
        //  would exit; the next input starts as a writer that was not
        //  refused, and one that did not stop does not say why it stopped
        assert (s_writer->refusal || s_writer->fault);
        free (s_writer->refusal);
        s_writer->refusal = NULL;
        free (s_writer->fault);
        s_writer->fault = NULL;
    }
    //  The loop's next steps, done at once: flush what is in hand, wait for
    //  its commit (a failed one is retried by s_commit until it passes or
    //  until the session changes), acknowledge
    do {
        //  DELIVERs held while the next batch was full go in as the loop
        //  takes them, batch after batch
        bool full = s_writer->storing && s_writer->filling->count >= s_writer->config.batch_size;
        while (!full && zlist_size (s_writer->held)) {
            s_take_deliver (s_writer, zlist_pop (s_writer->held));
            full = s_writer->storing && s_writer->filling->count >= s_writer->config.batch_size;
        }
        if (s_writer->filling->upto && !s_writer->storing)
            s_flush (s_writer, false);
        s_finish_commit (s_writer, true);
    } while (zlist_size (s_writer->held));
    //  What the writer sent (ACK, HELLO) is read and dropped
    while (zsock_events (s_ingestd) & ZMQ_POLLIN) {
        zmsg_t *out = zmsg_recv (s_ingestd);
        zmsg_destroy (&out);
    }
    return 0;
}
