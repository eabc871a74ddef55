/*  delivery: ingestd's writer sessions (see delivery.h).

    A writer's credit is counted in records and in bytes: a window of small
    records is not a window of 4 MiB ones. What is in flight is a list of
    the DELIVER messages sent and not yet acknowledged (their upto, records
    and bytes), so that an ACK, cumulative, frees exactly what it covers.
    Cursors live in the journal: moved in memory on ACK, persisted (one
    fsync) at most every SYNC_MS, not per ACK: after a crash a writer
    receives at most that much again, and writers are idempotent.

    A new connection for a name starts from the durable cursor: what the
    old one had in flight is delivered again. Peers are not trusted to
    follow the conversation: a malformed message, an unknown command or a
    name not configured gets RESET (or nothing), a counter, and a log line
    a minute at most (a peer decides how many come).                      */
#include "ingestd/delivery.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "ingestd/route.h"
#include "proto/curve_roles.h"
#include "proto/kinds.h"
#include "proto/wire.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <string.h>

#define DELIVER_RECORDS 1000      //  records per DELIVER message
#define DELIVER_BYTES   (4 << 20) //  or bytes per DELIVER message
#define SCAN_LIMIT      20000     //  journal entries scanned per DELIVER
#define FILL_KEEP       (1 << 20) //  bytes of a DELIVER's buffer kept between them
//  Writers send HELLO, ACK and small CONFLICTs only (wire.h): frames past
//  these are read past, a frame over the bound closes the connection
#define DELIVERY_FRAMES   WIRE_DELIVERY_FRAMES
#define INFLIGHT_BYTES    (64 << 20) //  record bytes delivered and unacknowledged, per writer
#define HEARTBEAT_MS      1000
#define SYNC_MS           50
#define INSTANCE_MAX      128 //  bytes of a writer instance id kept
#define DELIVERY_MESSAGES 256 //  messages read per round

typedef struct {
    uint64_t upto;
    uint32_t records;
    uint32_t bytes;
} s_inflight_t;

//  One configured writer and its connection, if any.
typedef struct {
    char *name;
    size_t index;       //  in the journal's writer list
    unsigned role;      //  omni_writer_role_t bit
    zframe_t *peer;     //  routing id of its connection, NULL when none
    int peer_fd;        //  its TCP socket in libzmq, -1 when unknown
    uint64_t sent_upto; //  last offset covered by a DELIVER on this connection
    uint32_t window;    //  credit granted in its last HELLO / ACK (capped by window_max)
    uint32_t inflight_records;
    uint64_t inflight_bytes;
    s_inflight_t *inflight;
    size_t ninflight, inflight_cap;
    _Atomic int64_t last_heard_ms; //  read by /health
    int64_t last_sent_ms;          //  anything sent on this connection
    char instance[INSTANCE_MAX];   //  of the holder; under state_lock for /health
    bool packed;                   //  the holder's HELLO asked for DELIVERP
    //  A HELLO of another instance while the holder lives: it waits until
    //  the holder is heard from again (refused) or the holder's session
    //  times out or its connection closes (takes over).
    zframe_t *pending_peer;
    int pending_fd;
    char pending_instance[INSTANCE_MAX];
    uint32_t pending_window;
    bool pending_packed;
    int64_t pending_since_ms;
    omni_metric_t *m_refused;
    //  Added to a journal that had records: it starts empty from this offset
    //  (0 = not so)
    uint64_t starts_empty;
    omni_metric_t *m_delivered, *m_acked, *m_lag_records, *m_lag_seconds, *m_connected, *m_latency,
        *m_conflicts;
} s_session_t;

struct _delivery_t {
    delivery_config_t config;
    zsock_t *sock;
    journal_t *journal;
    peers_t *peers;
    tap_t *tap;
    pthread_mutex_t *state_lock;
    s_session_t *sessions;
    size_t nsessions;
    char writers_text[256];                //  the configured writer names, for messages
    char peer_key[512], peer_writers[512]; //  CURVE metadata of the message in hand
    int64_t last_sync_ms;                  //  cursors last persisted
    //  The DELIVER being filled: its records copied end to end (route_frames_t)
    omni_buf_t fill_bytes;
    size_t fill_ends[DELIVER_RECORDS];
    omni_metric_t *m_trimmed, *m_hello_ignored, *m_bad_messages, *m_replies_dropped;
};

static void
s_register_metrics (delivery_t *self, omni_metrics_t *m)
{
    self->m_trimmed = omni_metrics_counter (m, "records_acked_by_all_total",
                                            "Records every writer acknowledged (trimmed)", NULL);
    self->m_hello_ignored = omni_metrics_counter (
        m, "hello_ignored_total",
        "HELLOs on a connection that holds its writer name with records in flight (not re-sent)",
        NULL);
    self->m_bad_messages = omni_metrics_counter (
        m, "delivery_bad_messages_total",
        "Delivery messages malformed, of unknown commands or writer names", NULL);
    self->m_replies_dropped = omni_metrics_counter (
        m, "replies_dropped_total",
        "Messages not sent because the peer does not read them (it is disconnected)",
        "socket=\"delivery\"");
    for (size_t i = 0; i < self->nsessions; i++) {
        s_session_t *s = &self->sessions[i];
        char labels[96];
        snprintf (labels, sizeof labels, "writer=\"%s\"", s->name);
        s->m_delivered =
            omni_metrics_counter (m, "records_delivered_total",
                                  "Records sent to a writer (redeliveries included)", labels);
        s->m_acked = omni_metrics_counter (m, "records_acked_total",
                                           "Records a writer acknowledged as stored", labels);
        s->m_lag_records = omni_metrics_gauge (
            m, "writer_lag_records", "Journal offsets not yet acknowledged by a writer", labels);
        s->m_lag_seconds =
            omni_metrics_gauge (m, "writer_lag_seconds",
                                "Age of the oldest record a writer has not acknowledged", labels);
        s->m_connected =
            omni_metrics_gauge (m, "writer_connected", "1 while a writer is connected", labels);
        s->m_refused = omni_metrics_counter (
            m, "writer_refused_total",
            "HELLOs refused because another live instance holds the writer name", labels);
        s->m_conflicts = omni_metrics_counter (
            m, "conflicts_reported_total",
            "Records a writer met under an id it holds with other content (kept out, filed)",
            labels);
        s->m_latency = omni_metrics_histogram (
            m, "end_to_end_seconds", "Received by ingestd to acknowledged by a writer", labels,
            omni_metrics_latency_bounds, omni_metrics_latency_nbounds);
    }
}

