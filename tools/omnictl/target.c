/*  target: one daemon seen through /metrics and /health (see target.h).

    HTTP is libcurl's multi interface: every request of a scrape runs at
    once, so a deployment with several unreachable hosts still answers
    within one timeout. Proxies from the environment are ignored: the
    operational ports are reached directly, like a Prometheus server does.   */
#include "tools/omnictl/target.h"
#include "common/buf.h"
#include "common/httpd.h"
#include "common/log.h"
#include "common/metrics.h"
#include "common/util.h"

#include <assert.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define TARGET_BODY_MAX (64u << 20) //  a larger /metrics page is cut off, not a reason to die

struct _target_t {
    char *name;
    char *address;
    char *base_url; //  "http://HOST:PORT", no trailing slash
    bool reached, healthy;
    char health[512];
    char health_text[4096];
    promtext_t *metrics, *previous;
    int64_t at_ms, previous_at_ms;
};

typedef struct {
    omni_buf_t buf;
    bool truncated;
} s_body_t;

static size_t
s_write (char *data, size_t size, size_t nmemb, void *arg)
{
    s_body_t *body = arg;
    size_t n = size * nmemb;
    if (body->buf.size + n > TARGET_BODY_MAX) {
        body->truncated = true;
        return 0; //  curl stops with CURLE_WRITE_ERROR
    }
    if (omni_buf_try_reserve (&body->buf, n))
        return 0; //  out of memory: the request fails, the tool carries on
    omni_buf_append (&body->buf, data, n);
    return n;
}

target_t *
target_new (const char *spec, char *error, size_t error_size)
{
    const char *equals = strchr (spec, '=');
    const char *address = equals ? equals + 1 : spec;
    size_t name_len = equals ? (size_t) (equals - spec) : strlen (spec);
    const char *host = address;
    if (strncmp (host, "http://", 7) == 0)
        host += 7;
    else if (strncmp (host, "https://", 8) == 0)
        host += 8;
    const char *colon = strrchr (host, ':');
    const char *close = strrchr (host, ']');
    bool has_port = colon && colon > host && (!close || colon > close) && colon[1] &&
                    strspn (colon + 1, "0123456789/") == strlen (colon + 1);
    if (name_len == 0 || !*address || !has_port || strchr (spec, ' ')) {
        snprintf (error, error_size, "omnictl.targets: \"%s\" is not NAME=HOST:PORT (or HOST:PORT)",
                  spec);
        return NULL;
    }
    target_t *self = calloc (1, sizeof *self);
    assert (self);
    self->name = equals ? strndup (spec, name_len) : strdup (spec);
    self->address = strdup (address);
    if (host == address) {
        self->base_url = malloc (strlen (address) + 8);
        assert (self->base_url);
        sprintf (self->base_url, "http://%s", address);
    } else
        self->base_url = strdup (address);
    size_t len = strlen (self->base_url);
    while (len && self->base_url[len - 1] == '/')
        self->base_url[--len] = 0;
    snprintf (self->health, sizeof self->health, "not scraped yet");
    return self;
}

void
target_destroy (target_t **self_p)
{
    target_t *self = *self_p;
    if (!self)
        return;
    promtext_destroy (&self->metrics);
    promtext_destroy (&self->previous);
    free (self->name);
    free (self->address);
    free (self->base_url);
    free (self);
    *self_p = NULL;
}

const char *
target_name (target_t *self)
{
    return self->name;
}

const char *
target_address (target_t *self)
{
    return self->address;
}

typedef struct {
    target_t *target;
    bool is_health;
    CURL *easy;
    s_body_t body;
    CURLcode result;
    long status;
} s_request_t;

