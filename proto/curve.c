/*  curve: CURVE security on the pipeline's ZeroMQ sockets.

    zcert_load is lenient: a missing `_secret` file leaves a zero secret key
    and a file without a public key fails without saying why, so each file
    is checked here first and every error names it. The server's ZAP
    handler reads the clients' roles again (omni_curve_roles_refresh) at a
    handshake when the directory has changed: a client certificate added at
    run time is accepted without restarting the server.                     */
#include "proto/curve.h"
#include "common/log.h"
#include "testsupport/selftest.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZERO_KEY "0000000000000000000000000000000000000000"

//  The metadata property of a delivery connection: the writer names its
//  key may HELLO as, comma-separated
#define WRITERS_PROPERTY CURVE_WRITERS_PROPERTY

struct _omni_curve_server_t {
    zcert_t *cert;
    zactor_t *zap;
    omni_curve_roles_t *roles; //  only the ZAP thread reads it once started
    zhashx_t *refusals_logged; //  "socket key" -> when last logged (ZAP thread)
    zhashx_t *hellos_logged;   //  "key writer" -> when last logged (delivery's thread)
    omni_metric_t *m_refused[CURVE_SOCKETS][3];
    atomic_bool zap_bound; //  set by the ZAP thread before it signals
};

struct _omni_curve_client_t {
    zcert_t *cert;
    char server_key[41];
};

struct _omni_curve_watch_t {
    zsock_t *sock;
    zactor_t *actor;
    char *endpoint;
    char monitor_ep[64];
    atomic_int_least64_t refused_ms; //  when the server last refused us; 0 = not refused
    bool refused;                    //  the actor's: refusal logged, not yet connected again
};

//  Whether the file holds a 40-character Z85 key at `key_path`. Parsed from
//  a chunk here because zconfig_load, under zcert_load, leaks its file
//  object on a syntax error (czmq 4.2.1).
static bool
s_has_key (const char *path, const char *key_path)
{
    zchunk_t *chunk = zchunk_slurp (path, 0);
    zconfig_t *root = chunk ? zconfig_chunk_load (chunk) : NULL;
    zchunk_destroy (&chunk);
    const char *key = root ? zconfig_get (root, key_path, NULL) : NULL;
    bool found = key && strlen (key) == 40;
    zconfig_destroy (&root);
    return found;
}

zcert_t *
omni_curve_cert_load (const char *path, bool secret, char *error, size_t error_size)
{
    char secret_path[4096];
    snprintf (secret_path, sizeof secret_path, "%s_secret", path);
    struct stat st;
    errno = 0;
    if (stat (path, &st) || !S_ISREG (st.st_mode)) {
        snprintf (error, error_size, "cannot read certificate %s: %s", path,
                  errno ? strerror (errno) : "not a file");
        return NULL;
    }
    if (!s_has_key (path, "curve/public-key")) {
        snprintf (error, error_size, "%s is not a CURVE certificate (no curve/public-key)", path);
        return NULL;
    }
    errno = 0;
    if (secret && (stat (secret_path, &st) || !S_ISREG (st.st_mode))) {
        snprintf (error, error_size, "cannot read secret certificate %s: %s", secret_path,
                  errno ? strerror (errno) : "not a file");
        return NULL;
    }
    if (secret && !s_has_key (secret_path, "curve/secret-key")) {
        snprintf (error, error_size, "%s is not a CURVE secret certificate (no curve/secret-key)",
                  secret_path);
        return NULL;
    }
    zcert_t *cert = zcert_load (path);
    if (!cert || streq (zcert_public_txt (cert), ZERO_KEY) ||
        (secret && streq (zcert_secret_txt (cert), ZERO_KEY))) {
        snprintf (error, error_size, "%s: not a valid CURVE key pair", path);
        zcert_destroy (&cert);
        return NULL;
    }
    return cert;
}

static bool
s_curve_available (char *error, size_t error_size)
{
    if (zsys_has_curve ())
        return true;
    snprintf (error, error_size, "this libzmq was built without CURVE");
    return false;
}

//  The ZAP domain of each socket: how the one handler tells them apart
static const char *s_domains[CURVE_SOCKETS] = {"omniaudit.intake", "omniaudit.delivery",
                                               "omniaudit.tap"};

//  A refused key is logged at most this often per socket: a refused client
//  tries again every CURVE_RETRY_MS, and its first refusal says it all
#define REFUSAL_LOG_MS 60000

typedef enum { WHY_UNKNOWN_KEY = 0, WHY_WRONG_ROLE, WHY_WRONG_WRITER, WHY_COUNT } s_why_t;
static const char *s_whys[WHY_COUNT] = {"unknown_key", "wrong_role", "wrong_writer"};