delivery_t *
delivery_new (zsock_t *sock, journal_t *journal, peers_t *peers, tap_t *tap,
              const delivery_config_t *config, pthread_mutex_t *state_lock, omni_metrics_t *metrics)
{
    delivery_t *self = calloc (1, sizeof *self);
    assert (self);
    //  The server's: shared with the other classes, owned by none of them
    self->sock = sock, self->journal = journal, self->peers = peers, self->tap = tap;
    self->state_lock = state_lock;
    self->config = *config;
    for (const char *const *w = config->writers; w && *w; w++)
        self->nsessions++;
    self->sessions = calloc (self->nsessions + 1, sizeof *self->sessions);
    assert (self->sessions);
    for (size_t i = 0; i < self->nsessions; i++) {
        self->sessions[i].name = strdup (config->writers[i]);
        self->sessions[i].index = i;
        self->sessions[i].role = omni_kinds_writer_role (config->writers[i]);
        self->sessions[i].peer_fd = self->sessions[i].pending_fd = -1;
        size_t used = strlen (self->writers_text);
        snprintf (self->writers_text + used, sizeof self->writers_text - used, "%s%s",
                  used ? "," : "", config->writers[i]);
    }
    if (metrics)
        s_register_metrics (self, metrics);
    for (size_t i = 0; i < self->nsessions; i++) {
        s_session_t *s = &self->sessions[i];
        if (!journal_writer_added (journal, s->index))
            continue;
        //  ingestd cannot fill it: what the journal trimmed is only in the
        //  archive, which ingestd does not read (docs/backup.md says why).
        s->starts_empty = journal_cursor (journal, s->index);
        log_warn ("journal.writer_starts_empty",
                  "writer=%s from_offset=%" PRIu64
                  " why=\"added to a journal that already had records: it gets only what comes "
                  "from now on\" hint=\"fill it from the archive: omnictl replay "
                  "--archive-dir=ARCHIVE_DIR --intake=%s --writer=%s\"",
                  s->name, s->starts_empty, config->intake, s->name);
    }
    return self;
}

void
delivery_destroy (delivery_t **self_p)
{
    delivery_t *self = *self_p;
    if (!self)
        return;
    for (size_t i = 0; i < self->nsessions; i++) {
        zframe_destroy (&self->sessions[i].peer);
        zframe_destroy (&self->sessions[i].pending_peer);
        free (self->sessions[i].inflight);
        free (self->sessions[i].name);
    }
    free (self->sessions);
    omni_buf_release (&self->fill_bytes);
    free (self);
    *self_p = NULL;
}

size_t
delivery_writers (delivery_t *self)
{
    return self->nsessions;
}

//  Sends `head` and the frames of `records` (NULL: none) to a writer's
//  connection; false when not sent (gone, or not reading: then dropped).
static bool
s_send (delivery_t *self, zframe_t *peer, int fd, const omni_wire_head_t *head,
        const route_frames_t *records)
{
    return route_send (self->peers, PEERS_DELIVERY, zsock_resolve (self->sock), zframe_data (peer),
                       zframe_size (peer), fd, head, records, self->m_replies_dropped);
}

typedef struct {
    s_session_t *session;
    delivery_t *delivery; //  its fill_bytes and fill_ends take the records
    size_t records, bytes, scanned;
    uint32_t credit;
    uint64_t upto;
} s_fill_t;

static bool
s_fill (void *arg, uint64_t offset, const void *record, size_t size, uint8_t writers,
        int64_t received_ns)
{
    s_fill_t *fill = arg;
    (void) received_ns;
    if (writers & fill->session->role) {
        if (fill->records >= fill->credit || fill->records >= DELIVER_RECORDS ||
            (fill->records > 0 && fill->bytes + size > DELIVER_BYTES))
            return false;
        omni_buf_append (&fill->delivery->fill_bytes, record, size);
        fill->delivery->fill_ends[fill->records++] = fill->delivery->fill_bytes.size;
        fill->bytes += size;
    }
    fill->upto = offset;
    return ++fill->scanned < SCAN_LIMIT;
}

//  Sends DELIVER messages to one writer while it has credit and the journal
//  has records past what it was sent.
static void
s_pump (delivery_t *self, s_session_t *s)
{
    uint64_t last = journal_next_offset (self->journal) - 1;
    //  Bounded by the writer's window, not by a message count: a writer with
    //  a large batch must get it without waiting for the next poll round.
    while (s->peer && s->sent_upto < last) {
        //  Credit in records, and in bytes: a window of small records is
        //  not a window of 4 MiB ones
        if (s->inflight_records >= s->window || s->inflight_bytes >= INFLIGHT_BYTES)
            return;
        //  An offset range with nothing for this writer also needs an ACK
        //  before it can be trimmed, but it costs no credit; still, do not
        //  pile up empty messages.
        s_fill_t fill = {s, self, 0, 0, 0, s->window - s->inflight_records, s->sent_upto};
        omni_buf_reset (&self->fill_bytes);
        journal_scan (self->journal, s->sent_upto + 1, s_fill, &fill);
        if (fill.upto <= s->sent_upto)
            return;
        if (fill.records == 0 && s->ninflight > 0 && s->inflight[s->ninflight - 1].records == 0)
            return;
        //  Not sent: the writer is gone or does not read (then it is
        //  dropped); its session ends with its connection
        omni_wire_head_t head = {
            .command = s->packed && fill.records ? WIRE_DELIVERP : WIRE_DELIVER, .upto = fill.upto};
        route_frames_t frames = {self->fill_bytes.data, self->fill_ends, fill.records};
        bool sent = s_send (self, s->peer, s->peer_fd, &head, &frames);
        //  Kept for the next DELIVER, unless large records grew it: the
        //  memory guard counts what stays
        if (self->fill_bytes.capacity > FILL_KEEP)
            omni_buf_release (&self->fill_bytes);
        if (!sent)
            return;
        s->last_sent_ms = omni_util_mono_ms ();
        *omni_array_push (s->inflight, s->ninflight, s->inflight_cap) =
            (s_inflight_t){fill.upto, (uint32_t) fill.records, (uint32_t) fill.bytes};
        s->inflight_records += (uint32_t) fill.records;
        s->inflight_bytes += fill.bytes;
        s->sent_upto = fill.upto;
        omni_metric_add (s->m_delivered, fill.records);
    }
}

