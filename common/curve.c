/*  curve: CURVE security on the pipeline's ZeroMQ sockets.

    zcert_load is lenient: a missing `_secret` file leaves a zero secret key
    and a file without a public key fails without saying why, so each file
    is checked here first and every error names it. zauth keeps the clients
    directory as a zcertstore, which reloads it on a lookup when the
    directory has changed: a client certificate added at run time is
    accepted without restarting the server.                                 */
#include "curve.h"
#include "log.h"
#include "selftest.h"
#include "util.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define ZERO_KEY "0000000000000000000000000000000000000000"

struct _curve_server_t {
    zcert_t *cert;
    zactor_t *auth;
};

struct _curve_client_t {
    zcert_t *cert;
    char server_key[41];
};

struct _curve_watch_t {
    zsock_t *sock;
    zactor_t *actor;
    char *endpoint;
    char monitor_ep[64];
    atomic_int_least64_t refused_ms; //  when the server last refused us; 0 = not refused
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

//  One certificate; with its secret key when `secret`. NULL with an error
//  naming the file that is missing or malformed.
static zcert_t *
s_load (const char *path, bool secret, char *error, size_t error_size)
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

curve_server_t *
curve_server_new (const char *cert_path, const char *clients_dir, char *error, size_t error_size)
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
    zcert_t *cert = s_load (cert_path, true, error, error_size);
    if (!cert)
        return NULL;
    curve_server_t *self = calloc (1, sizeof *self);
    assert (self);
    self->cert = cert;
    self->auth = zactor_new (zauth, NULL);
    assert (self->auth);
    //  zauth answers each command with a signal once it applies: clients
    //  that connect after this are checked against the directory
    zstr_sendx (self->auth, "CURVE", clients_dir, NULL);
    zsock_wait (self->auth);
    return self;
}

void
curve_server_destroy (curve_server_t **self_p)
{
    curve_server_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->auth);
    zcert_destroy (&self->cert);
    free (self);
    *self_p = NULL;
}

void
curve_server_apply (curve_server_t *self, zsock_t *sock)
{
    zcert_apply (self->cert, sock);
    zsock_set_curve_server (sock, 1);
    //  A ZAP domain makes libzmq ask zauth about every connection
    zsock_set_zap_domain (sock, "omniaudit");
}

int
curve_client_load (const char *cert_path, const char *server_cert_path, curve_client_t **client_p,
                   char *error, size_t error_size)
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
    zcert_t *cert = s_load (cert_path, true, error, error_size);
    if (!cert)
        return -1;
    zcert_t *server = s_load (server_cert_path, false, error, error_size);
    if (!server) {
        zcert_destroy (&cert);
        return -1;
    }
    curve_client_t *self = calloc (1, sizeof *self);
    assert (self);
    self->cert = cert;
    snprintf (self->server_key, sizeof self->server_key, "%s", zcert_public_txt (server));
    zcert_destroy (&server);
    *client_p = self;
    return 0;
}

void
curve_client_destroy (curve_client_t **self_p)
{
    curve_client_t *self = *self_p;
    if (!self)
        return;
    zcert_destroy (&self->cert);
    free (self);
    *self_p = NULL;
}

void
curve_client_apply (const curve_client_t *self, zsock_t *sock)
{
    zcert_apply (self->cert, sock);
    zsock_set_curve_serverkey (sock, self->server_key);
}

bool
curve_refusal_event (uint16_t event, const char *endpoint, bool *refused)
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
                       "endpoint=%s why=\"the server does not accept this curve_key; add its "
                       "public certificate to the server's curve_clients\"",
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