//  Where a refused client's certificate would go, for the hint.
static const char *s_role_dirs[CURVE_SOCKETS] = {"collector/", "writer/<name>/", "tap/"};

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_count_refusal (omni_curve_server_t *self, omni_curve_socket_t sock, s_why_t why)
{
    omni_metric_add (self->m_refused[sock][why], 1);
}

//  Whether a refusal `id` is to be logged now (rate limit); `logged` is
//  when each was last logged.
static bool
s_refusal_loggable (zhashx_t *logged, const char *id)
{
    int64_t now = omni_util_mono_ms ();
    int64_t *at = zhashx_lookup (logged, id);
    if (at && now - *at < REFUSAL_LOG_MS)
        return false;
    //  Bounded: many distinct refused keys only make the limit forget
    if (!at && zhashx_size (logged) >= 1024)
        zhashx_purge (logged);
    if (!at) {
        at = malloc (sizeof *at);
        assert (at);
        zhashx_insert (logged, id, at);
    }
    *at = now;
    return true;
}

//  One ZAP request (RFC 27): version, request id, domain, address, routing
//  id, mechanism, credentials; answered 200 with the key's name as User-Id
//  (and, on delivery, the writers it may be as metadata) or 400.
//  The loop of the two actors: `fn` for each message on `sock`, until $TERM
//  from zactor_destroy on the pipe, or an interrupt.
static void
s_actor_loop (zsock_t *pipe, zsock_t *sock, void (*fn) (void *arg, zsock_t *sock), void *arg)
{
    zpoller_t *poller = zpoller_new (pipe, sock, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == sock)
            fn (arg, sock);
        else {
            char *command = which == pipe ? zstr_recv (pipe) : NULL;
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
    }
    zpoller_destroy (&poller);
}

static void
s_zap_handle (void *arg, zsock_t *handler)
{
    omni_curve_server_t *self = (omni_curve_server_t *) arg;
    zmsg_t *request = zmsg_recv (handler);
    if (!request)
        return;
    char *version = zmsg_popstr (request);
    zframe_t *request_id = zmsg_pop (request);
    char *domain = zmsg_popstr (request), *address = zmsg_popstr (request);
    zframe_t *identity = zmsg_pop (request);
    char *mechanism = zmsg_popstr (request);
    zframe_t *credentials = zmsg_pop (request);
    zframe_destroy (&identity);
    zmsg_destroy (&request);

    int sock = CURVE_SOCKETS;
    for (int i = 0; domain && i < CURVE_SOCKETS; i++)
        if (streq (domain, s_domains[i]))
            sock = i;
    char key[41] = "", writers[256] = "", roles[256] = "";
    const char *name = NULL, *status = "400", *text = "not allowed";
    if (sock == CURVE_SOCKETS || !mechanism || !streq (mechanism, "CURVE") || !credentials ||
        zframe_size (credentials) != 32)
        //  Only our three CURVE sockets use this handler: anything else is
        //  a configuration error, and refusing is the safe answer
        log_error ("curve.zap_unexpected", "domain=%s mechanism=%s", domain ? domain : "",
                   mechanism ? mechanism : "");
    else {
        zmq_z85_encode (key, zframe_data (credentials), 32);
        omni_curve_roles_refresh (self->roles);
        name = omni_curve_roles_admit (self->roles, key, sock, writers, sizeof writers);
        if (name) {
            status = "200";
            text = "OK";
        } else {
            const char *held = omni_curve_roles_describe (self->roles, key, roles, sizeof roles);
            s_count_refusal (self, sock, held ? WHY_WRONG_ROLE : WHY_UNKNOWN_KEY);
            char id[64];
            snprintf (id, sizeof id, "%d %s", sock, key);
            if (!s_refusal_loggable (self->refusals_logged, id))
                ;
            else if (held)
                log_warn ("curve.refused",
                          "socket=%s key=%s roles=%s address=%s why=\"this key's role does not "
                          "allow the %s socket\" hint=\"a key used outside its role; give this "
                          "client a key in curve_clients/%s if it needs the %s socket\"",
                          omni_curve_socket_name (sock), held, roles, address ? address : "",
                          omni_curve_socket_name (sock), s_role_dirs[sock],
                          omni_curve_socket_name (sock));
            else
                log_warn ("curve.refused",
                          "socket=%s public_key=\"%s\" address=%s why=\"no certificate in "
                          "curve_clients holds this key\" hint=\"to let it in, put the client's "
                          "public certificate in curve_clients/%s\"",
                          omni_curve_socket_name (sock), key, address ? address : "",
                          s_role_dirs[sock]);
        }
    }
    zmsg_t *reply = zmsg_new ();
    zmsg_addstr (reply, "1.0");
    if (request_id)
        zmsg_append (reply, &request_id);
    else
        zmsg_addstr (reply, "");
    zmsg_addstr (reply, status);
    zmsg_addstr (reply, text);
    zmsg_addstr (reply, name ? name : "");
    //  ZMTP metadata: name length (1 byte), name, value length (4 bytes
    //  big-endian), value; libzmq hands it to the socket's owner with each
    //  message of the connection (zframe_meta)
    uint8_t meta[300];
    size_t meta_size = 0;
    if (name && sock == CURVE_DELIVERY) {
        size_t name_len = strlen (WRITERS_PROPERTY), value_len = strlen (writers);
        meta[meta_size++] = (uint8_t) name_len;
        memcpy (meta + meta_size, WRITERS_PROPERTY, name_len);
        meta_size += name_len;
        omni_util_put_be (meta + meta_size, value_len, 4);
        meta_size += 4;
        memcpy (meta + meta_size, writers, value_len);
        meta_size += value_len;
    }
    zmsg_addmem (reply, meta, meta_size);
    zmsg_send (&reply, handler);
    zstr_free (&version);
    zstr_free (&domain);
    zstr_free (&address);
    zstr_free (&mechanism);
    zframe_destroy (&request_id);
    zframe_destroy (&credentials);
}

