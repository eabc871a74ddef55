/*  server: the live dashboard (see server.h). It shares the report code
    with the command line: gather_report, then htmlout or jsonout, into a
    buffer libmicrohttpd sends and frees.                                    */
#include "tools/omni-report/server.h"
#include "common/httpd.h"
#include "tools/omni-report/gather.h"
#include "tools/omni-report/htmlout.h"
#include "tools/omni-report/jsonout.h"
#include "common/log.h"
#include "common/util.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result s_result_t;
#else
typedef int s_result_t;
#endif

//  A built report page, kept for options.cache_ms
typedef struct {
    char *key; //  json flag, name, since, until
    char *body;
    size_t size;
    int64_t built_ms;
} s_cached_t;

#define S_CACHE_SLOTS 32

struct _server_t {
    struct MHD_Daemon *daemon;
    server_options_t options;
    char *dsn;
    int port;
    pthread_mutex_t lock; //  the cache: handlers run one thread each
    s_cached_t cache[S_CACHE_SLOTS];
};

//  The page cached under `key` and still fresh, copied into `buf`.
static bool
s_cache_get (server_t *self, const char *key, omni_buf_t *buf)
{
    if (!self->options.cache_ms)
        return false;
    bool hit = false;
    pthread_mutex_lock (&self->lock);
    for (size_t i = 0; i < S_CACHE_SLOTS && !hit; i++) {
        s_cached_t *slot = &self->cache[i];
        if (slot->key && strcmp (slot->key, key) == 0 &&
            omni_util_mono_ms () - slot->built_ms < self->options.cache_ms) {
            omni_buf_append (buf, slot->body, slot->size);
            hit = true;
        }
    }
    pthread_mutex_unlock (&self->lock);
    return hit;
}

//  Keeps a copy of a page, in place of the same key's or the oldest.
static void
s_cache_put (server_t *self, const char *key, const omni_buf_t *buf)
{
    if (!self->options.cache_ms || !buf->data)
        return;
    pthread_mutex_lock (&self->lock);
    s_cached_t *slot = &self->cache[0];
    for (size_t i = 0; i < S_CACHE_SLOTS; i++) {
        s_cached_t *at = &self->cache[i];
        if (at->key && strcmp (at->key, key) == 0) {
            slot = at;
            break;
        }
        if (!at->key || at->built_ms < slot->built_ms)
            slot = at;
    }
    free (slot->key);
    free (slot->body);
    slot->key = strdup (key);
    slot->body = malloc (buf->size);
    assert (slot->key && slot->body);
    memcpy (slot->body, buf->data, buf->size);
    slot->size = buf->size;
    slot->built_ms = omni_util_mono_ms ();
    pthread_mutex_unlock (&self->lock);
}

static s_result_t
s_send (struct MHD_Connection *connection, unsigned status, const char *type, omni_buf_t *buf)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (
        buf->size, buf->data ? buf->data : (char *) "",
        buf->data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!response) {
        omni_buf_release (buf);
        return MHD_NO;
    }
    memset (buf, 0, sizeof *buf); //  MHD frees it
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header (response, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header (response, "Content-Security-Policy",
                             "default-src 'none'; style-src 'unsafe-inline'");
    s_result_t rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

#define S_HTML "text/html; charset=utf-8"
#define S_JSON "application/json"

//  A page that says which store failed and why (503), in the form asked.
static s_result_t
s_unavailable (struct MHD_Connection *connection, bool json, const char *why)
{
    omni_buf_t buf = {0};
    if (json) {
        omni_buf_append (&buf, "{\"error\":", 9);
        omni_mpjson_string (&buf, why, strlen (why));
        omni_buf_append (&buf, "}\n", 2);
    } else {
        htmlout_begin (&buf, "OmniAudit: store unavailable");
        omni_buf_append (&buf, "<h1>Store unavailable</h1><p class=\"empty\">", 43);
        htmlout_escape (&buf, why);
        omni_buf_append (&buf, "</p><p><a href=\"/\">All projects</a></p>", 39);
        htmlout_end (&buf);
    }
    return s_send (connection, MHD_HTTP_SERVICE_UNAVAILABLE, json ? S_JSON : S_HTML, &buf);
}

static s_result_t
s_not_found (struct MHD_Connection *connection)
{
    omni_buf_t buf = {0};
    htmlout_begin (&buf, "OmniAudit: not found");
    omni_buf_append (&buf, "<h1>Not found</h1><p><a href=\"/\">All projects</a></p>", 53);
    htmlout_end (&buf);
    return s_send (connection, MHD_HTTP_NOT_FOUND, S_HTML, &buf);
}

//  Percent-encoding of a source name for a path segment.
static void
s_url_encode (omni_buf_t *buf, const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr ("-._~", *p))
            omni_buf_append (buf, (const char *) p, 1);
        else {
            char escape[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            omni_buf_append (buf, escape, 3);
        }
    }
}

