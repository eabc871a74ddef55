/*  wire: the one codec of the intake and delivery protocols.

    Built as a table of heads (the frames and their widths per command)
    rather than a function per message written out by hand, which is how the
    protocol used to be spelt in seven places that could drift apart: one
    table is what a generated codec (zproto) would hold, and the encoder, the
    streaming decoder and the zmsg decoder all read it.                       */
#include "proto/wire.h"
#include "common/util.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

typedef enum {
    F_SEQ,      //  u64: intake's batch sequence
    F_U32_ACC,  //  u32: accepted
    F_U32_REJ,  //  u32: rejected
    F_UPTO,     //  u64
    F_WINDOW,   //  u32
    F_CURSOR,   //  u64
    F_JOURNAL,  //  16 bytes
    F_TEXT,     //  bytes: writers, reason, name
    F_INSTANCE, //  bytes, optional (last but one or last)
    F_FEATURES, //  bytes, optional (the last field; after F_INSTANCE only with it)
} s_field_t;

typedef struct {
    omni_wire_protocol_t protocol;
    const char *name;
    s_field_t fields[4];
    size_t nfields;
    bool records;
} s_head_spec_t;

static const s_head_spec_t s_heads[WIRE_COMMANDS] = {
    [WIRE_BATCH] = {WIRE_INTAKE, "BATCH", {F_SEQ}, 1, true},
    [WIRE_REPLAY] = {WIRE_INTAKE, "REPLAY", {F_SEQ, F_TEXT}, 2, true},
    [WIRE_INTAKE_ACK] = {WIRE_INTAKE, "ACK", {F_SEQ, F_U32_ACC, F_U32_REJ, F_FEATURES}, 4, false},
    [WIRE_INTAKE_ERROR] = {WIRE_INTAKE, "ERROR", {F_SEQ, F_TEXT}, 2, false},
    [WIRE_HELLO] = {WIRE_DELIVERY, "HELLO", {F_TEXT, F_WINDOW, F_INSTANCE, F_FEATURES}, 4, false},
    [WIRE_WELCOME] = {WIRE_DELIVERY, "WELCOME", {F_JOURNAL, F_CURSOR}, 2, false},
    [WIRE_REFUSED] = {WIRE_DELIVERY, "ERROR", {F_TEXT}, 1, false},
    [WIRE_DELIVER] = {WIRE_DELIVERY, "DELIVER", {F_UPTO}, 1, true},
    [WIRE_DELIVERY_ACK] = {WIRE_DELIVERY, "ACK", {F_UPTO, F_WINDOW}, 2, false},
    [WIRE_RESET] = {WIRE_DELIVERY, "RESET", {F_TEXT}, 1, false},
    [WIRE_HEARTBEAT] = {WIRE_DELIVERY, "HEARTBEAT", {F_CURSOR}, 1, false},
    [WIRE_CONFLICT] = {WIRE_DELIVERY, "CONFLICT", {0}, 0, true},
    [WIRE_DELIVERP] = {WIRE_DELIVERY, "DELIVERP", {F_UPTO}, 1, true},
    [WIRE_BATCHP] = {WIRE_INTAKE, "BATCHP", {F_SEQ}, 1, true},
};

static bool
s_optional (s_field_t field)
{
    return field == F_INSTANCE || field == F_FEATURES;
}

static const char *
s_signature (omni_wire_protocol_t protocol)
{
    return protocol == WIRE_INTAKE ? WIRE_INTAKE_SIGNATURE : WIRE_DELIVERY_SIGNATURE;
}

static size_t
s_width (s_field_t field)
{
    switch (field) {
    case F_SEQ:
    case F_UPTO:
    case F_CURSOR: return 8;
    case F_U32_ACC:
    case F_U32_REJ:
    case F_WINDOW: return 4;
    case F_JOURNAL: return WIRE_JOURNAL_ID;
    default: return 0; //  any length
    }
}

const char *
omni_wire_command_name (omni_wire_command_t command)
{
    return command > WIRE_NONE && command < WIRE_COMMANDS ? s_heads[command].name : "?";
}

bool
omni_wire_carries_records (omni_wire_command_t command)
{
    return command > WIRE_NONE && command < WIRE_COMMANDS && s_heads[command].records;
}