//  The ZAP handler's thread. Our own rather than zauth: zauth's CURVE check
//  has one set of keys for every domain, and cannot say which role a key
//  holds or pass it on to the socket's owner.
static void
s_zap_actor (zsock_t *pipe, void *args)
{
    omni_curve_server_t *self = (omni_curve_server_t *) args;
    zsock_t *handler = zsock_new (ZMQ_REP);
    assert (handler);
    //  libzmq sends every ZAP request of the context to this endpoint; it
    //  can be bound once per process
    int rc = zsock_bind (handler, "inproc://zeromq.zap.01");
    //  zactor_new ignores the signal's status: the flag tells the failure
    atomic_store (&self->zap_bound, rc == 0);
    zsock_signal (pipe, rc == 0 ? 0 : 1);
    if (rc) {
        zsock_destroy (&handler);
        return;
    }
    s_actor_loop (pipe, handler, s_zap_handle, self);
    zsock_destroy (&handler);
}

omni_curve_server_t *
omni_curve_server_new (const char *cert_path, const char *clients_dir, omni_metrics_t *metrics,
                       char *error, size_t error_size)
{
    if (!s_curve_available (error, error_size))
        return NULL;
    struct stat st;
    if (!clients_dir || !*clients_dir) {
        snprintf (error, error_size, "curve_clients is required when curve_key is set");
        return NULL;
    }
    errno = 0;
    if (stat (clients_dir, &st) || !S_ISDIR (st.st_mode)) {
        snprintf (error, error_size, "cannot read curve_clients directory %s: %s", clients_dir,
                  errno ? strerror (errno) : "not a directory");
        return NULL;
    }
    zcert_t *cert = omni_curve_cert_load (cert_path, true, error, error_size);
    if (!cert)
        return NULL;
    omni_curve_roles_t *roles = omni_curve_roles_new (clients_dir, error, error_size);
    if (!roles) {
        zcert_destroy (&cert);
        return NULL;
    }
    omni_curve_server_t *self = calloc (1, sizeof *self);
    assert (self);
    self->cert = cert;
    self->roles = roles;
    atomic_init (&self->zap_bound, false);
    self->refusals_logged = zhashx_new ();
    assert (self->refusals_logged);
    zhashx_set_destructor (self->refusals_logged, s_free_item);
    self->hellos_logged = zhashx_new ();
    assert (self->hellos_logged);
    zhashx_set_destructor (self->hellos_logged, s_free_item);
    for (int sock = 0; metrics && sock < CURVE_SOCKETS; sock++)
        for (int why = 0; why < WHY_COUNT; why++) {
            if (why == WHY_WRONG_WRITER && sock != CURVE_DELIVERY)
                continue;
            char labels[96];
            snprintf (labels, sizeof labels, "socket=\"%s\",why=\"%s\"",
                      omni_curve_socket_name (sock), s_whys[why]);
            self->m_refused[sock][why] = omni_metrics_counter (
                metrics, "curve_refused_total",
                "CURVE clients refused: unknown key, key outside its role, writer name outside "
                "its key's",
                labels);
        }
    //  Bound once the actor signals: clients that connect after this are
    //  checked by it
    self->zap = zactor_new (s_zap_actor, self);
    if (!self->zap || !atomic_load (&self->zap_bound)) {
        snprintf (error, error_size,
                  "cannot start the ZAP handler (inproc://zeromq.zap.01 is taken: one CURVE "
                  "server per process)");
        omni_curve_server_destroy (&self);
        return NULL;
    }
    log_info ("curve.clients", "dir=%s certificates=%zu", clients_dir,
              omni_curve_roles_size (roles));
    return self;
}