static s_result_t
s_index (server_t *self, struct MHD_Connection *connection, bool json)
{
    char error[600];
    omni_pgconn_t *conn = gather_connect (self->dsn, self->options.statement_timeout_ms,
                                          self->options.connect_timeout_ms, error, sizeof error);
    char **names = conn ? gather_projects (conn, error, sizeof error) : NULL;
    omni_pgconn_destroy (&conn);
    if (!names)
        return s_unavailable (connection, json, error);
    omni_buf_t buf = {0};
    if (json) {
        omni_buf_append (&buf, "{\"projects\":[", 13);
        for (size_t i = 0; names[i]; i++) {
            if (i)
                omni_buf_append (&buf, ",", 1);
            omni_mpjson_string (&buf, names[i], strlen (names[i]));
        }
        omni_buf_append (&buf, "]}\n", 3);
    } else {
        htmlout_begin (&buf, "OmniAudit: projects");
        const char *head = "<header><h1>OmniAudit projects</h1><nav><a href=\"/json/\">JSON</a>"
                           "</nav></header><section><ul>";
        omni_buf_append (&buf, head, strlen (head));
        for (size_t i = 0; names[i]; i++) {
            omni_buf_append (&buf, "<li><a href=\"/p/", 16);
            omni_buf_t link = {0};
            s_url_encode (&link, names[i]);
            htmlout_escape (&buf, link.data ? link.data : "");
            omni_buf_release (&link);
            omni_buf_append (&buf, "\"><bdi>", 7);
            htmlout_escape (&buf, names[i]);
            omni_buf_append (&buf, "</bdi></a></li>\n", 16);
        }
        if (!names[0])
            omni_buf_append (&buf, "<li class=\"empty\">no project yet</li>", 37);
        omni_buf_append (&buf, "</ul></section>", 15);
        htmlout_end (&buf);
    }
    gather_names_free (&names);
    return s_send (connection, MHD_HTTP_OK, json ? S_JSON : S_HTML, &buf);
}

static s_result_t
s_report (server_t *self, struct MHD_Connection *connection, const char *name, bool json)
{
    char error[600];
    const char *since = MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "since");
    const char *until = MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "until");
    //  Fields apart by a byte no URL argument holds once decoded by MHD
    //  (it cuts at NUL), so two requests cannot share a key by accident.
    omni_buf_t key = {0};
    omni_buf_append (&key, json ? "j\x01" : "h\x01", 2);
    omni_buf_append (&key, name, strlen (name));
    omni_buf_append (&key, "\x01", 1);
    omni_buf_append (&key, since ? since : "", since ? strlen (since) : 0);
    omni_buf_append (&key, "\x01", 1);
    omni_buf_append (&key, until ? until : "", until ? strlen (until) : 0);
    omni_buf_append (&key, "", 1);
    omni_buf_t cached = {0};
    if (s_cache_get (self, key.data, &cached)) {
        omni_buf_release (&key);
        return s_send (connection, MHD_HTTP_OK, json ? S_JSON : S_HTML, &cached);
    }
    omni_pgconn_t *conn = gather_connect (self->dsn, self->options.statement_timeout_ms,
                                          self->options.connect_timeout_ms, error, sizeof error);
    if (!conn) {
        omni_buf_release (&key);
        return s_unavailable (connection, json, error);
    }
    char *pattern = gather_like_literal (name);
    gather_options_t options = {.pattern = pattern,
                                .project = name,
                                .since = since && *since ? since : NULL,
                                .until = until && *until ? until : NULL,
                                .top = self->options.top,
                                .pool_min_rows = self->options.pool_min_rows,
                                .connections = self->options.connections};
    model_t *model = gather_report (conn, &options, error, sizeof error);
    omni_pgconn_destroy (&conn);
    free (pattern);
    if (!model) {
        omni_buf_release (&key);
        return s_unavailable (connection, json, error);
    }
    omni_buf_t buf = {0};
    if (json)
        jsonout_render (model, &buf);
    else {
        omni_buf_t href = {0};
        omni_buf_append (&href, "/json/", 6);
        s_url_encode (&href, name);
        htmlout_render (model, &buf, "/", href.data);
        omni_buf_release (&href);
    }
    model_destroy (&model);
    s_cache_put (self, key.data, &buf);
    omni_buf_release (&key);
    return s_send (connection, MHD_HTTP_OK, json ? S_JSON : S_HTML, &buf);
}