void
delivery_pump (delivery_t *self)
{
    for (size_t i = 0; i < self->nsessions; i++)
        s_pump (self, &self->sessions[i]);
}

static void
s_delivery_reply (delivery_t *self, zframe_t *peer, int fd, omni_wire_command_t command,
                  const char *text)
{
    omni_wire_head_t head = {.command = command, .text = text, .text_size = strlen (text)};
    s_send (self, peer, fd, &head, NULL);
}

static s_session_t *
s_session_by_peer (delivery_t *self, zframe_t *peer)
{
    for (size_t i = 0; i < self->nsessions; i++)
        if (self->sessions[i].peer && zframe_eq (self->sessions[i].peer, peer))
            return &self->sessions[i];
    return NULL;
}

//  The instance id of a HELLO (its optional last field), cut to printable
//  characters without blanks or quotes so that logs and /health show it as is.
static void
s_instance (const omni_wire_head_t *hello, char *out, size_t size)
{
    size_t n = 0;
    const uint8_t *data = (const uint8_t *) hello->instance;
    for (size_t i = 0; data && i < hello->instance_size && n + 1 < size; i++)
        out[n++] = data[i] > 0x20 && data[i] < 0x7f && data[i] != '"' && data[i] != '\\'
                       ? (char) data[i]
                       : '_';
    out[n] = 0;
}

static const char *
s_shown (const char *instance)
{
    return *instance ? instance : "unnamed"; //  a writer without instance ids
}

//  Refuses the waiting HELLO: the holder was heard from after it came.
static void
s_refuse_pending (delivery_t *self, s_session_t *s)
{
    int64_t heard_ms = omni_util_mono_ms () - s->last_heard_ms;
    char text[512];
    snprintf (text, sizeof text,
              "writer name \"%s\" is held by live instance %s (heard from %.1fs ago, after this "
              "HELLO); one writer per name: stop one of them",
              s->name, s_shown (s->instance), (double) heard_ms / 1000.0);
    s_delivery_reply (self, s->pending_peer, s->pending_fd, WIRE_REFUSED, text);
    omni_metric_add (s->m_refused, 1);
    log_error ("delivery.writer_refused",
               "writer=%s instance=%s holder=%s holder_heard_ms=%" PRId64 " waited_ms=%" PRId64,
               s->name, s_shown (s->pending_instance), s_shown (s->instance), heard_ms,
               omni_util_mono_ms () - s->pending_since_ms);
    zframe_destroy (&s->pending_peer);
}

//  `peer` holds the writer name from now on.
static void
s_welcome (delivery_t *self, s_session_t *s, zframe_t *peer, int fd, const char *instance,
           uint32_t window, bool packed)
{
    bool same_peer = s->peer && zframe_eq (s->peer, peer);
    if (s->peer && !same_peer && *instance && strcmp (instance, s->instance) == 0)
        log_info ("delivery.writer_reconnected", "writer=%s instance=%s", s->name, instance);
    else if (s->peer && !same_peer)
        log_warn ("delivery.writer_replaced",
                  "writer=%s instance=%s previous=%s previous_silent_ms=%" PRId64, s->name,
                  s_shown (instance), s_shown (s->instance),
                  omni_util_mono_ms () - s->last_heard_ms);
    if (s->pending_peer && zframe_eq (s->pending_peer, peer))
        zframe_destroy (&s->pending_peer);
    //  A new connection for this name: whatever the old one had in flight
    //  is delivered again from the durable cursor.
    zframe_destroy (&s->peer);
    s->peer = zframe_dup (peer);
    s->peer_fd = fd;
    pthread_mutex_lock (self->state_lock);
    snprintf (s->instance, sizeof s->instance, "%s", instance);
    pthread_mutex_unlock (self->state_lock);
    s->window = window;
    s->packed = packed;
    s->sent_upto = journal_cursor (self->journal, s->index) - 1;
    s->ninflight = 0;
    s->inflight_records = 0;
    s->inflight_bytes = 0;
    s->last_heard_ms = omni_util_mono_ms ();
    omni_wire_head_t head = {.command = WIRE_WELCOME, .cursor = s->sent_upto + 1};
    _Static_assert(JOURNAL_ID_SIZE == WIRE_JOURNAL_ID, "WELCOME carries the journal's id");
    memcpy (head.journal, journal_id (self->journal), WIRE_JOURNAL_ID);
    s_send (self, peer, fd, &head, NULL);
    omni_metric_set (s->m_connected, 1);
    log_info ("delivery.hello", "writer=%s instance=%s cursor=%" PRIu64 " window=%u packed=%s",
              s->name, s_shown (instance), s->sent_upto + 1, s->window, packed ? "yes" : "no");
    //  The holder just spoke: a HELLO waiting for the name is refused.
    if (s->pending_peer)
        s_refuse_pending (self, s);
}

//  The holder of a name with a HELLO waiting was silent for the session
//  timeout: the waiting writer takes over.
static void
s_expire_holder (delivery_t *self, s_session_t *s)
{
    if (!s->pending_peer ||
        omni_util_mono_ms () - s->last_heard_ms < self->config.session_timeout_ms)
        return;
    zframe_t *peer = s->pending_peer;
    s->pending_peer = NULL;
    char instance[INSTANCE_MAX];
    snprintf (instance, sizeof instance, "%s", s->pending_instance);
    s_welcome (self, s, peer, s->pending_fd, instance, s->pending_window, s->pending_packed);
    zframe_destroy (&peer);
}

//  A malformed delivery message or a HELLO for no configured writer: the
//  first is logged, then one a minute (a peer decides how many come).
static void
s_delivery_bad (delivery_t *self, zframe_t *peer, int fd, const char *what, const char *detail)
{
    omni_metric_add (self->m_bad_messages, 1);
    uint64_t held;
    if (omni_log_allow ("delivery.bad_message", "", 60000, &held))
        log_warn ("delivery.bad_message", "what=%s detail=\"%s\" repeated=%" PRIu64, what, detail,
                  held);
    if (peer)
        s_delivery_reply (self, peer, fd, WIRE_RESET, detail);
}

