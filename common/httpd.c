/*  httpd: the operational HTTP endpoint of a daemon, on libmicrohttpd's own
    thread: GET /metrics (Prometheus text) and GET /health (200 "ok ..." or
    503 with the failing check), so monitoring never waits on the main loop.

    Why a deadline of our own. MHD's connection timeout is an idle timeout:
    it restarts on every byte, so a peer that sends a header byte every few
    seconds holds a connection for ever, and 64 of them took /health down
    for good (slowloris). So every connection also has a deadline that no
    traffic moves: its request must be answered within HTTPD_DEADLINE_MS of
    its start (or of its previous answer, for keep-alive). MHD has no hook
    that runs while a request is still coming in, so a watchdog thread
    shuts down the socket of a connection past its deadline, and MHD then
    closes it as a peer that went away. The descriptor stays in the table
    until MHD says the connection is closed, which it says before it closes
    the descriptor, under the table's lock, so the watchdog never shuts down
    a descriptor number that was reused. One address may hold
    HTTPD_PER_IP_LIMIT connections, so that one peer cannot take them all. */
#include "common/httpd.h"
#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

//  The handler returns enum MHD_Result since 0.9.71, int before
#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result s_result_t;
#else
typedef int s_result_t;
#endif

//  An internal thread with epoll (or poll) rather than select: daemons hold
//  many descriptors, and select fails on any numbered above FD_SETSIZE
#if MHD_VERSION >= 0x00095208
#define S_THREAD_FLAGS MHD_USE_AUTO_INTERNAL_THREAD
#else
#define S_THREAD_FLAGS (MHD_USE_SELECT_INTERNALLY | MHD_USE_POLL)
#endif

#define HTTPD_CONNECTION_LIMIT   64
#define HTTPD_CONNECTION_TIMEOUT 10   //  seconds of silence: a stuck scraper is dropped
#define HTTPD_PER_IP_LIMIT       8    //  a scraper needs one or two
#define HTTPD_DEADLINE_MS        5000 //  a request's whole life, whatever it sends
#define HTTPD_WATCH_MS           200  //  how often deadlines are checked

//  A variable so that the self-test need not wait HTTPD_DEADLINE_MS
static int64_t s_deadline_ms = HTTPD_DEADLINE_MS;

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

//  A connection MHD has open, for the watchdog
typedef struct {
    int fd;           //  -1: a free slot
    int64_t epoch_ms; //  start, or the end of its last answer; INT64_MAX once shut down
    char peer[48];
} s_conn_t;

struct _omni_httpd_t {
    struct MHD_Daemon *daemon;
    omni_metrics_t *metrics;
    health_fn *health;
    void *arg;
    int port;
    char *address;
    pthread_mutex_t lock; //  conns, stopping
    pthread_cond_t wake;
    s_conn_t conns[HTTPD_CONNECTION_LIMIT];
    bool stopping;
    pthread_t watchdog;
    atomic_uint_fast64_t expired; //  connections shut down at their deadline
    omni_metric_t *m_expired;
};