void
omni_curve_server_destroy (omni_curve_server_t **self_p)
{
    omni_curve_server_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->zap);
    zhashx_destroy (&self->refusals_logged);
    zhashx_destroy (&self->hellos_logged);
    omni_curve_roles_destroy (&self->roles);
    zcert_destroy (&self->cert);
    free (self);
    *self_p = NULL;
}

void
omni_curve_server_apply (omni_curve_server_t *self, zsock_t *sock, omni_curve_socket_t which)
{
    zcert_apply (self->cert, sock);
    zsock_set_curve_server (sock, 1);
    //  A ZAP domain makes libzmq ask our handler about every connection,
    //  and tells it which socket asks
    zsock_set_zap_domain (sock, s_domains[which]);
}

bool
omni_curve_server_writer_allowed (omni_curve_server_t *self, zframe_t *frame, const char *name,
                                  char *reason, size_t reason_size)
{
    if (!self)
        return true;
    //  Set by our ZAP handler at the connection's handshake
    return omni_curve_server_writer_allowed_meta (self, zframe_meta (frame, "User-Id"),
                                                  zframe_meta (frame, WRITERS_PROPERTY), name,
                                                  reason, reason_size);
}

bool
omni_curve_server_writer_allowed_meta (omni_curve_server_t *self, const char *key,
                                       const char *writers, const char *name, char *reason,
                                       size_t reason_size)
{
    if (!self)
        return true;
    if (key && *key && omni_curve_roles_writer_listed (writers, name))
        return true;
    s_count_refusal (self, CURVE_DELIVERY, WHY_WRONG_WRITER);
    snprintf (reason, reason_size,
              "this key (%s) may deliver to writer %s only, not \"%.64s\": give this writer a key "
              "in curve_clients/writer/%.64s/",
              key && *key ? key : "?", writers && *writers ? writers : "(none)", name, name);
    //  The writer says HELLO again every second: its first refusal says it
    char id[400];
    snprintf (id, sizeof id, "%.300s %.64s", key ? key : "", name);
    if (s_refusal_loggable (self->hellos_logged, id))
        log_warn ("delivery.refused",
                  "writer=%.64s key=%s allowed=%s why=\"a writer key used for another writer\" "
                  "hint=\"give this writer a key in curve_clients/writer/%.64s/\"",
                  name, key && *key ? key : "?", writers && *writers ? writers : "", name);
    return false;
}

int
omni_curve_client_load (const char *cert_path, const char *server_cert_path,
                        omni_curve_client_t **client_p, char *error, size_t error_size)
{
    *client_p = NULL;
    bool have_key = cert_path && *cert_path;
    bool have_server = server_cert_path && *server_cert_path;
    if (!have_key && !have_server)
        return 0;
    if (!have_server) {
        snprintf (error, error_size, "curve_server_key is required when curve_key is set");
        return -1;
    }
    if (!have_key) {
        snprintf (error, error_size, "curve_key is required when curve_server_key is set");
        return -1;
    }
    if (!s_curve_available (error, error_size))
        return -1;
    zcert_t *cert = omni_curve_cert_load (cert_path, true, error, error_size);
    if (!cert)
        return -1;
    zcert_t *server = omni_curve_cert_load (server_cert_path, false, error, error_size);
    if (!server) {
        zcert_destroy (&cert);
        return -1;
    }
    omni_curve_client_t *self = calloc (1, sizeof *self);
    assert (self);
    self->cert = cert;
    snprintf (self->server_key, sizeof self->server_key, "%s", zcert_public_txt (server));
    zcert_destroy (&server);
    *client_p = self;
    return 0;
}

void
omni_curve_client_destroy (omni_curve_client_t **self_p)
{
    omni_curve_client_t *self = *self_p;
    if (!self)
        return;
    zcert_destroy (&self->cert);
    free (self);
    *self_p = NULL;
}

void
omni_curve_client_apply (const omni_curve_client_t *self, zsock_t *sock)
{
    zcert_apply (self->cert, sock);
    zsock_set_curve_serverkey (sock, self->server_key);
}