//  The watch's thread: reads the socket's monitor and logs refusals.
static void
s_watch_actor (zsock_t *pipe, void *args)
{
    curve_watch_t *self = (curve_watch_t *) args;
    zsock_t *monitor = zsock_new (ZMQ_PAIR);
    assert (monitor);
    int rc = zsock_connect (monitor, "%s", self->monitor_ep);
    assert (rc == 0);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, monitor, NULL);
    bool refused = false;
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which == monitor) {
            zmsg_t *msg = zmsg_recv (monitor);
            zframe_t *head = msg ? zmsg_first (msg) : NULL;
            if (head && zframe_size (head) >= 2) {
                uint16_t event;
                memcpy (&event, zframe_data (head), sizeof event);
                if (curve_refusal_event (event, self->endpoint, &refused))
                    atomic_store (&self->refused_ms, util_mono_ms ());
            }
            zmsg_destroy (&msg);
        } else {
            //  $TERM from zactor_destroy, or interrupted
            char *command = which == pipe ? zstr_recv (pipe) : NULL;
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
    }
    zpoller_destroy (&poller);
    zsock_destroy (&monitor);
}

curve_watch_t *
curve_watch_new (zsock_t *sock, const char *endpoint)
{
    curve_watch_t *self = calloc (1, sizeof *self);
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
curve_watch_destroy (curve_watch_t **self_p)
{
    curve_watch_t *self = *self_p;
    if (!self)
        return;
    zactor_destroy (&self->actor);
    zmq_socket_monitor (zsock_resolve (self->sock), NULL, 0);
    free (self->endpoint);
    free (self);
    *self_p = NULL;
}

void
curve_watch_poll (curve_watch_t *self)
{
    if (!self)
        return;
    int64_t refused = atomic_load (&self->refused_ms);
    if (refused && util_mono_ms () - refused >= CURVE_RETRY_MS) {
        atomic_store (&self->refused_ms, 0);
        curve_reconnect (self->sock, self->endpoint);
    }
}

void
curve_reconnect (zsock_t *sock, const char *endpoint)
{
    //  The refused connection may still be listed: without it the
    //  disconnect fails harmlessly
    zsock_disconnect (sock, "%s", endpoint);
    if (zsock_connect (sock, "%s", endpoint))
        log_error ("curve.reconnect", "endpoint=%s error=\"%s\"", endpoint,
                   zmq_strerror (zmq_errno ()));
}

int
curve_keygen (const char *path, char *error, size_t error_size)
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
s_dealer (const curve_client_t *client, const char *endpoint, zsock_t **monitor_p)
{
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert (dealer);
    zsock_set_linger (dealer, 0);
    if (client)
        curve_client_apply (client, dealer);
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
curve_test (bool verbose)
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
    assert (curve_keygen (server_path, error, sizeof error) == 0);
    assert (curve_keygen (client_path, error, sizeof error) == 0);
    assert (curve_keygen (stranger_path, error, sizeof error) == 0);
    assert (curve_keygen (client_path, error, sizeof error) == -1);
    assert (strstr (error, client_path) && strstr (error, "exists"));
    snprintf (path, sizeof path, "%s_secret", client_path);
    struct stat st;
    assert (stat (path, &st) == 0 && (st.st_mode & 0777) == 0600);

    //  Errors name the key or the file
    assert (curve_server_new (server_path, clients_dir, error, sizeof error) == NULL);
    assert (strstr (error, clients_dir));
    assert (curve_server_new (server_path, "", error, sizeof error) == NULL);
    assert (strstr (error, "curve_clients"));
    int rc = mkdir (clients_dir, 0700);
    assert (rc == 0);
    assert (curve_server_new (bad_path, clients_dir, error, sizeof error) == NULL);
    assert (strstr (error, bad_path));
    FILE *file = fopen (bad_path, "w");
    fputs ("not a certificate\n", file);
    fclose (file);
    assert (curve_server_new (bad_path, clients_dir, error, sizeof error) == NULL);
    assert (strstr (error, bad_path) && strstr (error, "not a CURVE certificate"));
    snprintf (path, sizeof path, "%s/ingestd_secret", dir);
    char saved[700];
    snprintf (saved, sizeof saved, "%s.saved", path);
    rename (path, saved);
    file = fopen (path, "w");
    fputs ("curve\n    public-key = \"short\"\n", file);
    fclose (file);
    assert (curve_server_new (server_path, clients_dir, error, sizeof error) == NULL);
    assert (strstr (error, path) && strstr (error, "secret"));
    rename (saved, path);
    rename (path, bad_path);
    assert (curve_server_new (server_path, clients_dir, error, sizeof error) == NULL);
    assert (strstr (error, path));
    rename (bad_path, path);

    curve_client_t *client = NULL;
    assert (curve_client_load (NULL, "", &client, error, sizeof error) == 0 && !client);
    assert (curve_client_load (client_path, "", &client, error, sizeof error) == -1);
    assert (strstr (error, "curve_server_key is required"));
    assert (curve_client_load (NULL, server_path, &client, error, sizeof error) == -1);
    assert (strstr (error, "curve_key is required"));
    //  A client needs its own secret
    snprintf (path, sizeof path, "%s/clients/collector", dir);
    assert (curve_client_load (path, server_path, &client, error, sizeof error) == -1);
    assert (strstr (error, path));

    //  The allowed client's public certificate only goes to the directory
    zcert_t *cert = zcert_load (client_path);
    assert (cert);
    rc = zcert_save_public (cert, path);
    assert (rc == 0);
    zcert_destroy (&cert);

    curve_server_t *server = curve_server_new (server_path, clients_dir, error, sizeof error);
    assert (server);
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert (router);
    zsock_set_linger (router, 0);
    curve_server_apply (server, router);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    assert (port > 0);
    char endpoint[64];
    snprintf (endpoint, sizeof endpoint, "tcp://127.0.0.1:%d", port);

    //  An allowed client: its handshake succeeds and its message arrives
    rc = curve_client_load (client_path, server_path, &client, error, sizeof error);
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
    zmsg_destroy (&msg);
    zsock_destroy (&dealer);
    zsock_destroy (&monitor);

    //  A client with an unknown key: the server's ZAP handler refuses it,
    //  and its message never arrives
    curve_client_t *stranger = NULL;
    rc = curve_client_load (stranger_path, server_path, &stranger, error, sizeof error);
    assert (rc == 0 && stranger);
    dealer = s_dealer (stranger, endpoint, &monitor);
    zstr_send (dealer, "intruder");
    uint16_t event = s_wait_event (monitor);
    assert (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    bool refused = false;
    assert (curve_refusal_event (event, endpoint, &refused) && refused);
    assert (curve_refusal_event (event, endpoint, &refused) && refused);
    assert (!curve_refusal_event (ZMQ_EVENT_HANDSHAKE_SUCCEEDED, endpoint, &refused) && !refused);
    zsock_destroy (&dealer);
    zsock_destroy (&monitor);

    //  A client without CURVE fails the handshake too
    dealer = s_dealer (NULL, endpoint, &monitor);
    zstr_send (dealer, "plain");
    assert (s_wait_event (monitor) == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL);
    zsock_destroy (&dealer);
    zsock_destroy (&monitor);

    //  Adding the stranger's certificate lets it in without a restart
    cert = zcert_load (stranger_path);
    snprintf (path, sizeof path, "%s/clients/stranger", dir);
    rc = zcert_save_public (cert, path);
    assert (rc == 0);
    zcert_destroy (&cert);
    dealer = s_dealer (stranger, endpoint, &monitor);
    curve_watch_t *watch = NULL;
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

    //  The watch replaces a monitor and goes away cleanly
    dealer = zsock_new (ZMQ_DEALER);
    curve_client_apply (client, dealer);
    watch = curve_watch_new (dealer, endpoint);
    zsock_connect (dealer, "%s", endpoint);
    curve_watch_destroy (&watch);
    assert (!watch);
    zsock_destroy (&dealer);

    zpoller_destroy (&poller);
    zsock_destroy (&router);
    curve_client_destroy (&stranger);
    curve_client_destroy (&client);
    curve_server_destroy (&server);
    assert (!server && !client);
    selftest_rmtree (dir);
    free (dir);
    if (verbose)
        printf ("OK\n");
}
