/*  fuzz_intake: libFuzzer target for ingestd's handling of intake messages,
    the whole path of one message: frames off the ROUTER socket, the BATCH
    head, every record checked, journaled or dead-lettered in one LMDB
    transaction, the commit, the reply.

    It includes server.c and drives s_intake_round as the event loop does,
    synchronously: the input is sent from a DEALER over inproc (delivered
    before zmq_send returns), one round reads it, and the reply is read back
    before the next input. What must hold for every input (the oracle):
    exactly one reply comes back; it is ACK with accepted + rejected equal to
    the records (a BATCH's frames; a BATCHP's packed records, a frame that
    does not unpack counting as one) and the batch's own seq, or ERROR for a
    malformed message; ingestd's accounting (received = accepted + rejected,
    checked against the journal by server_healthy) holds.

    Input: the first byte chooses the shape. Odd: a well-formed head ("OI/1"
    "BATCH", or "BATCHP" when its second bit is set, and an 8-byte seq taken
    from the input) followed by record frames; even: raw frames. Frames are cut by a 2-byte
   big-endian length before each one; the rest is the last frame. The journal lives in a temporary
   directory and is started afresh every few thousand inputs so that a long run stays within its
   disk.                                   */
#include "ingestd/server.c"
#include "testsupport/fuzz_frames.h"

#include <ftw.h>

#define S_INPUTS_PER_JOURNAL 4000

static char s_dir[256];
static server_t *s_server;
static omni_metrics_t *s_metrics;
static zsock_t *s_client;
static size_t s_inputs;
static const char *s_writers[] = {"archive", "relational", NULL};

int LLVMFuzzerInitialize (int *argc, char ***argv);
int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static int
s_remove (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove (path);
}

static void
s_start (void)
{
    if (s_server) {
        zsock_destroy (&s_client);
        server_destroy (&s_server);
        omni_metrics_destroy (&s_metrics);
        nftw (s_dir, s_remove, 16, FTW_DEPTH | FTW_PHYS);
    }
    //  Names of their own for each journal: a closed socket's inproc name
    //  is released asynchronously
    static unsigned generation;
    char intake[64], delivery[64], tap[64];
    generation++;
    snprintf (intake, sizeof intake, "inproc://fuzz-intake-%u", generation);
    snprintf (delivery, sizeof delivery, "inproc://fuzz-delivery-%u", generation);
    snprintf (tap, sizeof tap, "inproc://fuzz-tap-%u", generation);
    server_config_t config = {
        intake, delivery, tap, s_dir, 1ULL << 30, 1000, s_writers, {4 << 20, 16}, NULL, 0, 0, 0,
        0,      0,        0,   0,     0,          0,    0};
    char error[512];
    s_metrics = omni_metrics_new ("fuzz_");
    s_server = server_new (&config, s_metrics, error, sizeof error);
    if (!s_server) {
        fprintf (stderr, "fuzz_intake: %s\n", error);
        abort ();
    }
    s_client = zsock_new_dealer (NULL);
    assert (s_client && zsock_connect (s_client, "%s", intake) == 0);
    assert (s_client);
    zsock_set_rcvtimeo (s_client, 5000);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    fuzz_init ("fuzz-intake");
    //  /dev/shm when there is one: a journal commit per input is an fsync
    const char *base = access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf (s_dir, sizeof s_dir, "%s/omni-fuzz-intake-XXXXXX", base);
    if (!mkdtemp (s_dir))
        abort ();
    s_start ();
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (++s_inputs % S_INPUTS_PER_JOURNAL == 0)
        s_start ();
    zmsg_t *msg = zmsg_new ();
    if (size >= 9 && (data[0] & 1)) {
        zmsg_addstr (msg, WIRE_INTAKE_SIGNATURE);
        zmsg_addstr (msg, data[0] & 2 ? "BATCHP" : "BATCH");
        zmsg_addmem (msg, data + 1, 8);
        data += 9;
        size -= 9;
    } else if (size >= 1) {
        data++;
        size--;
    }
    for (int frames = 0; frames < 2000 && fuzz_next_frame (&data, &size, msg); frames++)
        ;
    if (zmsg_size (msg) == 0)
        zmsg_addmem (msg, "", 0); //  a DEALER message has at least one frame
    //  What ingestd must answer: ACK to a BATCH head, whatever its records
    //  (czmq's zmsg_next starts over at the head once past the end)
    size_t nframes = zmsg_size (msg);
    zframe_t *f0 = zmsg_first (msg), *f1 = zmsg_next (msg), *f2 = zmsg_next (msg);
    bool packed = nframes >= 2 && zframe_streq (f1, "BATCHP");
    bool batch = nframes >= 3 && zframe_streq (f0, WIRE_INTAKE_SIGNATURE) &&
                 (zframe_streq (f1, "BATCH") || packed) && zframe_size (f2) == 8;
    uint8_t seq[8] = {0};
    if (batch)
        memcpy (seq, zframe_data (f2), 8);
    size_t records = batch && !packed ? zmsg_size (msg) - 3 : 0;
    for (zframe_t *f = batch && packed ? zmsg_next (msg) : NULL; f; f = zmsg_next (msg)) {
        size_t count;
        const uint8_t *first;
        char why[128];
        records +=
            omni_wire_unpack (zframe_data (f), zframe_size (f), &count, &first, why, sizeof why)
                ? 1
                : count;
    }
    assert (zmsg_send (&msg, s_client) == 0);
    s_intake_round (s_server);

    //  Exactly one reply
    zmsg_t *reply = zmsg_recv (s_client);
    assert (reply);
    char *sig = zmsg_popstr (reply), *command = zmsg_popstr (reply);
    assert (sig && streq (sig, WIRE_INTAKE_SIGNATURE) && command);
    zframe_t *echo = zmsg_pop (reply);
    assert (echo && zframe_size (echo) == 8);
    if (batch) {
        //  Every record frame accepted or rejected, under the batch's seq
        assert (streq (command, "ACK"));
        assert (memcmp (zframe_data (echo), seq, 8) == 0);
        zframe_t *accepted = zmsg_pop (reply), *rejected = zmsg_pop (reply);
        assert (accepted && rejected && zframe_size (accepted) == 4);
        uint64_t n = omni_util_get_be (zframe_data (accepted), 4) +
                     omni_util_get_be (zframe_data (rejected), 4);
        assert (n == records);
        zframe_destroy (&accepted);
        zframe_destroy (&rejected);
    } else
        assert (streq (command, "ERROR"));
    zframe_destroy (&echo);
    free (sig);
    free (command);
    zmsg_destroy (&reply);
    //  Nothing else is waiting
    assert (!(zsock_events (s_client) & ZMQ_POLLIN));

    char health[512];
    if (!server_healthy (s_server, health, sizeof health)) {
        fprintf (stderr, "fuzz_intake: %s\n", health);
        abort ();
    }
    return 0;
}