//  A writer name as it must be on the wire: 1..WRITER_NAME_MAX printable
//  characters, no blanks, quotes, backslashes or NULs ("archive\0evil" is
//  not "archive"). Whether it is configured is asked after.
#define WRITER_NAME_MAX 32
static bool
s_writer_name_ok (const void *name, size_t size)
{
    const uint8_t *data = name;
    if (size == 0 || size > WRITER_NAME_MAX)
        return false;
    for (size_t i = 0; i < size; i++)
        if (data[i] <= 0x20 || data[i] >= 0x7f || data[i] == '"' || data[i] == '\\')
            return false;
    return true;
}

static void
s_handle_hello (delivery_t *self, zframe_t *peer, int fd, const omni_wire_head_t *hello)
{
    if (!s_writer_name_ok (hello->text, hello->text_size)) {
        //  In hex: the name may hold a NUL, which no %s shows
        char hex[2 * WRITER_NAME_MAX + 1];
        size_t shown = hello->text_size < WRITER_NAME_MAX ? hello->text_size : WRITER_NAME_MAX;
        omni_util_hex ((const uint8_t *) hello->text, shown, hex);
        char detail[256];
        snprintf (detail, sizeof detail,
                  "malformed HELLO: a writer name is 1..%d printable characters without blanks "
                  "(got %zu bytes, hex %s%s)",
                  WRITER_NAME_MAX, hello->text_size, hex, shown < hello->text_size ? "..." : "");
        s_delivery_bad (self, peer, fd, "writer_name", detail);
        return;
    }
    //  Optional: a writer of before instance ids sends none.
    char instance[INSTANCE_MAX];
    s_instance (hello, instance, sizeof instance);
    uint32_t window = hello->window;
    bool packed = omni_wire_has_feature (hello, WIRE_FEATURE_PACKED);
    //  A window is what ingestd agrees to hold for the writer
    if (window > self->config.window_max)
        window = self->config.window_max;
    char *name = strndup (hello->text, hello->text_size);
    //  CURVE lets any writer key in on delivery: the name must be its own
    char refusal[256];
    if (!omni_curve_server_writer_allowed_meta (self->config.curve, self->peer_key,
                                                self->peer_writers, name, refusal,
                                                sizeof refusal)) {
        s_delivery_reply (self, peer, fd, WIRE_RESET, refusal);
        free (name);
        return;
    }
    s_session_t *s = NULL;
    for (size_t i = 0; i < self->nsessions; i++)
        if (strcmp (self->sessions[i].name, name) == 0)
            s = &self->sessions[i];
    if (!s) {
        char text[256];
        snprintf (text, sizeof text, "writer \"%.64s\" is not configured in ingestd.writers", name);
        //  The writer says HELLO every second until it is configured here;
        //  one key for every name, so that a peer inventing names gets no
        //  more lines than one that repeats one
        omni_metric_add (self->m_bad_messages, 1);
        uint64_t held;
        if (omni_log_allow ("delivery.unknown_writer", "", 60000, &held))
            log_warn ("delivery.unknown_writer",
                      "writer=%.64s configured=%s repeated=%" PRIu64
                      " hint=\"add it to ingestd.writers (and restart ingestd), or stop that "
                      "writer\"",
                      name, self->writers_text, held);
        s_delivery_reply (self, peer, fd, WIRE_RESET, text);
        free (name);
        return;
    }
    free (name);
    //  A HELLO again on the connection that holds the name, with records in
    //  flight to it: the WELCOME it waits for is on its way. Welcoming it
    //  again would send everything in flight once more, per HELLO.
    if (s->peer && zframe_eq (s->peer, peer) && s->ninflight > 0) {
        omni_metric_add (self->m_hello_ignored, 1);
        s->window = window;
        s->last_heard_ms = omni_util_mono_ms ();
        uint64_t held;
        if (omni_log_allow ("delivery.hello_again", s->name, 60000, &held))
            log_info ("delivery.hello_again",
                      "writer=%s instance=%s inflight=%zu repeated=%" PRIu64
                      " why=\"a HELLO on a welcomed connection; nothing is sent again\"",
                      s->name, s_shown (instance), s->ninflight, held);
        return;
    }
    //  The same connection (HELLO after RESET), the same instance on a new
    //  connection (reconnected), or a holder silent for the timeout (crashed,
    //  killed, partitioned): the name is this writer's.
    if (!s->peer || zframe_eq (s->peer, peer) ||
        (*instance && strcmp (instance, s->instance) == 0) ||
        omni_util_mono_ms () - s->last_heard_ms >= self->config.session_timeout_ms) {
        s_welcome (self, s, peer, fd, instance, window, packed);
        return;
    }
    //  Another instance while the holder lives. Refusing at once would lock
    //  out a writer restarted right after a kill -9 (its old session looks
    //  alive until the timeout): it waits for proof either way. A writer
    //  repeats its HELLO every second until answered.
    if (!s->pending_peer || !zframe_eq (s->pending_peer, peer)) {
        if (!s->pending_peer)
            log_info ("delivery.hello_waiting",
                      "writer=%s instance=%s holder=%s holder_heard_ms=%" PRId64, s->name,
                      s_shown (instance), s_shown (s->instance),
                      omni_util_mono_ms () - s->last_heard_ms);
        zframe_destroy (&s->pending_peer);
        s->pending_peer = zframe_dup (peer);
        s->pending_since_ms = omni_util_mono_ms ();
    }
    s->pending_fd = fd;
    snprintf (s->pending_instance, sizeof s->pending_instance, "%s", instance);
    s->pending_window = window;
    s->pending_packed = packed;
}

//  An ACK, or NULL for one the codec refused.
static void
s_handle_ack (delivery_t *self, zframe_t *peer, int fd, const omni_wire_head_t *ack)
{
    s_session_t *s = s_session_by_peer (self, peer);
    if (!s) {
        s_delivery_reply (self, peer, fd, WIRE_RESET, "unknown connection, send HELLO");
        return;
    }
    if (!ack) {
        s_delivery_bad (self, NULL, fd, "ack", "malformed ACK");
        return;
    }
    uint64_t upto = ack->upto;
    s->window = ack->window;
    if (s->window > self->config.window_max)
        s->window = self->config.window_max;
    s->last_heard_ms = omni_util_mono_ms ();
    if (s->pending_peer)
        s_refuse_pending (self, s); //  the holder is alive

    if (upto > s->sent_upto)
        upto = s->sent_upto; //  cannot acknowledge what it was not sent
    if (upto + 1 <= journal_cursor (self->journal, s->index))
        return;
    size_t done = 0;
    uint64_t records = 0, bytes = 0;
    while (done < s->ninflight && s->inflight[done].upto <= upto) {
        bytes += s->inflight[done].bytes;
        records += s->inflight[done++].records;
    }
    s->inflight_bytes -= bytes;
    memmove (s->inflight, s->inflight + done, (s->ninflight - done) * sizeof *s->inflight);
    s->ninflight -= done;
    s->inflight_records -= (uint32_t) records;
    omni_metric_add (s->m_acked, records);
    int64_t received = journal_received_ns (self->journal, upto);
    if (received)
        omni_metric_observe (s->m_latency, (double) (omni_util_now_ns () - received) / 1e9);
    journal_set_cursor (self->journal, s->index, upto + 1);
}