//  The bytes of one field of `head`, into `buf` for integers.
static const void *
s_field_bytes (const omni_wire_head_t *head, s_field_t field, uint8_t buf[8], size_t *size)
{
    *size = s_width (field);
    switch (field) {
    case F_SEQ: omni_util_put_be (buf, head->seq, 8); return buf;
    case F_UPTO: omni_util_put_be (buf, head->upto, 8); return buf;
    case F_CURSOR: omni_util_put_be (buf, head->cursor, 8); return buf;
    case F_U32_ACC: omni_util_put_be (buf, head->accepted, 4); return buf;
    case F_U32_REJ: omni_util_put_be (buf, head->rejected, 4); return buf;
    case F_WINDOW: omni_util_put_be (buf, head->window, 4); return buf;
    case F_JOURNAL: return head->journal;
    case F_TEXT: *size = head->text ? head->text_size : 0; return head->text ? head->text : "";
    case F_INSTANCE: *size = head->instance_size; return head->instance;
    case F_FEATURES: *size = head->features_size; return head->features;
    }
    return NULL;
}

//  The fields `head` sends: absent optional ones at the end are left out
//  (features only go after an instance).
static size_t
s_fields_sent (const s_head_spec_t *spec, const omni_wire_head_t *head)
{
    size_t n = spec->nfields;
    if (n && spec->fields[n - 1] == F_FEATURES &&
        (!head->features || (n >= 2 && spec->fields[n - 2] == F_INSTANCE && !head->instance)))
        n--;
    if (n && spec->fields[n - 1] == F_INSTANCE && !head->instance)
        n--;
    return n;
}

int
omni_wire_send_head (void *sock, const void *peer, size_t peer_size, const omni_wire_head_t *head,
                     bool more, int flags)
{
    assert (head->command > WIRE_NONE && head->command < WIRE_COMMANDS);
    const s_head_spec_t *spec = &s_heads[head->command];
    const char *signature = s_signature (spec->protocol);
    if (peer) {
        if (zmq_send (sock, peer, peer_size, ZMQ_SNDMORE | flags) < 0)
            return -1;
        flags = 0;
    }
    if (zmq_send (sock, signature, strlen (signature), ZMQ_SNDMORE | flags) < 0)
        return -1;
    size_t n = s_fields_sent (spec, head);
    zmq_send (sock, spec->name, strlen (spec->name), n || more ? ZMQ_SNDMORE : 0);
    for (size_t i = 0; i < n; i++) {
        uint8_t buf[8];
        size_t size;
        const void *bytes = s_field_bytes (head, spec->fields[i], buf, &size);
        zmq_send (sock, bytes, size, i + 1 < n || more ? ZMQ_SNDMORE : 0);
    }
    return 0;
}

int
omni_wire_send_record (void *sock, const void *data, size_t size, bool last)
{
    return zmq_send (sock, data, size, last ? 0 : ZMQ_SNDMORE) < 0 ? -1 : 0;
}

int
omni_wire_recv_part (void *sock, zmq_msg_t *part, int flags)
{
    int rc;
    while ((rc = zmq_msg_recv (part, sock, flags)) < 0 && zmq_errno () == EINTR &&
           !(flags & ZMQ_DONTWAIT))
        ;
    return rc < 0 ? -1 : 0;
}

static bool
s_equals (const void *data, size_t size, const char *text)
{
    return size == strlen (text) && memcmp (data, text, size) == 0;
}

static void
s_store_field (omni_wire_head_t *head, s_field_t field, const void *data, size_t size)
{
    switch (field) {
    case F_SEQ: head->seq = omni_util_get_be (data, 8); break;
    case F_UPTO: head->upto = omni_util_get_be (data, 8); break;
    case F_CURSOR: head->cursor = omni_util_get_be (data, 8); break;
    case F_U32_ACC: head->accepted = (uint32_t) omni_util_get_be (data, 4); break;
    case F_U32_REJ: head->rejected = (uint32_t) omni_util_get_be (data, 4); break;
    case F_WINDOW: head->window = (uint32_t) omni_util_get_be (data, 4); break;
    case F_JOURNAL: memcpy (head->journal, data, WIRE_JOURNAL_ID); break;
    case F_TEXT:
        head->text = data;
        head->text_size = size;
        break;
    case F_INSTANCE:
        head->instance = data;
        head->instance_size = size;
        break;
    case F_FEATURES:
        head->features = data;
        head->features_size = size;
        break;
    }
}