static s_result_t
s_reply (struct MHD_Connection *connection, unsigned status, const char *content_type, char *body,
         size_t size, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (size, body, mode);
    if (!response) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free (body);
        return MHD_NO;
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    //  Monitoring data is stale the moment it is sent
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header (response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    s_result_t rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

static s_result_t
s_reply_text (struct MHD_Connection *connection, unsigned status, const char *text)
{
    return s_reply (connection, status, "text/plain; charset=utf-8", (char *) text, strlen (text),
                    MHD_RESPMEM_PERSISTENT);
}

static s_result_t
s_handle (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void) version;
    (void) upload_data;
    (void) upload_data_size;
    (void) con_cls;
    omni_httpd_t *self = cls;
    bool is_metrics = strcmp (url, "/metrics") == 0;
    bool is_health = strcmp (url, "/health") == 0;
    if (!is_metrics && !is_health)
        return s_reply_text (connection, MHD_HTTP_NOT_FOUND, "not found\n");
    //  HEAD is answered like GET; MHD leaves the body out
    if (strcmp (method, MHD_HTTP_METHOD_GET) != 0 && strcmp (method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_reply_text (connection, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");

    if (is_metrics) {
        char *text = self->metrics ? omni_metrics_render (self->metrics) : strdup ("");
        if (!text)
            return s_reply_text (connection, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                 "cannot render metrics\n");
        return s_reply (connection, MHD_HTTP_OK, METRICS_CONTENT_TYPE, text, strlen (text),
                        MHD_RESPMEM_MUST_FREE);
    }
    char text[2048] = "ok";
    bool healthy = true;
    if (self->health) {
        text[0] = 0;
        healthy = self->health (self->arg, text, sizeof text - 1);
        text[sizeof text - 2] = 0;
        if (!*text)
            strcpy (text, healthy ? "ok" : "unhealthy");
    }
    size_t len = strlen (text);
    if (text[len - 1] != '\n') {
        text[len++] = '\n';
        text[len] = 0;
    }
    return s_reply (connection, healthy ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
                    "text/plain; charset=utf-8", text, len, MHD_RESPMEM_MUST_COPY);
}

//  MHD opened or closed a connection: the watchdog's table follows.
static void
s_notify_connection (void *cls, struct MHD_Connection *connection, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    omni_httpd_t *self = cls;
    pthread_mutex_lock (&self->lock);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd_info =
            MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr_info =
            MHD_get_connection_info (connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        for (int i = 0; fd_info && i < HTTPD_CONNECTION_LIMIT; i++) {
            s_conn_t *conn = &self->conns[i];
            if (conn->fd >= 0)
                continue;
            conn->fd = fd_info->connect_fd;
            conn->epoch_ms = omni_util_mono_ms ();
            strcpy (conn->peer, "?");
            const struct sockaddr *sa = addr_info ? addr_info->client_addr : NULL;
            if (sa && sa->sa_family == AF_INET)
                inet_ntop (AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, conn->peer,
                           sizeof conn->peer);
            else if (sa && sa->sa_family == AF_INET6)
                inet_ntop (AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, conn->peer,
                           sizeof conn->peer);
            *socket_context = conn;
            break;
        }
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        s_conn_t *conn = *socket_context;
        conn->fd = -1;
        *socket_context = NULL;
    }
    pthread_mutex_unlock (&self->lock);
}

//  An answer went out (or the request ended otherwise): a kept-alive
//  connection's next request has a deadline of its own.
static void
s_request_completed (void *cls, struct MHD_Connection *connection, void **con_cls,
                     enum MHD_RequestTerminationCode code)
{
    (void) con_cls;
    (void) code;
    omni_httpd_t *self = cls;
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info (connection, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    pthread_mutex_lock (&self->lock);
    s_conn_t *conn = info ? info->socket_context : NULL;
    if (conn && conn->fd >= 0 && conn->epoch_ms != INT64_MAX)
        conn->epoch_ms = omni_util_mono_ms ();
    pthread_mutex_unlock (&self->lock);
}

static void *
s_watchdog (void *arg)
{
    omni_httpd_t *self = arg;
    pthread_mutex_lock (&self->lock);
    while (!self->stopping) {
        struct timespec until;
        clock_gettime (CLOCK_MONOTONIC, &until);
        until.tv_nsec += HTTPD_WATCH_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait (&self->wake, &self->lock, &until);
        int64_t now = omni_util_mono_ms ();
        for (int i = 0; i < HTTPD_CONNECTION_LIMIT; i++) {
            s_conn_t *conn = &self->conns[i];
            if (conn->fd < 0 || conn->epoch_ms == INT64_MAX || now - conn->epoch_ms < s_deadline_ms)
                continue;
            //  MHD sees end of file and closes it; the slot is freed then
            shutdown (conn->fd, SHUT_RDWR);
            conn->epoch_ms = INT64_MAX;
            atomic_fetch_add (&self->expired, 1);
            if (self->m_expired)
                omni_metric_add (self->m_expired, 1);
            uint64_t held;
            if (omni_log_allow ("httpd.deadline", conn->peer, 60000, &held))
                log_warn ("httpd.deadline",
                          "peer=%s deadline_ms=%" PRId64 " repeated=%" PRIu64
                          " detail=\"no answer within the deadline (a slow or stalled client); "
                          "connection closed\"",
                          conn->peer, s_deadline_ms, held);
        }
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

//  libmicrohttpd's own messages go to our log, one line each.
static void
s_mhd_log (void *cls, const char *format, va_list args)
{
    (void) cls;
    char text[512];
    vsnprintf (text, sizeof text, format, args);
    size_t len = strlen (text);
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r'))
        text[--len] = 0;
    for (char *p = text; *p; p++)
        if (*p == '"')
            *p = '\'';
    //  A peer over its limit makes the same message per connection it opens
    uint64_t held;
    if (omni_log_allow ("httpd.mhd", text, 60000, &held))
        log_warn ("httpd.mhd", "message=\"%s\" repeated=%" PRIu64, text, held);
}

//  Splits "HOST:PORT" or "[V6]:PORT"; an empty host or "*" means every
//  IPv4 address. A bracketed host must be numeric (no name lookup).
static bool
s_parse_address (const char *address, char *host, size_t host_size, char *port, size_t port_size,
                 bool *numeric)
{
    *numeric = *address == '[';
    const char *colon;
    const char *host_start = address;
    size_t host_len;
    if (*address == '[') {
        const char *close = strchr (address, ']');
        if (!close || close[1] != ':')
            return false;
        host_start = address + 1;
        host_len = (size_t) (close - host_start);
        colon = close + 1;
    } else {
        colon = strrchr (address, ':');
        if (!colon || memchr (address, ':', (size_t) (colon - address)))
            return false;
        host_len = (size_t) (colon - address);
    }
    const char *digits = colon + 1;
    size_t ndigits = strlen (digits);
    if (ndigits == 0 || ndigits > 5 || strspn (digits, "0123456789") != ndigits)
        return false;
    if (atoi (digits) > 65535)
        return false;
    if (host_len >= host_size || ndigits >= port_size)
        return false;
    if (host_len == 0 || (host_len == 1 && *host_start == '*'))
        snprintf (host, host_size, "0.0.0.0");
    else {
        memcpy (host, host_start, host_len);
        host[host_len] = 0;
    }
    memcpy (port, digits, ndigits + 1);
    return true;
}

static int
s_bound_port (struct MHD_Daemon *daemon)
{
#if MHD_VERSION >= 0x00096700
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info && info->port)
        return info->port;
#endif
    const union MHD_DaemonInfo *fd_info = MHD_get_daemon_info (daemon, MHD_DAEMON_INFO_LISTEN_FD);
    if (!fd_info)
        return -1;
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    if (getsockname (fd_info->listen_fd, (struct sockaddr *) &addr, &len))
        return -1;
    if (addr.ss_family == AF_INET)
        return ntohs (((struct sockaddr_in *) &addr)->sin_port);
    if (addr.ss_family == AF_INET6)
        return ntohs (((struct sockaddr_in6 *) &addr)->sin6_port);
    return -1;
}

int
omni_httpd_listen (const char *address, bool *ipv6, char *error, size_t error_size)
{
    char host[256], port[8];
    bool numeric;
    if (!address || !s_parse_address (address, host, sizeof host, port, sizeof port, &numeric)) {
        snprintf (error, error_size, "\"%s\" is not HOST:PORT", address ? address : "");
        return -1;
    }
    struct addrinfo hints, *found = NULL;
    memset (&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV | (numeric ? AI_NUMERICHOST : 0);
    int gai = getaddrinfo (host, port, &hints, &found);
    if (gai || !found) {
        snprintf (error, error_size, "cannot listen on %s: %s", address,
                  gai ? gai_strerror (gai) : "no address");
        return -1;
    }
    int fd = socket (found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind (fd, found->ai_addr, found->ai_addrlen) || listen (fd, 64)) {
        int code = errno;
        snprintf (error, error_size, "cannot listen on %s: %s (%s)", address, strerror (code),
                  code == EADDRINUSE ? "another process has this port: give another with "
                                       "--http=HOST:PORT, or --http= for none"
                                     : "check the address given with --http=HOST:PORT");
        if (fd >= 0)
            close (fd);
        freeaddrinfo (found);
        return -1;
    }
    *ipv6 = found->ai_family == AF_INET6;
    freeaddrinfo (found);
    return fd;
}

omni_httpd_t *
omni_httpd_new (const char *address, omni_metrics_t *metrics, health_fn *health, void *arg)
{
    char error[512];
    bool ipv6;
    int fd = omni_httpd_listen (address, &ipv6, error, sizeof error);
    if (fd < 0) {
        log_error ("httpd.start", "address=\"%s\" error=\"%s\"", address ? address : "", error);
        return NULL;
    }
    omni_httpd_t *self = calloc (1, sizeof *self);
    if (!self) {
        close (fd);
        return NULL;
    }
    self->metrics = metrics;
    self->health = health;
    self->arg = arg;
    self->address = strdup (address);
    pthread_mutex_init (&self->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&self->wake, &attr);
    pthread_condattr_destroy (&attr);
    for (int i = 0; i < HTTPD_CONNECTION_LIMIT; i++)
        self->conns[i].fd = -1;
    atomic_init (&self->expired, 0);
    if (metrics)
        self->m_expired = omni_metrics_counter (
            metrics, "http_deadline_closed_total",
            "HTTP connections closed because their request was not answered in time", NULL);
    unsigned flags = S_THREAD_FLAGS | MHD_USE_ERROR_LOG | (ipv6 ? MHD_USE_IPv6 : 0);
    //  The logger first, or MHD prints messages about the options before it
    self->daemon = MHD_start_daemon (
        flags, 0, NULL, NULL, s_handle, self, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, NULL,
        MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned) HTTPD_CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned) HTTPD_PER_IP_LIMIT, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned) HTTPD_CONNECTION_TIMEOUT, MHD_OPTION_NOTIFY_CONNECTION, s_notify_connection,
        self, MHD_OPTION_NOTIFY_COMPLETED, s_request_completed, self, MHD_OPTION_END);
    if (!self->daemon || pthread_create (&self->watchdog, NULL, s_watchdog, self) != 0) {
        log_error ("httpd.start", "address=\"%s\" error=\"the HTTP server did not start\"",
                   address);
        if (self->daemon)
            MHD_stop_daemon (self->daemon);
        else
            close (fd);
        pthread_mutex_destroy (&self->lock);
        pthread_cond_destroy (&self->wake);
        free (self->address);
        free (self);
        return NULL;
    }
    self->port = s_bound_port (self->daemon);
    log_info ("httpd.start", "address=\"%s\" port=%d", address, self->port);
    return self;
}

void
omni_httpd_destroy (omni_httpd_t **self_p)
{
    assert (self_p);
    omni_httpd_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    pthread_cond_signal (&self->wake);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->watchdog, NULL);
    //  Joins the HTTP thread: no handler runs after this returns
    MHD_stop_daemon (self->daemon);
    pthread_mutex_destroy (&self->lock);
    pthread_cond_destroy (&self->wake);
    free (self->address);
    free (self);
    *self_p = NULL;
}

int
omni_httpd_port (omni_httpd_t *self)
{
    assert (self);
    return self->port;
}

//  --------------------------------------------------------------------------
//  Self test

typedef struct {
    atomic_bool healthy;
    atomic_int calls;
} s_test_state_t;

static bool
s_test_health (void *arg, char *text, size_t size)
{
    s_test_state_t *state = arg;
    atomic_fetch_add (&state->calls, 1);
    if (atomic_load (&state->healthy)) {
        snprintf (text, size, "ok journal at 42");
        return true;
    }
    snprintf (text, size, "journal stalled for 5s");
    return false;
}

//  A plain HTTP/1.0 client: sends `request`, reads to EOF. Returns the status
//  code (-1 when the connection failed); the whole response in `*reply`.
static int
s_fetch (int family, int port, const char *request, char **reply)
{
    int fd = socket (family, SOCK_STREAM, 0);
    assert (fd >= 0);
    struct timeval timeout = {10, 0};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    struct sockaddr_storage addr;
    memset (&addr, 0, sizeof addr);
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &addr;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons ((uint16_t) port);
        in6->sin6_addr = in6addr_loopback;
        len = sizeof *in6;
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *) &addr;
        in->sin_family = AF_INET;
        in->sin_port = htons ((uint16_t) port);
        in->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        len = sizeof *in;
    }
    if (connect (fd, (struct sockaddr *) &addr, len)) {
        close (fd);
        if (reply)
            *reply = NULL;
        return -1;
    }
    size_t request_len = strlen (request);
    assert (send (fd, request, request_len, MSG_NOSIGNAL) == (ssize_t) request_len);
    omni_buf_t buf = {0};
    while (true) {
        ssize_t n = recv (fd, omni_buf_reserve (&buf, 4096), 4096, 0);
        if (n < 0 && errno == EINTR)
            continue;
        assert (n >= 0);
        if (n == 0)
            break;
        omni_buf_advance (&buf, (size_t) n);
    }
    close (fd);
    char *data = omni_buf_detach (&buf);
    int status = -1;
    if (sscanf (data, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    if (reply)
        *reply = data;
    else
        free (data);
    return status;
}

static const char *
s_body (const char *reply)
{
    const char *body = strstr (reply, "\r\n\r\n");
    assert (body);
    return body + 4;
}

static int
s_get (int port, const char *path, char **reply)
{
    char request[256];
    snprintf (request, sizeof request, "GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n", path);
    return s_fetch (AF_INET, port, request, reply);
}

#define HTTPD_TEST_CLIENTS 4

typedef struct {
    int port;
    omni_metric_t *counter;
} s_client_args_t;

static void *
s_test_client (void *arg)
{
    s_client_args_t *args = arg;
    for (int i = 0; i < 20; i++) {
        omni_metric_add (args->counter, 1);
        char *reply;
        assert (s_get (args->port, "/metrics", &reply) == 200);
        assert (strstr (reply, "omni_test_requests_total "));
        free (reply);
    }
    return NULL;
}

//  Runs `omni_httpd_new` expecting failure; its log line is noise unless verbose.
static omni_httpd_t *
s_new_quietly (bool verbose, const char *address)
{
    fflush (stderr);
    int saved = dup (STDERR_FILENO);
    if (!verbose) {
        int null = open ("/dev/null", O_WRONLY);
        dup2 (null, STDERR_FILENO);
        close (null);
    }
    omni_httpd_t *httpd = omni_httpd_new (address, NULL, NULL, NULL);
    dup2 (saved, STDERR_FILENO);
    close (saved);
    return httpd;
}

//  s_parse_address into the test's buffers
static bool
s_parses (const char *address, char host[64], char port[8], bool *numeric)
{
    return s_parse_address (address, host, 64, port, 8, numeric);
}

//  A connection from 127.0.0.2 (all of 127/8 is loopback on Linux) that
//  sends the start of a request and nothing more yet
static int
s_test_slow_connect (int port)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert (fd >= 0);
    struct sockaddr_in from = {.sin_family = AF_INET};
    inet_pton (AF_INET, "127.0.0.2", &from.sin_addr);
    assert (bind (fd, (struct sockaddr *) &from, sizeof from) == 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    to.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert (connect (fd, (struct sockaddr *) &to, sizeof to) == 0);
    struct timeval timeout = {0, 10000};
    setsockopt (fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    assert (send (fd, "G", 1, MSG_NOSIGNAL) == 1);
    return fd;
}

//  Slowloris: connections from one address that send a byte every 100 ms
//  are held to the per-address limit and closed at their deadline, which
//  the bytes do not move, while /health answers other addresses at once.
static void
s_test_slowloris (omni_httpd_t *httpd, int port)
{
    s_deadline_ms = 1000;
    enum { SLOW = 12 };
    int fds[SLOW];
    for (int i = 0; i < SLOW; i++)
        fds[i] = s_test_slow_connect (port);
    int64_t start = omni_util_mono_ms ();
    bool closed[SLOW] = {false};
    int open_ = SLOW;
    while (open_ > 0 && omni_util_mono_ms () - start < 5000) {
        int64_t asked = omni_util_mono_ms ();
        assert (s_get (port, "/health", NULL) == 503); //  answered: unhealthy, as set above
        assert (omni_util_mono_ms () - asked < 1000);
        for (int i = 0; i < SLOW; i++) {
            if (closed[i])
                continue;
            char byte;
            ssize_t n = recv (fds[i], &byte, 1, 0);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) ||
                send (fds[i], "E", 1, MSG_NOSIGNAL) != 1) {
                closed[i] = true;
                open_--;
                //  Refused at once (over the address's limit) or at the deadline
                int64_t age = omni_util_mono_ms () - start;
                assert (age < 300 || age >= 900);
            }
        }
        usleep (100 * 1000);
    }
    assert (open_ == 0);
    assert (atomic_load (&httpd->expired) >= HTTPD_PER_IP_LIMIT - 1);
    for (int i = 0; i < SLOW; i++)
        close (fds[i]);
    s_deadline_ms = HTTPD_DEADLINE_MS;
}

void
omni_httpd_test (bool verbose)
{
    omni_log_init ("httpd-test", verbose ? "debug" : "warn", "kv");
    char host[64], port[8];
    bool numeric;
    assert (s_parses ("127.0.0.1:9100", host, port, &numeric));
    assert (strcmp (host, "127.0.0.1") == 0 && strcmp (port, "9100") == 0 && !numeric);
    assert (s_parses ("[::1]:0", host, port, &numeric));
    assert (strcmp (host, "::1") == 0 && strcmp (port, "0") == 0 && numeric);
    assert (s_parses (":80", host, port, &numeric));
    assert (strcmp (host, "0.0.0.0") == 0);
    assert (s_parses ("*:80", host, port, &numeric));
    assert (strcmp (host, "0.0.0.0") == 0);
    assert (!s_parses ("127.0.0.1", host, port, &numeric));
    assert (!s_parses ("127.0.0.1:", host, port, &numeric));
    assert (!s_parses ("127.0.0.1:65536", host, port, &numeric));
    assert (!s_parses ("127.0.0.1:12x", host, port, &numeric));
    assert (!s_parses ("::1:80", host, port, &numeric));
    assert (!s_parses ("[::1]80", host, port, &numeric));

    omni_metrics_t *metrics = omni_metrics_new ("omni_test_");
    omni_metric_t *requests = omni_metrics_counter (metrics, "requests_total", "Requests.", NULL);
    omni_metric_add (requests, 3);
    s_test_state_t state;
    atomic_init (&state.healthy, true);
    atomic_init (&state.calls, 0);

    omni_httpd_t *httpd = omni_httpd_new ("127.0.0.1:0", metrics, s_test_health, &state);
    assert (httpd);
    int port_number = omni_httpd_port (httpd);
    assert (port_number > 0 && port_number <= 65535);
    if (verbose)
        printf ("omni_httpd_test: listening on port %d\n", port_number);

    char *reply;
    assert (s_get (port_number, "/metrics", &reply) == 200);
    assert (strstr (reply, "\r\nContent-Type: text/plain; version=0.0.4"));
    const char *expected = "# HELP omni_test_requests_total Requests.\n"
                           "# TYPE omni_test_requests_total counter\n"
                           "omni_test_requests_total 3\n";
    assert (strncmp (s_body (reply), expected, strlen (expected)) == 0);
    assert (strstr (reply, "\nomni_test_http_deadline_closed_total 0\n"));
    free (reply);
    assert (s_get (port_number, "/metrics?name=x", NULL) == 200);

    assert (s_get (port_number, "/health", &reply) == 200);
    assert (strcmp (s_body (reply), "ok journal at 42\n") == 0);
    free (reply);
    atomic_store (&state.healthy, false);
    assert (s_get (port_number, "/health", &reply) == 503);
    assert (strcmp (s_body (reply), "journal stalled for 5s\n") == 0);
    free (reply);
    assert (atomic_load (&state.calls) == 2);

    assert (s_get (port_number, "/", NULL) == 404);
    assert (s_get (port_number, "/metrics/x", NULL) == 404);
    assert (s_get (port_number, "/nope", NULL) == 404);
    assert (s_fetch (AF_INET, port_number, "HEAD /metrics HTTP/1.0\r\n\r\n", &reply) == 200);
    assert (strcmp (s_body (reply), "") == 0);
    free (reply);
    assert (s_fetch (AF_INET, port_number, "POST /metrics HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
                     &reply) == 405);
    assert (strstr (reply, "\r\nAllow: GET, HEAD\r\n"));
    free (reply);
    //  HTTP/1.1 with keep-alive is answered too (the server then closes on
    //  Connection: close)
    assert (s_fetch (AF_INET, port_number,
                     "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", NULL) == 503);

    //  Scrapes from several threads while the counter moves
    pthread_t clients[HTTPD_TEST_CLIENTS];
    s_client_args_t args = {port_number, requests};
    for (int i = 0; i < HTTPD_TEST_CLIENTS; i++)
        assert (pthread_create (&clients[i], NULL, s_test_client, &args) == 0);
    for (int i = 0; i < HTTPD_TEST_CLIENTS; i++)
        pthread_join (clients[i], NULL);
    assert (omni_metric_value (requests) == 3 + HTTPD_TEST_CLIENTS * 20);

    //  The same port twice fails, and so do bad addresses
    char taken[64];
    snprintf (taken, sizeof taken, "127.0.0.1:%d", port_number);
    assert (s_new_quietly (verbose, taken) == NULL);
    assert (s_new_quietly (verbose, "nonsense") == NULL);
    assert (s_new_quietly (verbose, "127.0.0.1:99999") == NULL);
    assert (s_new_quietly (verbose, "[not-an-address]:0") == NULL);
    assert (s_new_quietly (verbose, "[::1:0") == NULL);
    assert (s_new_quietly (verbose, NULL) == NULL);

    s_test_slowloris (httpd, port_number);
    omni_httpd_destroy (&httpd);
    assert (httpd == NULL);
    omni_httpd_destroy (&httpd);
    //  Nothing listens once destroyed
    assert (s_get (port_number, "/health", NULL) == -1);

    //  No health check and no metrics: always healthy, empty metrics
    httpd = omni_httpd_new ("0.0.0.0:0", NULL, NULL, NULL);
    assert (httpd);
    assert (s_get (omni_httpd_port (httpd), "/health", &reply) == 200);
    assert (strcmp (s_body (reply), "ok\n") == 0);
    free (reply);
    assert (s_get (omni_httpd_port (httpd), "/metrics", &reply) == 200);
    assert (strcmp (s_body (reply), "") == 0);
    free (reply);
    omni_httpd_destroy (&httpd);

    //  IPv6 when the machine has it
    httpd = s_new_quietly (verbose, "[::1]:0");
    if (httpd) {
        assert (s_fetch (AF_INET6, omni_httpd_port (httpd), "GET /health HTTP/1.0\r\n\r\n", NULL) ==
                200);
        omni_httpd_destroy (&httpd);
    } else if (verbose)
        printf ("omni_httpd_test: no IPv6 loopback, skipped\n");

    omni_metrics_destroy (&metrics);
}