//  A writer met records under ids it holds with other content and kept
//  them out of its store (it filed them): they are counted and published
//  on the tap as "conflict.<kind>" (writer name, record), so that an
//  operator watching sees the evidence. Only from a writer's session.
static void
s_handle_conflict (delivery_t *self, zframe_t *peer, zmsg_t *msg)
{
    s_session_t *s = s_session_by_peer (self, peer);
    if (!s)
        return;
    for (zframe_t *frame = zmsg_next (msg); frame; frame = zmsg_next (msg)) {
        omni_record_t record;
        if (omni_record_check (&record, zframe_data (frame), zframe_size (frame),
                               &self->config.limits, NULL, 0) != REJECT_NONE)
            continue;
        omni_metric_add (s->m_conflicts, 1);
        tap_conflict (self->tap, s->name, &record, zframe_data (frame), zframe_size (frame));
    }
}

int
delivery_sync (delivery_t *self)
{
    pthread_mutex_lock (self->state_lock);
    uint64_t trimmed_before = journal_counters (self->journal).trimmed;
    int rc = journal_sync_cursors (self->journal);
    uint64_t trimmed = journal_counters (self->journal).trimmed - trimmed_before;
    pthread_mutex_unlock (self->state_lock);
    omni_metric_add (self->m_trimmed, trimmed);
    self->last_sync_ms = omni_util_mono_ms ();
    return rc ? -1 : 0;
}

//  Every PROBE_MS while faulted: a probe write of what the failed round
//  needed, then the cursors, then a real round if collectors wait. Only
//  when all of that is written is the fault over.

//  A delivery message, and the socket its body came in on (ZMQ_SRCFD: the
//  routing id frame is made by the ROUTER and carries none), which the
//  monitor's DISCONNECTED events name.
static zmsg_t *
s_recv_delivery (delivery_t *self, int *fd)
{
    void *sock = zsock_resolve (self->sock);
    zmsg_t *msg = zmsg_new ();
    zmq_msg_t part;
    zmq_msg_init (&part);
    bool more = true;
    size_t parts = 0;
    uint64_t wire = 0; //  the body's bytes on the wire (the routing id is the ROUTER's)
    while (more) {
        if (omni_wire_recv_part (sock, &part, 0)) {
            zmsg_destroy (&msg);
            break;
        }
        if (parts > 0)
            wire += peers_wire_size (zmq_msg_size (&part), self->config.curve != NULL);
        if (zmsg_size (msg) == 1) {
            *fd = zmq_msg_get (&part, ZMQ_SRCFD);
            //  Copied into the zmsg the frames lose it: the CURVE metadata of
            //  the connection, for the writer-name check of a HELLO
            const char *key = self->config.curve ? zmq_msg_gets (&part, "User-Id") : NULL;
            const char *writers =
                self->config.curve ? zmq_msg_gets (&part, CURVE_WRITERS_PROPERTY) : NULL;
            snprintf (self->peer_key, sizeof self->peer_key, "%s", key ? key : "");
            snprintf (self->peer_writers, sizeof self->peer_writers, "%s", writers ? writers : "");
            peers_touch (self->peers, *fd, omni_util_mono_ms ());
        }
        //  Frames past what any command has are read past, not kept: a
        //  message of many frames costs no more than a short one here.
        if (++parts <= DELIVERY_FRAMES)
            zmsg_addmem (msg, zmq_msg_data (&part), zmq_msg_size (&part));
        more = zmq_msg_more (&part);
    }
    zmq_msg_close (&part);
    if (*fd >= 0)
        peers_consumed (self->peers, *fd, wire);
    return msg;
}

//  A delivery connection closed: if it held a writer name, the session is
//  over (a HELLO waiting takes over now); a waiting HELLO on it is dropped.
void
delivery_disconnected (delivery_t *self, int fd)
{
    {
        for (size_t i = 0; i < self->nsessions; i++) {
            s_session_t *s = &self->sessions[i];
            //  The kernel reuses descriptors: when the holder and a waiting
            //  HELLO share this one, the closed connection is the older, the
            //  holder's. A stale event costs a writer one HELLO more.
            if (s->peer && s->peer_fd == fd) {
                log_info ("delivery.writer_disconnected", "writer=%s instance=%s", s->name,
                          s_shown (s->instance));
                s->peer_fd = -1;
                s->last_heard_ms = omni_util_mono_ms () - self->config.session_timeout_ms;
                s_expire_holder (self, s);
            } else if (s->pending_peer && s->pending_fd == fd)
                zframe_destroy (&s->pending_peer);
        }
    }
}

//  A connection of socket `which` accepted, closed, or not accepted.

int
delivery_round (delivery_t *self, bool faulted)
{
    for (int i = 0; i < DELIVERY_MESSAGES && (zsock_events (self->sock) & ZMQ_POLLIN); i++) {
        int fd = -1;
        zmsg_t *msg = s_recv_delivery (self, &fd);
        if (!msg)
            break;
        zframe_t *peer = zmsg_pop (msg);
        omni_wire_head_t head = {0};
        char why[128] = "no frames";
        bool ok = peer && omni_wire_decode (WIRE_DELIVERY, msg, &head, why, sizeof why) == 0;
        if (ok && head.command == WIRE_HELLO)
            s_handle_hello (self, peer, fd, &head);
        else if (head.command == WIRE_HELLO) {
            char detail[160];
            snprintf (detail, sizeof detail, "malformed HELLO: %s", why);
            s_delivery_bad (self, peer, fd, "hello", detail);
        } else if (head.command == WIRE_DELIVERY_ACK)
            s_handle_ack (self, peer, fd, ok ? &head : NULL);
        else if (ok && head.command == WIRE_CONFLICT)
            s_handle_conflict (self, peer, msg);
        else if (ok) //  one of those ingestd sends
            s_delivery_bad (self, NULL, fd, "command", "unknown command");
        else
            s_delivery_bad (self, NULL, fd, head.command ? "command" : "message", why);
        zframe_destroy (&peer);
        zmsg_destroy (&msg);
    }
    //  Cursors are persisted (one fsync) at most every SYNC_MS, not per ACK:
    //  after a crash a writer receives at most that much again, and writers
    //  are idempotent. A full journal is synced at once so it can drain
    //  (but a faulted one no faster than SYNC_MS: it is failing).
    int rc = 0;
    if (omni_util_mono_ms () - self->last_sync_ms >= SYNC_MS ||
        (journal_full (self->journal) && !faulted))
        rc = delivery_sync (self);
    delivery_pump (self);
    return rc;
}