static void
s_request_init (s_request_t *request, target_t *target, bool is_health, int64_t timeout_ms)
{
    memset (request, 0, sizeof *request);
    request->target = target;
    request->is_health = is_health;
    request->result = CURLE_FAILED_INIT;
    char url[1024];
    snprintf (url, sizeof url, "%s%s", target->base_url, is_health ? "/health" : "/metrics");
    CURL *easy = curl_easy_init ();
    assert (easy);
    curl_easy_setopt (easy, CURLOPT_URL, url);
    curl_easy_setopt (easy, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt (easy, CURLOPT_WRITEDATA, &request->body);
    curl_easy_setopt (easy, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
    curl_easy_setopt (easy, CURLOPT_CONNECTTIMEOUT_MS, (long) timeout_ms);
    curl_easy_setopt (easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (easy, CURLOPT_PROXY, "");
    curl_easy_setopt (easy, CURLOPT_USERAGENT, "omnictl");
    curl_easy_setopt (easy, CURLOPT_PRIVATE, request);
    request->easy = easy;
}

//  The first line of `text`, without control characters, into `out`.
static void
s_first_line (const char *text, char *out, size_t size)
{
    size_t n = 0;
    for (const char *p = text; *p && *p != '\n' && *p != '\r' && n + 1 < size; p++)
        out[n++] = (unsigned char) *p < 0x20 ? ' ' : *p;
    out[n] = 0;
}

static void
s_request_finish (s_request_t *request, int64_t now_ms)
{
    target_t *self = request->target;
    curl_easy_getinfo (request->easy, CURLINFO_RESPONSE_CODE, &request->status);
    bool answered = request->result == CURLE_OK && request->status > 0;
    if (request->is_health) {
        self->reached = answered;
        self->healthy = answered && request->status == 200;
        snprintf (self->health_text, sizeof self->health_text, "%s",
                  answered && request->body.buf.data ? request->body.buf.data : "");
        if (answered && request->body.buf.data && *request->body.buf.data)
            s_first_line (request->body.buf.data, self->health, sizeof self->health);
        else if (answered)
            snprintf (self->health, sizeof self->health, "HTTP %ld", request->status);
        else
            snprintf (self->health, sizeof self->health, "unreachable: %s",
                      curl_easy_strerror (request->result));
    } else {
        promtext_destroy (&self->previous);
        self->previous = self->metrics;
        self->previous_at_ms = self->at_ms;
        self->metrics = NULL;
        if (answered && request->status == 200)
            self->metrics = promtext_new (request->body.buf.data);
        self->at_ms = now_ms;
    }
}

void
target_scrape_all (target_t **targets, size_t count, int64_t timeout_ms)
{
    if (count == 0)
        return;
    s_request_t *requests = calloc (2 * count, sizeof *requests);
    assert (requests);
    CURLM *multi = curl_multi_init ();
    assert (multi);
    for (size_t i = 0; i < 2 * count; i++) {
        s_request_init (&requests[i], targets[i / 2], i % 2 == 1, timeout_ms);
        curl_multi_add_handle (multi, requests[i].easy);
    }
    int running = 1;
    while (running) {
        if (curl_multi_perform (multi, &running) != CURLM_OK)
            break;
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read (multi, &left)))
            if (msg->msg == CURLMSG_DONE) {
                s_request_t *request;
                curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &request);
                request->result = msg->data.result;
            }
        if (running)
            curl_multi_poll (multi, NULL, 0, 100, NULL);
    }
    int64_t now = omni_util_mono_ms ();
    for (size_t i = 0; i < 2 * count; i++) {
        s_request_finish (&requests[i], now);
        curl_multi_remove_handle (multi, requests[i].easy);
        curl_easy_cleanup (requests[i].easy);
        omni_buf_release (&requests[i].body.buf);
    }
    curl_multi_cleanup (multi);
    free (requests);
}

bool
target_reached (target_t *self)
{
    return self->reached;
}

bool
target_healthy (target_t *self)
{
    return self->healthy;
}

const char *
target_health (target_t *self)
{
    return self->health;
}

const char *
target_health_text (target_t *self)
{
    return self->health_text;
}

promtext_t *
target_metrics (target_t *self)
{
    return self->metrics;
}

static bool
s_counter (promtext_t *page, const char *name, const char *label, const char *value, double *result)
{
    if (!page)
        return false;
    if (label)
        return promtext_get (page, name, label, value, result);
    return promtext_sum (page, name, result) > 0;
}

bool
target_rate (target_t *self, const char *name, const char *label, const char *value, double *rate)
{
    double now, before;
    if (!s_counter (self->metrics, name, label, value, &now) ||
        !s_counter (self->previous, name, label, value, &before))
        return false;
    int64_t elapsed_ms = self->at_ms - self->previous_at_ms;
    //  A counter that went down belongs to a restarted daemon: no rate.
    if (elapsed_ms <= 0 || now < before)
        return false;
    *rate = (now - before) * 1000.0 / (double) elapsed_ms;
    return true;
}