bool
omni_curve_refusal_event (uint16_t event, const char *endpoint, bool *refused)
{
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        if (*refused)
            log_info ("curve.accepted", "endpoint=%s", endpoint);
        *refused = false;
        return false;
    }
    if (event != ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && event != ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL)
        return false;
    //  ZeroMQ reconnects and fails again every few seconds: one line per
    //  streak says it without flooding the log
    if (!*refused) {
        if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
            log_error ("curve.refused",
                       "endpoint=%s why=\"the server does not accept this curve_key on this "
                       "socket; add its public certificate to the server's curve_clients, in "
                       "the directory of this client's role (collector/, tap/ or "
                       "writer/<name>/)\"",
                       endpoint);
        else
            log_error ("curve.handshake_failed",
                       "endpoint=%s why=\"security mismatch: CURVE must be configured on both "
                       "sides, with curve_server_key the server's public certificate\"",
                       endpoint);
    }
    *refused = true;
    return true;
}

//  Monitor endpoints are unique for the process: a closed monitor's inproc
//  name is released asynchronously, so an address could still be taken
static atomic_uint s_monitors;

//  One event of the socket's monitor.
static void
s_watch_event (void *arg, zsock_t *monitor)
{
    omni_curve_watch_t *self = (omni_curve_watch_t *) arg;
    zmsg_t *msg = zmsg_recv (monitor);
    zframe_t *head = msg ? zmsg_first (msg) : NULL;
    if (head && zframe_size (head) >= 2) {
        uint16_t event;
        memcpy (&event, zframe_data (head), sizeof event);
        if (omni_curve_refusal_event (event, self->endpoint, &self->refused))
            atomic_store (&self->refused_ms, omni_util_mono_ms ());
    }
    zmsg_destroy (&msg);
}

//  The watch's thread: reads the socket's monitor and logs refusals.
static void
s_watch_actor (zsock_t *pipe, void *args)
{
    omni_curve_watch_t *self = (omni_curve_watch_t *) args;
    zsock_t *monitor = zsock_new (ZMQ_PAIR);
    assert (monitor);
    int rc = zsock_connect (monitor, "%s", self->monitor_ep);
    assert (rc == 0);
    zsock_signal (pipe, 0);
    s_actor_loop (pipe, monitor, s_watch_event, self);
    zsock_destroy (&monitor);
}

omni_curve_watch_t *
omni_curve_watch_new (zsock_t *sock, const char *endpoint)
{
    omni_curve_watch_t *self = calloc (1, sizeof *self);
    assert (self);
    self->sock = sock;
    self->endpoint = strdup (endpoint);
    atomic_init (&self->refused_ms, 0);
    snprintf (self->monitor_ep, sizeof self->monitor_ep, "inproc://curve-watch-%u",
              atomic_fetch_add (&s_monitors, 1));
    int rc = zmq_socket_monitor (zsock_resolve (sock), self->monitor_ep, CURVE_MONITOR_EVENTS);
    assert (rc == 0);
    self->actor = zactor_new (s_watch_actor, self);
    assert (self->actor);
    return self;
}