int
delivery_housekeep (delivery_t *self)
{
    //  Trimming may lag behind ACKs (it is chunked): finish it here.
    int rc = delivery_sync (self);
    int64_t now_ns = omni_util_now_ns (), now_ms = omni_util_mono_ms ();
    uint64_t next = journal_next_offset (self->journal);
    for (size_t i = 0; i < self->nsessions; i++) {
        s_session_t *s = &self->sessions[i];
        uint64_t cursor = journal_cursor (self->journal, s->index);
        omni_metric_set (s->m_lag_records, (double) (next - cursor));
        int64_t oldest = cursor < next ? journal_received_ns (self->journal, cursor) : 0;
        omni_metric_set (s->m_lag_seconds, oldest ? (double) (now_ns - oldest) / 1e9 : 0);
        s_expire_holder (self, s);
        bool alive = s->peer && now_ms - s->last_heard_ms < self->config.session_timeout_ms;
        if (s->peer && now_ms - s->last_sent_ms >= HEARTBEAT_MS) {
            //  An idle writer hears from us too, so it can tell ingestd is up.
            omni_wire_head_t head = {.command = WIRE_HEARTBEAT,
                                     .cursor = journal_cursor (self->journal, s->index)};
            s_send (self, s->peer, s->peer_fd, &head, NULL);
            s->last_sent_ms = now_ms;
        }
        omni_metric_set (s->m_connected, alive ? 1 : 0);
    }
    return rc;
}

//  Which instance holds each writer name (omnictl status shows it): the
//  first place to look when a writer is refused.
int
delivery_health (delivery_t *self, char *text, size_t size, int len, unsigned replayed)
{
    int64_t now = omni_util_mono_ms ();
    for (size_t i = 0; i < self->nsessions && len >= 0 && (size_t) len < size; i++) {
        s_session_t *s = &self->sessions[i];
        int64_t heard = s->last_heard_ms;
        pthread_mutex_lock (self->state_lock);
        if (!*s->instance && heard == 0)
            len += snprintf (text + len, size - (size_t) len, "\nwriter=%s holder=none", s->name);
        else
            len += snprintf (text + len, size - (size_t) len, "\nwriter=%s holder=%s heard=%.1fs%s",
                             s->name, *s->instance ? s->instance : "unnamed",
                             (double) (now - heard) / 1000.0,
                             now - heard < self->config.session_timeout_ms ? "" : " (expired)");
        if (s->starts_empty && len >= 0 && (size_t) len < size)
            len += snprintf (text + len, size - (size_t) len,
                             " starts_empty=%" PRIu64 " replay=%s fill=\"omnictl replay "
                             "--archive-dir=ARCHIVE_DIR --intake=%s --writer=%s\"",
                             s->starts_empty, (replayed & s->role) ? "seen" : "none",
                             self->config.intake, s->name);
        pthread_mutex_unlock (self->state_lock);
    }
    return len;
}

//  ---------------------------------------------------------------------------
//  Self-test: a real journal in a temporary directory, the ROUTER bound on
//  loopback TCP as the server binds it, and writers played by DEALERs that
//  speak through proto/wire.c. The server's loop is played by the test: a
//  round when the ROUTER has input, housekeeping, and the DISCONNECTED
//  events of a socket monitor passed to delivery_disconnected.

#define T_WAIT_MS 5000 //  a message the test waits for comes within this

//  A writer: a DEALER connected to the delivery socket.
static zsock_t *
s_t_writer (const char *endpoint)
{
    zsock_t *writer = zsock_new_dealer (endpoint);
    assert (writer);
    zsock_set_linger (writer, 0);
    return writer;
}

static void
s_t_send (zsock_t *writer, const omni_wire_head_t *head)
{
    zmsg_t *msg = omni_wire_encode (WIRE_DELIVERY, head);
    assert (msg && zmsg_send (&msg, writer) == 0);
}

//  The relational test writer asks for DELIVERP, the others for DELIVER:
//  both shapes are read back by s_t_delivered.
static void
s_t_hello (zsock_t *writer, const char *name, uint32_t window, const char *instance)
{
    const char *features = streq (name, "relational") ? "later " WIRE_FEATURE_PACKED : "later";
    omni_wire_head_t head = {.command = WIRE_HELLO,
                             .text = name,
                             .text_size = strlen (name),
                             .window = window,
                             .instance = instance,
                             .instance_size = strlen (instance),
                             .features = features,
                             .features_size = strlen (features)};
    s_t_send (writer, &head);
}

static void
s_t_ack (zsock_t *writer, uint64_t upto, uint32_t window)
{
    omni_wire_head_t head = {.command = WIRE_DELIVERY_ACK, .upto = upto, .window = window};
    s_t_send (writer, &head);
}

//  Serves one round once the ROUTER has a message (it waits for one).
static void
s_t_serve (delivery_t *self)
{
    zmq_pollitem_t item = {zsock_resolve (self->sock), 0, ZMQ_POLLIN, 0};
    assert (zmq_poll (&item, 1, T_WAIT_MS) == 1);
    assert (delivery_round (self, false) == 0);
}

//  The next message to `writer` within `timeout_ms`, decoded into `head`
//  (its records left in the message, after the cursor); NULL when none.
static zmsg_t *
s_t_recv (zsock_t *writer, omni_wire_head_t *head, int timeout_ms)
{
    zmq_pollitem_t item = {zsock_resolve (writer), 0, ZMQ_POLLIN, 0};
    if (zmq_poll (&item, 1, timeout_ms) != 1)
        return NULL;
    zmsg_t *msg = zmsg_recv (writer);
    char why[128];
    assert (msg && omni_wire_decode (WIRE_DELIVERY, msg, head, why, sizeof why) == 0);
    return msg;
}