int
omni_wire_head_feed (omni_wire_protocol_t protocol, omni_wire_head_t *head, size_t index,
                     const void *data, size_t size, bool more, char *why, size_t why_size)
{
    if (index == 0) {
        memset (head, 0, sizeof *head);
        if (!s_equals (data, size, s_signature (protocol))) {
            snprintf (why, why_size, "not an %s message (signature of %zu bytes)",
                      s_signature (protocol), size);
            return -1;
        }
    } else if (index == 1) {
        for (int c = WIRE_NONE + 1; c < WIRE_COMMANDS; c++)
            if (s_heads[c].protocol == protocol && s_equals (data, size, s_heads[c].name)) {
                //  Intake's ACK and ERROR go to collectors, delivery's ERROR to
                //  writers: a name is unique within a protocol
                head->command = (omni_wire_command_t) c;
                break;
            }
        if (head->command == WIRE_NONE) {
            snprintf (why, why_size, "unknown command of %zu bytes", size);
            return -1;
        }
    } else {
        const s_head_spec_t *spec = &s_heads[head->command];
        s_field_t field = spec->fields[index - 2];
        size_t width = s_width (field);
        if (width && size != width) {
            snprintf (why, why_size, "%s field %zu is %zu bytes, not %zu", spec->name, index - 1,
                      size, width);
            return -1;
        }
        s_store_field (head, field, data, size);
    }
    const s_head_spec_t *spec = &s_heads[head->command];
    if (index == 0)
        return more ? 0 : (snprintf (why, why_size, "a signature alone"), -1);
    size_t fields = index - 1; //  fields received so far
    size_t required = spec->nfields;
    while (required && s_optional (spec->fields[required - 1]))
        required--;
    if (fields < required) {
        if (!more) {
            snprintf (why, why_size, "%s with %zu of its %zu fields", spec->name, fields, required);
            return -1;
        }
        return 0;
    }
    if (fields < spec->nfields && more)
        return 0; //  an optional field follows
    //  More frames after a head without records: fields a later version
    //  added, which this one does not know (PROTOCOL.md, "Versioning")
    return 1;
}

int
omni_wire_decode (omni_wire_protocol_t protocol, zmsg_t *msg, omni_wire_head_t *head, char *why,
                  size_t why_size)
{
    size_t total = zmsg_size (msg), index = 0;
    for (zframe_t *frame = zmsg_first (msg); frame; frame = zmsg_next (msg), index++) {
        int rc = omni_wire_head_feed (protocol, head, index, zframe_data (frame),
                                      zframe_size (frame), index + 1 < total, why, why_size);
        if (rc > 0)
            return 0;
        if (rc < 0)
            return -1;
    }
    snprintf (why, why_size, "empty message");
    return -1;
}

zmsg_t *
omni_wire_encode (omni_wire_protocol_t protocol, const omni_wire_head_t *head)
{
    assert (head->command > WIRE_NONE && head->command < WIRE_COMMANDS);
    const s_head_spec_t *spec = &s_heads[head->command];
    assert (spec->protocol == protocol);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, s_signature (protocol));
    zmsg_addstr (msg, spec->name);
    for (size_t i = 0; i < s_fields_sent (spec, head); i++) {
        uint8_t buf[8];
        size_t size;
        const void *bytes = s_field_bytes (head, spec->fields[i], buf, &size);
        zmsg_addmem (msg, bytes, size);
    }
    return msg;
}

bool
omni_wire_has_feature (const omni_wire_head_t *head, const char *feature)
{
    size_t want = strlen (feature);
    for (size_t i = 0; head->features && i < head->features_size;) {
        size_t end = i;
        while (end < head->features_size && head->features[end] != ' ')
            end++;
        if (end - i == want && memcmp (head->features + i, feature, want) == 0)
            return true;
        i = end + 1;
    }
    return false;
}

size_t
omni_wire_pack_size (size_t count, size_t bytes)
{
    return 4 + 4 * count + bytes;
}

void
omni_wire_pack (void *frame, const char *data, const size_t *ends, size_t first, size_t count)
{
    uint8_t *out = frame;
    size_t start = first ? ends[first - 1] : 0;
    omni_util_put_be (out, count, 4);
    for (size_t i = 0, from = start; i < count; from = ends[first + i++])
        omni_util_put_be (out + 4 + 4 * i, ends[first + i] - from, 4);
    if (count)
        memcpy (out + 4 + 4 * count, data + start, ends[first + count - 1] - start);
}