void
omni_curve_watch_destroy (omni_curve_watch_t **self_p)
{
    omni_curve_watch_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    zmq_socket_monitor (zsock_resolve (self->sock), NULL, 0);
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

void
omni_curve_watch_poll (omni_curve_watch_t *self)
{
    if (!self)
        return;
    int64_t refused = atomic_load (&self->refused_ms);
    if (refused && omni_util_mono_ms () - refused >= CURVE_RETRY_MS) {
        atomic_store (&self->refused_ms, 0);
        omni_curve_reconnect (self->sock, self->endpoint);
    }
}

void
omni_curve_reconnect (zsock_t *sock, const char *endpoint)
{
    //  The refused connection may still be listed: without it the
    //  disconnect fails harmlessly
    zsock_disconnect (sock, "%s", endpoint);
    if (zsock_connect (sock, "%s", endpoint))
        log_error ("curve.reconnect", "endpoint=%s error=\"%s\"", endpoint,
                   zmq_strerror (zmq_errno ()));
}

int
omni_curve_keygen (const char *path, char *error, size_t error_size)
{
    char secret_path[4096];
    snprintf (secret_path, sizeof secret_path, "%s_secret", path);
    struct stat st;
    //  A key in use is never overwritten: its clients would all be refused
    if (!stat (path, &st) || !stat (secret_path, &st)) {
        snprintf (error, error_size, "%s exists: not overwritten",
                  stat (path, &st) ? secret_path : path);
        return -1;
    }
    zcert_t *cert = zcert_new ();
    assert (cert);
    zcert_set_meta (cert, "created-by", "omnictl keygen");
    //  The secret file is written private from the start (czmq's umask), and
    //  chmod'ed again in case czmq's defaults differ
    int rc = zcert_save (cert, path);
    zcert_destroy (&cert);
    if (rc || chmod (secret_path, 0600)) {
        snprintf (error, error_size, "cannot write %s: %s", rc ? path : secret_path,
                  strerror (errno));
        return -1;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Self-test

//  Waits up to 5 s for a handshake event on a monitored socket; 0 if none.
static uint16_t
s_wait_event (zsock_t *monitor)
{
    zpoller_t *poller = zpoller_new (monitor, NULL);
    uint16_t event = 0;
    if (zpoller_wait (poller, 5000) == monitor) {
        zmsg_t *msg = zmsg_recv (monitor);
        memcpy (&event, zframe_data (zmsg_first (msg)), sizeof event);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    return event;
}

static zsock_t *
s_dealer (const omni_curve_client_t *client, const char *endpoint, zsock_t **monitor_p)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert (dealer);
    zsock_set_linger (dealer, 0);
    if (client)
        omni_curve_client_apply (client, dealer);
    char monitor_ep[64];
    snprintf (monitor_ep, sizeof monitor_ep, "inproc://curve-test-%u",
              atomic_fetch_add (&s_monitors, 1));
    int rc = zmq_socket_monitor (zsock_resolve (dealer), monitor_ep, CURVE_MONITOR_EVENTS);
    assert (rc == 0);
    *monitor_p = zsock_new (ZMQ_PAIR);
    rc = zsock_connect (*monitor_p, "%s", monitor_ep);
    assert (rc == 0);
    rc = zsock_connect (dealer, "%s", endpoint);
    assert (rc == 0);
    return dealer;
}

void
omni_curve_test (bool verbose)
{
    if (verbose)
        printf (" * curve: ");
    char *dir = selftest_tmpdir ("curve");
    char server_path[512], client_path[512], stranger_path[512], clients_dir[512];
    char bad_path[512], path[600], error[512];
    snprintf (server_path, sizeof server_path, "%s/ingestd", dir);
    snprintf (client_path, sizeof client_path, "%s/collector", dir);
    snprintf (stranger_path, sizeof stranger_path, "%s/stranger", dir);
    snprintf (clients_dir, sizeof clients_dir, "%s/clients", dir);
    snprintf (bad_path, sizeof bad_path, "%s/bad", dir);
    assert (omni_curve_keygen (server_path, error, sizeof error) == 0);
    assert (omni_curve_keygen (client_path, error, sizeof error) == 0);
    assert (omni_curve_keygen (stranger_path, error, sizeof error) == 0);
    assert (omni_curve_keygen (client_path, error, sizeof error) == -1);
    assert (strstr (error, client_path) && strstr (error, "exists"));
    snprintf (path, sizeof path, "%s_secret", client_path);
    struct stat st;
    assert (stat (path, &st) == 0 && (st.st_mode & 0777) == 0600);

    //  Errors name the key or the file
    assert (omni_curve_server_new (server_path, clients_dir, NULL, error, sizeof error) == NULL);
    assert (strstr (error, clients_dir));
    assert (omni_curve_server_new (server_path, "", NULL, error, sizeof error) == NULL);
    assert (strstr (error, "curve_clients"));
    int rc = mkdir (clients_dir, 0700);
    assert (rc == 0);
    assert (omni_curve_server_new (bad_path, clients_dir, NULL, error, sizeof error) == NULL);
    assert (strstr (error, bad_path));
    FILE *file = fopen (bad_path, "w");
    fputs ("not a certificate\n", file);
    fclose (file);
    assert (omni_curve_server_new (bad_path, clients_dir, NULL, error, sizeof error) == NULL);
    assert (strstr (error, bad_path) && strstr (error, "not a CURVE certificate"));
    snprintf (path, sizeof path, "%s/ingestd_secret", dir);
    char saved[700];
    snprintf (saved, sizeof saved, "%s.saved", path);
    rename (path, saved);
    file = fopen (path, "w");
    fputs ("curve\n    public-key = \"short\"\n", file);
    fclose (file);
    assert (omni_curve_server_new (server_path, clients_dir, NULL, error, sizeof error) == NULL);
    assert (strstr (error, path) && strstr (error, "secret"));
    rename (saved, path);
    rename (path, bad_path);
    assert (omni_curve_server_new (server_path, clients_dir, NULL, error, sizeof error) == NULL);
    assert (strstr (error, path));
    rename (bad_path, path);

    omni_curve_client_t *client = NULL;
    assert (omni_curve_client_load (NULL, "", &client, error, sizeof error) == 0 && !client);
    assert (omni_curve_client_load (client_path, "", &client, error, sizeof error) == -1);
    assert (strstr (error, "curve_server_key is required"));
    assert (omni_curve_client_load (NULL, server_path, &client, error, sizeof error) == -1);
    assert (strstr (error, "curve_key is required"));
    //  A client needs its own secret
    snprintf (path, sizeof path, "%s/clients/collector/collector", dir);
    assert (omni_curve_client_load (path, server_path, &client, error, sizeof error) == -1);
    assert (strstr (error, path));

    //  The layout before roles (a certificate directly in the directory)
    //  stops the server, saying how to migrate
    snprintf (path, sizeof path, "%s/clients/collector", dir);
    zcert_t *cert = zcert_load (client_path);
    assert (cert);
    rc = zcert_save_public (cert, path);
    assert (rc == 0);
    assert (omni_curve_server_new (server_path, clients_dir, NULL, error, sizeof error) == NULL);
    assert (strstr (error, path) && strstr (error, "has no role") && strstr (error, "collector/"));
    unlink (path);

    //  The allowed client's public certificate goes where its role belongs
    rc = omni_curve_roles_allow (clients_dir, "collector", client_path, path, sizeof path, error,
                                 sizeof error);
    assert (rc == 0);
    zcert_destroy (&cert);
    //  A writer key for "archive"
    char writer_path[512];
    snprintf (writer_path, sizeof writer_path, "%s/archiverd", dir);
    assert (omni_curve_keygen (writer_path, error, sizeof error) == 0);
    rc = omni_curve_roles_allow (clients_dir, "writer:archive", writer_path, path, sizeof path,
                                 error, sizeof error);
    assert (rc == 0);

    omni_metrics_t *metrics = omni_metrics_new ("omni_test_");
    omni_curve_server_t *server =
        omni_curve_server_new (server_path, clients_dir, metrics, error, sizeof error);
    assert (server);
    //  One ZAP handler per process: a second server says why it cannot be
    omni_curve_server_t *second =
        omni_curve_server_new (server_path, clients_dir, NULL, error, sizeof error);
    assert (!second && strstr (error, "zeromq.zap.01"));
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert (router);
    zsock_set_linger (router, 0);
    omni_curve_server_apply (server, router, CURVE_INTAKE);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    assert (port > 0);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);
    zsock_t *delivery = zsock_new (ZMQ_ROUTER);
    assert (delivery);
    zsock_set_linger (delivery, 0);
    omni_curve_server_apply (server, delivery, CURVE_DELIVERY);
    port = zsock_bind (delivery, "tcp://127.0.0.1:*");
    assert (port > 0);
    char delivery_ep[64];
    snprintf (delivery_ep, sizeof delivery_ep, "tcp://127.0.0.1:%d", port);

    //  An allowed client: its handshake succeeds and its message arrives
    rc = omni_curve_client_load (client_path, server_path, &client, error, sizeof error);
    assert (rc == 0 && client);
    zsock_t *monitor;
    zsock_t *dealer = s_dealer (client, endpoint, &monitor);
    assert (s_wait_event (monitor) == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    zstr_send (dealer, "hello");
    zpoller_t *poller = zpoller_new (router, NULL);
    assert (zpoller_wait (poller, 5000) == router);
    zmsg_t *msg = zmsg_recv (router);
    assert (msg && zmsg_size (msg) == 2);
    char *text = zframe_strdup (zmsg_last (msg));
    assert (streq (text, "hello"));
    zstr_free (&text);
    //  The ZAP handler named the key for the socket's owner
    const char *user = zframe_meta (zmsg_last (msg), "User-Id");
    assert (user && streq (user, "collector/collector"));
    zmsg_destroy (&msg);
    zsock_destroy (&dealer);
    zsock_destroy (&monitor);

    //  The collector's key is refused on delivery: outside its role
    dealer = s_dealer (client, delivery_ep, &monitor);
    zstr_send (dealer, "not a writer");
    assert (s_wait_event (monitor) == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy (&dealer);
    zsock_destroy (&monitor);
    assert (omni_metric_value (server->m_refused[CURVE_DELIVERY][WHY_WRONG_ROLE]) == 1);

    //  The writer's key: in on delivery, as "archive" only; not on intake
    omni_curve_client_t *writer = NULL;
    rc = omni_curve_client_load (writer_path, server_path, &writer, error, sizeof error);
    assert (rc == 0 && writer);
    dealer = s_dealer (writer, endpoint, &monitor);
    assert (s_wait_event (monitor) == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy (&dealer);
    zsock_destroy (&monitor);
    assert (omni_metric_value (server->m_refused[CURVE_INTAKE][WHY_WRONG_ROLE]) == 1);
    dealer = s_dealer (writer, delivery_ep, &monitor);
    assert (s_wait_event (monitor) == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    zstr_send (dealer, "HELLO");
    zpoller_t *delivery_poller = zpoller_new (delivery, NULL);
    assert (zpoller_wait (delivery_poller, 5000) == delivery);
    msg = zmsg_recv (delivery);
    assert (msg && zmsg_size (msg) == 2);
    char reason[256];
    assert (omni_curve_server_writer_allowed (server, zmsg_last (msg), "archive", reason,
                                              sizeof reason));
    assert (!omni_curve_server_writer_allowed (server, zmsg_last (msg), "relational", reason,
                                               sizeof reason));
    assert (strstr (reason, "writer/archive/archiverd") && strstr (reason, "relational"));
    assert (omni_metric_value (server->m_refused[CURVE_DELIVERY][WHY_WRONG_WRITER]) == 1);
    //  Without CURVE there is no key to check
    assert (omni_curve_server_writer_allowed (NULL, zmsg_last (msg), "relational", reason,
                                              sizeof reason));
    //  A frame from a connection without our metadata is refused
    zframe_t *bare = zframe_new ("x", 1);
    assert (!omni_curve_server_writer_allowed (server, bare, "archive", reason, sizeof reason));
    zframe_destroy (&bare);
    zmsg_destroy (&msg);
    zpoller_destroy (&delivery_poller);
    zsock_destroy (&dealer);
    zsock_destroy (&monitor);
    omni_curve_client_destroy (&writer);

    //  A client with an unknown key: the server's ZAP handler refuses it,
    //  and its message never arrives
    omni_curve_client_t *stranger = NULL;
    rc = omni_curve_client_load (stranger_path, server_path, &stranger, error, sizeof error);
    assert (rc == 0 && stranger);
    dealer = s_dealer (stranger, endpoint, &monitor);
    zstr_send (dealer, "intruder");
    uint16_t event = s_wait_event (monitor);
    assert (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    assert (omni_metric_value (server->m_refused[CURVE_INTAKE][WHY_UNKNOWN_KEY]) == 1);
    bool refused = false;
    assert (omni_curve_refusal_event (event, endpoint, &refused) && refused);
    assert (omni_curve_refusal_event (event, endpoint, &refused) && refused);
    assert (!omni_curve_refusal_event (ZMQ_EVENT_HANDSHAKE_SUCCEEDED, endpoint, &refused) &&
            !refused);
    zsock_destroy (&dealer);
    zsock_destroy (&monitor);

    //  A client without CURVE fails the handshake too
    dealer = s_dealer (NULL, endpoint, &monitor);
    zstr_send (dealer, "plain");
    assert (s_wait_event (monitor) == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL);
    zsock_destroy (&dealer);
    zsock_destroy (&monitor);

    //  Adding the stranger's certificate lets it in without a restart
    rc = omni_curve_roles_allow (clients_dir, "collector", stranger_path, path, sizeof path, error,
                                 sizeof error);
    assert (rc == 0);
    dealer = s_dealer (stranger, endpoint, &monitor);
    omni_curve_watch_t *watch = NULL;
    assert (s_wait_event (monitor) == ZMQ_EVENT_HANDSHAKE_SUCCEEDED);
    zstr_send (dealer, "welcome");
    assert (zpoller_wait (poller, 5000) == router);
    msg = zmsg_recv (router);
    text = zframe_strdup (zmsg_last (msg));
    assert (streq (text, "welcome"));
    zstr_free (&text);
    zmsg_destroy (&msg);
    //  Nothing of the refused clients arrived
    assert (zpoller_wait (poller, 0) == NULL);
    zsock_destroy (&monitor);
    zsock_destroy (&dealer);

    //  Removing it keeps it out of new connections
    assert (unlink (path) == 0);
    dealer = s_dealer (stranger, endpoint, &monitor);
    assert (s_wait_event (monitor) == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    zsock_destroy (&monitor);
    zsock_destroy (&dealer);

    //  The watch replaces a monitor and goes away cleanly
    dealer = zsock_new (ZMQ_DEALER);
    omni_curve_client_apply (client, dealer);
    watch = omni_curve_watch_new (dealer, endpoint);
    zsock_connect (dealer, "%s", endpoint);
    omni_curve_watch_destroy (&watch);
    assert (!watch);
    zsock_destroy (&dealer);

    zpoller_destroy (&poller);
    zsock_destroy (&router);
    zsock_destroy (&delivery);
    omni_curve_client_destroy (&stranger);
    omni_curve_client_destroy (&client);
    omni_curve_server_destroy (&server);
    assert (!server && !client);
    omni_metrics_destroy (&metrics);
    selftest_rmtree (dir);
    free (dir);
    if (verbose)
        printf ("OK\n");
}