//  Expects `command` next, past HEARTBEATs (a writer ignores them).
static void
s_t_expect (zsock_t *writer, omni_wire_command_t command, omni_wire_head_t *head)
{
    zmsg_t *msg;
    while ((msg = s_t_recv (writer, head, T_WAIT_MS)) && head->command == WIRE_HEARTBEAT &&
           command != WIRE_HEARTBEAT)
        zmsg_destroy (&msg);
    assert (msg && head->command == command);
    zmsg_destroy (&msg);
}

//  Reads the DELIVERs waiting for `writer` (none more within 200 ms): the
//  records they carry, and the last upto in `upto`. Each record is checked
//  to be one routed to `role` (its first byte, see s_t_append).
static size_t
s_t_delivered (zsock_t *writer, uint8_t role, uint64_t *upto)
{
    size_t records = 0;
    omni_wire_head_t head;
    zmsg_t *msg;
    while ((msg = s_t_recv (writer, &head, 200))) {
        assert (head.upto > *upto);
        //  DELIVERP to the writer that asked for it, DELIVER to the others
        if (role == WRITER_RELATIONAL && zmsg_size (msg) > 3) {
            assert (head.command == WIRE_DELIVERP);
            zframe_t *f = zmsg_next (msg);
            assert (f && !zmsg_next (msg));
            size_t count;
            const uint8_t *data;
            char why[128];
            assert (omni_wire_unpack (zframe_data (f), zframe_size (f), &count, &data, why,
                                      sizeof why) == 0);
            for (size_t i = 0; i < count; data += omni_wire_packed_size (zframe_data (f), i++)) {
                assert (omni_wire_packed_size (zframe_data (f), i) == 32 && (data[0] & role));
                assert (memcmp (data + 1, "record ", 7) == 0);
            }
            records += count;
        } else
            assert (head.command == WIRE_DELIVER);
        for (zframe_t *f = zmsg_next (msg); f && head.command == WIRE_DELIVER;
             f = zmsg_next (msg)) {
            assert (zframe_size (f) >= 1 && (zframe_data (f)[0] & role));
            records++;
        }
        *upto = head.upto;
        zmsg_destroy (&msg);
    }
    return records;
}

//  Journals `count` records: every fifth for the archive only, the others
//  for both writers. A record's first byte is its writers.
static void
s_t_append (journal_t *journal, size_t count)
{
    assert (journal_begin (journal) == 0);
    for (size_t i = 0; i < count; i++) {
        uint8_t writers = i % 5 == 4 ? WRITER_ARCHIVE : WRITER_ARCHIVE | WRITER_RELATIONAL;
        uint8_t record[32] = {writers};
        snprintf ((char *) record + 1, sizeof record - 1, "record %zu", i);
        assert (journal_append (journal, record, sizeof record, writers, omni_util_now_ns ()));
    }
    assert (journal_commit (journal) == 0);
}

//  Passes the DISCONNECTED events of `monitor` to delivery, waiting for one.
static void
s_t_disconnected (delivery_t *self, zsock_t *monitor)
{
    uint32_t value = 0;
    assert (route_event (monitor, T_WAIT_MS, &value) == ZMQ_EVENT_DISCONNECTED);
    delivery_disconnected (self, (int) value);
}

static double
s_t_counter (omni_metrics_t *metrics, const char *name, const char *labels)
{
    return omni_metric_value (omni_metrics_counter (metrics, name, "", labels));
}