int
omni_wire_unpack (const void *frame, size_t size, size_t *count, const uint8_t **records, char *why,
                  size_t why_size)
{
    const uint8_t *in = frame;
    if (size < 4) {
        snprintf (why, why_size, "a packed frame of %zu bytes", size);
        return -1;
    }
    uint64_t n = omni_util_get_be (in, 4);
    //  Every record takes its size and at least a byte
    if (n == 0 || n > (size - 4) / 5) {
        snprintf (why, why_size, "a packed frame of %zu bytes says %" PRIu64 " records", size, n);
        return -1;
    }
    uint64_t total = 4 + 4 * n;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t one = omni_util_get_be (in + 4 + 4 * i, 4);
        if (one == 0) {
            snprintf (why, why_size, "packed record %" PRIu64 " of %" PRIu64 " is empty", i + 1, n);
            return -1;
        }
        total += one;
    }
    if (total != size) {
        snprintf (why, why_size,
                  "a packed frame of %zu bytes whose %" PRIu64 " records take %" PRIu64, size, n,
                  total);
        return -1;
    }
    *count = (size_t) n;
    *records = in + 4 + 4 * n;
    return 0;
}

size_t
omni_wire_packed_size (const void *frame, size_t i)
{
    return (size_t) omni_util_get_be ((const uint8_t *) frame + 4 + 4 * i, 4);
}

int
omni_wire_send_packed (void *sock, const char *data, const size_t *ends, size_t first, size_t count,
                       bool last)
{
    size_t start = first ? ends[first - 1] : 0;
    zmq_msg_t frame;
    if (zmq_msg_init_size (&frame, omni_wire_pack_size (count, ends[first + count - 1] - start)))
        abort (); //  out of memory, as omni_buf does: the head is out already
    omni_wire_pack (zmq_msg_data (&frame), data, ends, first, count);
    if (zmq_msg_send (&frame, sock, last ? 0 : ZMQ_SNDMORE) < 0) {
        zmq_msg_close (&frame);
        return -1;
    }
    return 0;
}

//  ---------------------------------------------------------------------------

static void
s_roundtrip (omni_wire_protocol_t protocol, const omni_wire_head_t *in, size_t records)
{
    static int round;
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "inproc://wire-test-%d", round++);
    zsock_t *a = zsock_new (ZMQ_PAIR), *b = zsock_new (ZMQ_PAIR);
    assert (a && b);
    assert (zsock_bind (a, "%s", endpoint) == 0);
    assert (zsock_connect (b, "%s", endpoint) == 0);
    assert (a && b);
    assert (omni_wire_send_head (zsock_resolve (a), NULL, 0, in, records > 0, 0) == 0);
    for (size_t i = 0; i < records; i++)
        assert (omni_wire_send_record (zsock_resolve (a), "\x80", 1, i + 1 == records) == 0);
    zmsg_t *msg = zmsg_recv (b);
    omni_wire_head_t out;
    char why[128];
    assert (omni_wire_decode (protocol, msg, &out, why, sizeof why) == 0);
    assert (out.command == in->command && out.seq == in->seq && out.upto == in->upto);
    assert (out.accepted == in->accepted && out.rejected == in->rejected);
    assert (out.window == in->window && out.cursor == in->cursor);
    assert (memcmp (out.journal, in->journal, WIRE_JOURNAL_ID) == 0);
    assert (out.text_size == (in->text ? in->text_size : 0));
    assert (!in->text || memcmp (out.text, in->text, in->text_size) == 0);
    assert ((out.instance == NULL) == (in->instance == NULL));
    assert ((out.features == NULL) == (in->features == NULL));
    assert (out.features_size == (in->features ? in->features_size : 0));
    size_t n = 0;
    while (zmsg_next (msg))
        n++;
    assert (n == records);
    zmsg_destroy (&msg);

    //  The zmsg encoder spells the same frames
    if (!omni_wire_carries_records (in->command)) {
        msg = omni_wire_encode (protocol, in);
        assert (omni_wire_decode (protocol, msg, &out, why, sizeof why) == 0);
        assert (out.command == in->command);
        zmsg_destroy (&msg);
    }
    zsock_destroy (&a);
    zsock_destroy (&b);
}

static int
s_decode_frames (omni_wire_protocol_t protocol, const char *const *frames, const size_t *sizes,
                 size_t n, char *why, size_t why_size)
{
    zmsg_t *msg = zmsg_new ();
    for (size_t i = 0; i < n; i++)
        zmsg_addmem (msg, frames[i], sizes[i]);
    omni_wire_head_t head;
    int rc = omni_wire_decode (protocol, msg, &head, why, why_size);
    zmsg_destroy (&msg);
    return rc;
}