static s_result_t
s_handle (void *cls, struct MHD_Connection *connection, const char *url, const char *method,
          const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void) version;
    (void) upload_data;
    (void) upload_data_size;
    (void) con_cls;
    server_t *self = cls;
    if (strcmp (method, MHD_HTTP_METHOD_GET) != 0 && strcmp (method, MHD_HTTP_METHOD_HEAD) != 0) {
        omni_buf_t buf = {0};
        omni_buf_append (&buf, "method not allowed\n", 19);
        return s_send (connection, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", &buf);
    }
    //  MHD has already percent-decoded the path.
    if (strcmp (url, "/") == 0)
        return s_index (self, connection, false);
    if (strcmp (url, "/json/") == 0 || strcmp (url, "/json") == 0)
        return s_index (self, connection, true);
    if (strcmp (url, "/health") == 0) {
        omni_buf_t buf = {0};
        omni_buf_append (&buf, "ok\n", 3);
        return s_send (connection, MHD_HTTP_OK, "text/plain", &buf);
    }
    if (strncmp (url, "/p/", 3) == 0 && url[3])
        return s_report (self, connection, url + 3, false);
    if (strncmp (url, "/json/", 6) == 0 && url[6])
        return s_report (self, connection, url + 6, true);
    return s_not_found (connection);
}

server_t *
server_new (const char *address, const server_options_t *options, char *error, size_t error_size)
{
    bool ipv6;
    int fd = omni_httpd_listen (address, &ipv6, error, error_size);
    if (fd < 0)
        return NULL;
    unsigned flags =
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | (ipv6 ? MHD_USE_IPv6 : 0);
    server_t *self = calloc (1, sizeof *self);
    assert (self);
    self->options = *options;
    self->dsn = strdup (options->dsn ? options->dsn : "");
    pthread_mutex_init (&self->lock, NULL);
    self->daemon = MHD_start_daemon (flags, 0, NULL, NULL, s_handle, self, MHD_OPTION_LISTEN_SOCKET,
                                     fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned) 64,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) 60, MHD_OPTION_END);
    if (!self->daemon) {
        snprintf (error, error_size, "the HTTP server on %s did not start", address);
        close (fd);
        pthread_mutex_destroy (&self->lock);
        free (self->dsn);
        free (self);
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    getsockname (fd, (struct sockaddr *) &bound, &len);
    self->port = ntohs (bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *) &bound)->sin6_port
                                                    : ((struct sockaddr_in *) &bound)->sin_port);
    return self;
}

void
server_destroy (server_t **self_p)
{
    server_t *self = *self_p;
    if (!self)
        return;
    MHD_stop_daemon (self->daemon);
    for (size_t i = 0; i < S_CACHE_SLOTS; i++) {
        free (self->cache[i].key);
        free (self->cache[i].body);
    }
    pthread_mutex_destroy (&self->lock);
    free (self->dsn);
    free (self);
    *self_p = NULL;
}

int
server_port (server_t *self)
{
    return self->port;
}

//  GET `path` over plain HTTP/1.0; the status, the body in `body`.
static int
s_get (int port, const char *path, char *body, size_t size)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons ((uint16_t) port)};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert (connect (fd, (struct sockaddr *) &addr, sizeof addr) == 0);
    char request[512];
    snprintf (request, sizeof request, "GET %s HTTP/1.0\r\n\r\n", path);
    assert (write (fd, request, strlen (request)) == (ssize_t) strlen (request));
    size_t got = 0;
    ssize_t n;
    while (got + 1 < size && (n = read (fd, body + got, size - 1 - got)) > 0)
        got += (size_t) n;
    body[got] = 0;
    close (fd);
    int status = 0;
    sscanf (body, "HTTP/1.%*d %d", &status);
    return status;
}

void
server_test (bool verbose)
{
    (void) verbose;
    char error[256];
    server_options_t options = {.dsn = "host=127.0.0.1 port=1 dbname=none",
                                .statement_timeout_ms = 1000,
                                .connect_timeout_ms = 2000,
                                .top = 5};
    assert (!server_new ("nonsense", &options, error, sizeof error));
    server_t *server = server_new ("127.0.0.1:0", &options, error, sizeof error);
    assert (server && server_port (server) > 0);
    static char body[65536];
    //  The store is down: every page says which and why, with a 503.
    assert (s_get (server_port (server), "/", body, sizeof body) == 503);
    assert (strstr (body, "port=1") && strstr (body, "Store unavailable"));
    assert (s_get (server_port (server), "/json/x%3Cy", body, sizeof body) == 503);
    assert (strstr (body, "{\"error\":\"PostgreSQL"));
    assert (s_get (server_port (server), "/health", body, sizeof body) == 200);
    assert (s_get (server_port (server), "/nothing", body, sizeof body) == 404);
    char taken[32];
    snprintf (taken, sizeof taken, "127.0.0.1:%d", server_port (server));
    assert (!server_new (taken, &options, error, sizeof error) && strstr (error, taken));
    server_destroy (&server);
    assert (!server);
    omni_buf_t buf = {0};
    s_url_encode (&buf, "file:///a b/é");
    assert (strcmp (buf.data, "file%3A%2F%2F%2Fa%20b%2F%C3%A9") == 0);
    omni_buf_release (&buf);
}