//  ---------------------------------------------------------------------------
//  Self-test: a real httpd (common/httpd.c) with real counters, scraped over
//  loopback; an address where nothing listens.

static bool
s_test_health (void *arg, char *text, size_t size)
{
    bool *ok = arg;
    snprintf (text, size, *ok ? "ok all good\nsecond line" : "store down: test");
    return *ok;
}

void
target_test (bool verbose)
{
    if (!verbose)
        omni_log_init ("target-test", "error", "kv");
    curl_global_init (CURL_GLOBAL_DEFAULT);
    char error[256];
    assert (target_new ("nohost", error, sizeof error) == NULL);
    assert (strstr (error, "nohost"));
    assert (target_new ("=127.0.0.1:1", error, sizeof error) == NULL);
    assert (target_new ("a=127.0.0.1:", error, sizeof error) == NULL);
    assert (target_new ("a=127.0.0.1:x", error, sizeof error) == NULL);
    target_t *named = target_new ("db=http://[::1]:9102/", error, sizeof error);
    assert (named && strcmp (target_name (named), "db") == 0);
    assert (strcmp (target_address (named), "http://[::1]:9102/") == 0);
    target_destroy (&named);
    named = target_new ("127.0.0.1:9100", error, sizeof error);
    assert (named && strcmp (target_name (named), "127.0.0.1:9100") == 0);
    target_destroy (&named);

    omni_metrics_t *metrics = omni_metrics_new ("omni_testd_");
    omni_metric_t *counter = omni_metrics_counter (metrics, "records_stored_total", "stored", NULL);
    omni_metric_t *labelled =
        omni_metrics_counter (metrics, "records_acked_total", "acked", "writer=\"archive\"");
    bool ok = true;
    omni_httpd_t *httpd = omni_httpd_new ("127.0.0.1:0", metrics, s_test_health, &ok);
    assert (httpd);
    char spec[64];
    snprintf (spec, sizeof spec, "testd=127.0.0.1:%d", omni_httpd_port (httpd));
    target_t *up = target_new (spec, error, sizeof error);
    assert (up);
    //  A port that was free a moment ago: connection refused.
    omni_httpd_t *gone = omni_httpd_new ("127.0.0.1:0", NULL, NULL, NULL);
    snprintf (spec, sizeof spec, "gone=127.0.0.1:%d", omni_httpd_port (gone));
    omni_httpd_destroy (&gone);
    target_t *down = target_new (spec, error, sizeof error);
    assert (down);
    target_t *targets[] = {up, down};

    omni_metric_add (counter, 10);
    target_scrape_all (targets, 2, 2000);
    assert (target_reached (up) && target_healthy (up));
    assert (strcmp (target_health (up), "ok all good") == 0);
    assert (target_metrics (up));
    assert (strcmp (promtext_daemon (target_metrics (up)), "testd") == 0);
    double rate;
    assert (!target_rate (up, "omni_testd_records_stored_total", NULL, NULL, &rate));
    assert (!target_reached (down) && !target_healthy (down) && !target_metrics (down));
    assert (strstr (target_health (down), "unreachable"));

    usleep (100 * 1000);
    omni_metric_add (counter, 50);
    omni_metric_add (labelled, 7);
    ok = false;
    target_scrape_all (targets, 2, 2000);
    assert (target_reached (up) && !target_healthy (up));
    assert (strcmp (target_health (up), "store down: test") == 0);
    assert (target_rate (up, "omni_testd_records_stored_total", NULL, NULL, &rate));
    assert (rate > 0 && rate <= 50 / 0.1);
    assert (target_rate (up, "omni_testd_records_acked_total", "writer", "archive", &rate) &&
            rate > 0);
    assert (!target_rate (up, "omni_testd_records_acked_total", "writer", "other", &rate));
    assert (!target_rate (down, "omni_testd_records_stored_total", NULL, NULL, &rate));

    omni_httpd_destroy (&httpd);
    target_scrape_all (targets, 2, 2000);
    assert (!target_reached (up) && !target_metrics (up));
    target_destroy (&up);
    target_destroy (&down);
    omni_metrics_destroy (&metrics);
    curl_global_cleanup ();
}