void
omni_wire_test (bool verbose)
{
    (void) verbose;
    omni_wire_head_t head = {.command = WIRE_BATCH, .seq = 0x0102030405060708ULL};
    s_roundtrip (WIRE_INTAKE, &head, 0);
    s_roundtrip (WIRE_INTAKE, &head, 3);
    head =
        (omni_wire_head_t){.command = WIRE_REPLAY, .seq = 9, .text = "relational", .text_size = 10};
    s_roundtrip (WIRE_INTAKE, &head, 2);
    head =
        (omni_wire_head_t){.command = WIRE_INTAKE_ACK, .seq = 7, .accepted = 70000, .rejected = 3};
    s_roundtrip (WIRE_INTAKE, &head, 0);
    head.features = WIRE_FEATURE_PACKED;
    head.features_size = strlen (WIRE_FEATURE_PACKED);
    s_roundtrip (WIRE_INTAKE, &head, 0);
    head = (omni_wire_head_t){.command = WIRE_BATCHP, .seq = 8};
    s_roundtrip (WIRE_INTAKE, &head, 2);
    head =
        (omni_wire_head_t){.command = WIRE_INTAKE_ERROR, .seq = 7, .text = "bad", .text_size = 3};
    s_roundtrip (WIRE_INTAKE, &head, 0);
    head =
        (omni_wire_head_t){.command = WIRE_HELLO, .text = "archive", .text_size = 7, .window = 500};
    s_roundtrip (WIRE_DELIVERY, &head, 0);
    head.instance = "h:1@t";
    head.instance_size = 5;
    s_roundtrip (WIRE_DELIVERY, &head, 0);
    head.features = "later " WIRE_FEATURE_PACKED;
    head.features_size = strlen (head.features);
    s_roundtrip (WIRE_DELIVERY, &head, 0);
    head = (omni_wire_head_t){.command = WIRE_WELCOME, .cursor = 42};
    memset (head.journal, 0xab, WIRE_JOURNAL_ID);
    s_roundtrip (WIRE_DELIVERY, &head, 0);
    head = (omni_wire_head_t){.command = WIRE_REFUSED, .text = "held", .text_size = 4};
    s_roundtrip (WIRE_DELIVERY, &head, 0);
    head = (omni_wire_head_t){.command = WIRE_DELIVER, .upto = 1ULL << 40};
    s_roundtrip (WIRE_DELIVERY, &head, 0);
    s_roundtrip (WIRE_DELIVERY, &head, 5);
    head = (omni_wire_head_t){.command = WIRE_DELIVERY_ACK, .upto = 5, .window = 1000};
    s_roundtrip (WIRE_DELIVERY, &head, 0);
    head = (omni_wire_head_t){.command = WIRE_RESET, .text = "who", .text_size = 3};
    s_roundtrip (WIRE_DELIVERY, &head, 0);
    head = (omni_wire_head_t){.command = WIRE_HEARTBEAT, .cursor = 77};
    s_roundtrip (WIRE_DELIVERY, &head, 0);
    head = (omni_wire_head_t){.command = WIRE_CONFLICT};
    s_roundtrip (WIRE_DELIVERY, &head, 3);
    head = (omni_wire_head_t){.command = WIRE_DELIVERP, .upto = 9};
    s_roundtrip (WIRE_DELIVERY, &head, 1);

    //  Features: whole words only
    omni_wire_head_t f = {.features = "packedx a packed", .features_size = 16};
    assert (omni_wire_has_feature (&f, "packed") && omni_wire_has_feature (&f, "a"));
    f.features_size = 8;
    assert (!omni_wire_has_feature (&f, "packed") && !omni_wire_has_feature (&f, "pack"));
    f.features = NULL;
    assert (!omni_wire_has_feature (&f, "packed"));

    //  A packed frame comes back as it went; every malformed one is refused
    {
        const char data[] = "abcdefghij";
        size_t ends[] = {1, 4, 10}, count;
        uint8_t frame[64];
        size_t size = omni_wire_pack_size (3, 10);
        assert (size == 4 + 12 + 10);
        omni_wire_pack (frame, data, ends, 0, 3);
        const uint8_t *records;
        char why[128];
        assert (omni_wire_unpack (frame, size, &count, &records, why, sizeof why) == 0);
        assert (count == 3 && memcmp (records, data, 10) == 0);
        //  The last two alone
        uint8_t part[64];
        omni_wire_pack (part, data, ends, 1, 2);
        assert (omni_wire_unpack (part, omni_wire_pack_size (2, 9), &count, &records, why,
                                  sizeof why) == 0);
        assert (count == 2 && memcmp (records, data + 1, 9) == 0);
        assert (omni_wire_packed_size (part, 0) == 3 && omni_wire_packed_size (part, 1) == 6);
        assert (omni_wire_packed_size (frame, 0) == 1 && omni_wire_packed_size (frame, 1) == 3 &&
                omni_wire_packed_size (frame, 2) == 6);
        for (size_t cut = 0; cut < size; cut++)
            assert (omni_wire_unpack (frame, cut, &count, &records, why, sizeof why) == -1);
        frame[size] = 'k';
        assert (omni_wire_unpack (frame, size + 1, &count, &records, why, sizeof why) == -1);
        assert (strstr (why, "take 26"));
        omni_util_put_be (frame + 8, 0, 4); //  an empty record
        assert (omni_wire_unpack (frame, size, &count, &records, why, sizeof why) == -1);
        assert (strstr (why, "record 2 of 3 is empty"));
        omni_util_put_be (frame, 0xffffffff, 4); //  a count no frame holds
        assert (omni_wire_unpack (frame, size, &count, &records, why, sizeof why) == -1);
        omni_util_put_be (frame, 0, 4);
        assert (omni_wire_unpack (frame, 4, &count, &records, why, sizeof why) == -1);
        //  Sizes that overflow 32 bits in a sum still add up in 64
        omni_util_put_be (frame, 2, 4);
        omni_util_put_be (frame + 4, 0xffffffff, 4);
        omni_util_put_be (frame + 8, 0xffffffff, 4);
        assert (omni_wire_unpack (frame, 12 + 2, &count, &records, why, sizeof why) == -1);
    }

    //  Malformed heads are refused with words, never read past
    char why[128];
    const char *f1[] = {"OI/1", "BATCH", "1234567"};
    size_t s1[] = {4, 5, 7};
    assert (s_decode_frames (WIRE_INTAKE, f1, s1, 3, why, sizeof why) == -1);
    assert (strstr (why, "is 7 bytes, not 8"));
    const char *f2[] = {"OD/1", "BATCH", "12345678"};
    size_t s2[] = {4, 5, 8};
    assert (s_decode_frames (WIRE_INTAKE, f2, s2, 3, why, sizeof why) == -1);
    assert (strstr (why, "not an OI/1 message"));
    assert (s_decode_frames (WIRE_DELIVERY, f2, s2, 3, why, sizeof why) == -1);
    assert (strstr (why, "unknown command"));
    const char *f3[] = {"OI/1", "ACK", "12345678", "1234"};
    size_t s3[] = {4, 3, 8, 4};
    assert (s_decode_frames (WIRE_INTAKE, f3, s3, 4, why, sizeof why) == -1);
    assert (strstr (why, "ACK with 2 of its 3 fields"));
    //  A later version's extra fields are read past, not refused
    const char *f4[] = {"OD/1", "RESET", "x", "extra"};
    size_t s4[] = {4, 5, 1, 5};
    assert (s_decode_frames (WIRE_DELIVERY, f4, s4, 4, why, sizeof why) == 0);
    const char *f6[] = {"OD/1", "HELLO", "archive", "\0\0\0\1", "h:1@t", "later"};
    size_t s6[] = {4, 5, 7, 4, 5, 5};
    assert (s_decode_frames (WIRE_DELIVERY, f6, s6, 6, why, sizeof why) == 0);
    const char *f5[] = {"OI/1"};
    size_t s5[] = {4};
    assert (s_decode_frames (WIRE_INTAKE, f5, s5, 1, why, sizeof why) == -1);
    assert (s_decode_frames (WIRE_INTAKE, f5, s5, 0, why, sizeof why) == -1);
    assert (streq (omni_wire_command_name (WIRE_DELIVERY_ACK), "ACK"));
    assert (!omni_wire_carries_records (WIRE_HELLO) && omni_wire_carries_records (WIRE_DELIVER));
    assert (omni_wire_carries_records (WIRE_DELIVERP) && omni_wire_carries_records (WIRE_BATCHP));
}