void
delivery_test (bool verbose)
{
    (void) verbose;
    char *dir = selftest_tmpdir ("omni-delivery");
    const char *writers[] = {"archive", "relational", NULL};
    char error[256];
    journal_t *journal = journal_new (dir, 1 << 30, 10, 64 << 20, writers, error, sizeof error);
    assert (journal);
    zsock_t *router = route_bind (ZMQ_ROUTER, "tcp://127.0.0.1:*", NULL, CURVE_DELIVERY,
                                  &(route_limits_t){PEERS_REPLY_HWM, 64, WIRE_DELIVERY_FRAME_MAX,
                                                    ROUTE_PEER_TIMEOUT_MS, 0, 0},
                                  error, sizeof error);
    assert (router);
    char *endpoint = zsock_last_endpoint (router);
    assert (zmq_socket_monitor (zsock_resolve (router), "inproc://delivery-test-monitor",
                                ZMQ_EVENT_DISCONNECTED) == 0);
    zsock_t *monitor = zsock_new_pair (">inproc://delivery-test-monitor");
    assert (monitor);
    peers_t *peers = peers_new (64);
    omni_metrics_t *metrics = omni_metrics_new ("test_");
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    delivery_config_t config = {writers, omni_record_default_limits, NULL, 1000,
                                60000,   "tcp://127.0.0.1:0"};
    delivery_t *self = delivery_new (router, journal, peers, NULL, &config, &lock, metrics);
    assert (delivery_writers (self) == 2);
    s_t_append (journal, 30); //  offsets 1..30; 24 of them for the relational writer

    //  HELLO: WELCOME with the journal's identity and the cursor, then as
    //  many records as the window (10), in DELIVERs, and no more
    zsock_t *archive = s_t_writer (endpoint);
    s_t_hello (archive, "archive", 10, "host:1@a");
    s_t_serve (self);
    omni_wire_head_t head;
    s_t_expect (archive, WIRE_WELCOME, &head);
    assert (head.cursor == 1 && memcmp (head.journal, journal_id (journal), WIRE_JOURNAL_ID) == 0);
    uint64_t upto = 0;
    assert (s_t_delivered (archive, WRITER_ARCHIVE, &upto) == 10 && upto == 10);
    delivery_pump (self);
    assert (s_t_delivered (archive, WRITER_ARCHIVE, &upto) == 0 && upto == 10);

    //  ACK: the cursor moves to upto + 1 and is persisted; credit comes
    //  back by whole DELIVERs acknowledged (none yet: the one sent covers 10)
    s_t_ack (archive, 6, 10);
    s_t_serve (self);
    assert (journal_cursor (journal, 0) == 7);
    assert (delivery_sync (self) == 0 && !journal_cursors_pending (journal));
    assert (s_t_delivered (archive, WRITER_ARCHIVE, &upto) == 0);
    s_t_ack (archive, 10, 10);
    s_t_serve (self);
    assert (journal_cursor (journal, 0) == 11);
    assert (s_t_delivered (archive, WRITER_ARCHIVE, &upto) == 10 && upto == 20);
    assert (s_t_counter (metrics, "records_acked_total", "writer=\"archive\"") == 10);
    //  Nothing trimmed: the relational writer has acknowledged nothing
    assert (delivery_sync (self) == 0);
    assert (journal_first_offset (journal) == 1 && journal_counters (journal).trimmed == 0);
    //  An ACK past what was sent counts only what was sent
    s_t_ack (archive, 1000, 100);
    s_t_serve (self);
    assert (journal_cursor (journal, 0) == 21);
    //  The window (100, within window_max) covers the rest
    assert (s_t_delivered (archive, WRITER_ARCHIVE, &upto) == 10 && upto == 30);
    s_t_ack (archive, 30, 100);
    s_t_serve (self);
    assert (journal_cursor (journal, 0) == 31);

    //  A second writer, with a cursor of its own: records for it only
    zsock_t *relational = s_t_writer (endpoint);
    s_t_hello (relational, "relational", 8, "host:2@b");
    s_t_serve (self);
    s_t_expect (relational, WIRE_WELCOME, &head);
    assert (head.cursor == 1);
    uint64_t rel_upto = 0;
    //  8 records: offsets 1..4, 6..9; 5 and 10 are the archive's only, and
    //  covered by the upto all the same
    assert (s_t_delivered (relational, WRITER_RELATIONAL, &rel_upto) == 8 && rel_upto == 10);
    //  HELLO again on the connection holding the name, records in flight:
    //  nothing is sent again (the WELCOME it waits for is on its way)
    s_t_hello (relational, "relational", 8, "host:2@b");
    s_t_serve (self);
    zmsg_t *again = s_t_recv (relational, &head, 200);
    assert (!again && s_t_counter (metrics, "hello_ignored_total", NULL) == 1);
    s_t_ack (relational, 10, 8);
    s_t_serve (self);
    assert (journal_cursor (journal, 1) == 11 && journal_cursor (journal, 0) == 31);
    //  Trimmed: what every writer passed (offsets 1..10), and nothing else
    assert (delivery_sync (self) == 0);
    assert (journal_first_offset (journal) == 11 && journal_counters (journal).trimmed == 10);
    assert (journal_records (journal) == 20);
    assert (s_t_counter (metrics, "records_acked_by_all_total", NULL) == 10);
    s_t_delivered (relational, WRITER_RELATIONAL, &rel_upto);

    //  HEARTBEAT: a writer sent nothing for a second hears the cursor, and
    //  again a second after that one
    for (int beat = 0; beat < 2; beat++) {
        int64_t since = omni_util_mono_ms ();
        zmsg_t *msg = NULL;
        while (!msg && omni_util_mono_ms () - since < T_WAIT_MS) {
            assert (delivery_housekeep (self) == 0);
            msg = s_t_recv (archive, &head, 20);
        }
        assert (msg && head.command == WIRE_HEARTBEAT && head.cursor == 31);
        assert (beat == 0 || omni_util_mono_ms () - since >= HEARTBEAT_MS - 50);
        zmsg_destroy (&msg);
    }

    //  A second instance's HELLO for the held name waits unanswered while
    //  the holder lives; once the holder is heard from, it is refused
    zsock_t *second = s_t_writer (endpoint);
    zmsg_t *msg;
    s_t_hello (second, "archive", 10, "host:3@c");
    s_t_serve (self);
    assert (!(msg = s_t_recv (second, &head, 200)));
    s_t_ack (archive, 30, 100);
    s_t_serve (self);
    msg = s_t_recv (second, &head, T_WAIT_MS);
    assert (msg && head.command == WIRE_REFUSED);
    assert (memmem (head.text, head.text_size, "host:1@a", 8));
    zmsg_destroy (&msg);
    assert (s_t_counter (metrics, "writer_refused_total", "writer=\"archive\"") == 1);

    //  Takeover: a third instance waits; the holder's connection closes and
    //  it is welcomed at once, from the durable cursor
    zsock_t *third = s_t_writer (endpoint);
    s_t_hello (third, "archive", 10, "host:4@d");
    s_t_serve (self);
    assert (!(msg = s_t_recv (third, &head, 200)));
    zsock_destroy (&archive);
    s_t_disconnected (self, monitor);
    s_t_expect (third, WIRE_WELCOME, &head);
    assert (head.cursor == 31);
    char health[1024] = "ok";
    delivery_health (self, health, sizeof health, 2, 0);
    assert (strstr (health, "writer=archive holder=host:4@d"));

    //  A journal restart (ingestd restarted on the same directory): an ACK
    //  from a connection the new ingestd does not know gets RESET; HELLO
    //  again, and each writer goes on from its persisted cursor
    delivery_destroy (&self);
    journal_destroy (&journal);
    journal = journal_new (dir, 1 << 30, 10, 64 << 20, writers, error, sizeof error);
    assert (journal);
    self = delivery_new (router, journal, peers, NULL, &config, &lock, NULL);
    s_t_ack (third, 30, 10);
    s_t_serve (self);
    s_t_expect (third, WIRE_RESET, &head);
    s_t_hello (third, "archive", 10, "host:4@d");
    s_t_serve (self);
    s_t_expect (third, WIRE_WELCOME, &head);
    assert (head.cursor == 31);
    s_t_hello (relational, "relational", 100, "host:2@b");
    s_t_serve (self);
    s_t_expect (relational, WIRE_WELCOME, &head);
    assert (head.cursor == 11);
    rel_upto = 10;
    assert (s_t_delivered (relational, WRITER_RELATIONAL, &rel_upto) == 16 && rel_upto == 30);

    //  A name not configured, and a malformed one: RESET
    s_t_hello (second, "metrics", 10, "host:3@c");
    s_t_serve (self);
    s_t_expect (second, WIRE_RESET, &head);
    s_t_hello (second, "arch ive", 10, "host:3@c");
    s_t_serve (self);
    s_t_expect (second, WIRE_RESET, &head);

    delivery_destroy (&self);
    zsock_destroy (&second);
    zsock_destroy (&third);
    zsock_destroy (&relational);
    zmq_socket_monitor (zsock_resolve (router), NULL, 0);
    zsock_destroy (&monitor);
    zstr_free (&endpoint);
    zsock_destroy (&router);
    peers_destroy (&peers);
    omni_metrics_destroy (&metrics);
    journal_destroy (&journal);
    selftest_rmtree (dir);
    free (dir);
}
