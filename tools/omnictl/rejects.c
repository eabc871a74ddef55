/*  rejects: omnictl's reader of the rejects stream (see rejects.h).

    Why message by message by sequence (JetStream's "get message") and not
    a consumer. A consumer, even an ephemeral one, is state the cluster
    keeps and replicates; an operator's look at the newest rejects needs
    none. Without a reason, the newest `limit` are the last sequences; with
    one, the stream is read backwards until `limit` of it are found: a
    request each, fine for a tool a person runs.                           */
#include "tools/omnictl/rejects.h"
#include "proto/jetstream.h"
#include "common/util.h"
#include "testsupport/natstest.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WAIT_MS 3000

static const char *
s_header (natsMsg *msg, const char *key)
{
    const char *value = NULL;
    return natsMsgHeader_Get (msg, key, &value) == NATS_OK && value ? value : NULL;
}

//  "2026-01-31T12:00:00.123Z" of ns since the epoch.
static void
s_time (int64_t ns, char *out, size_t size)
{
    time_t seconds = (time_t) (ns / 1000000000);
    struct tm tm;
    gmtime_r (&seconds, &tm);
    char day[32];
    strftime (day, sizeof day, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (out, size, "%s.%03dZ", day, (int) (ns % 1000000000 / 1000000));
}

//  A JSON member "key":"value" (escaped: header text came from outside).
static void
s_json_str (FILE *out, const char *key, const char *value)
{
    if (!value)
        return;
    size_t len = strlen (value);
    char *escaped = malloc (6 * len + 1);
    assert (escaped);
    size_t n = omni_util_json_escape (escaped, value, len, true);
    fprintf (out, ",\"%s\":\"%.*s\"", key, (int) n, escaped);
    free (escaped);
}

static void
s_json_num (FILE *out, const char *key, const char *value)
{
    if (value)
        fprintf (out, ",\"%s\":%llu", key, strtoull (value, NULL, 10));
}

static void
s_print (const rejects_config_t *config, natsMsg *msg, uint64_t seq)
{
    FILE *out = config->out;
    const uint8_t *data = (const uint8_t *) natsMsg_GetData (msg);
    size_t kept = (size_t) natsMsg_GetDataLength (msg);
    const char *received = s_header (msg, OMNI_JS_HDR_RECEIVED);
    char when[48] = "-";
    if (received)
        s_time (strtoll (received, NULL, 10), when, sizeof when);
    const char *size = s_header (msg, OMNI_JS_HDR_SIZE);
    if (config->json) {
        fprintf (out, "{\"seq\":%" PRIu64, seq);
        s_json_str (out, "reason", s_header (msg, OMNI_JS_HDR_REASON));
        s_json_str (out, "detail", s_header (msg, OMNI_JS_HDR_DETAIL));
        if (received)
            s_json_str (out, "received", when);
        s_json_num (out, "received_ns", received);
        s_json_num (out, "size", size);
        fprintf (out, ",\"kept\":%zu", kept);
        s_json_str (out, "peer", s_header (msg, OMNI_JS_HDR_PEER));
        s_json_str (out, "key", s_header (msg, OMNI_JS_HDR_KEY));
        s_json_num (out, "batch_seq", s_header (msg, OMNI_JS_HDR_SEQ));
        s_json_num (out, "frame", s_header (msg, OMNI_JS_HDR_FRAME));
        s_json_str (out, "kind", s_header (msg, OMNI_JS_HDR_KIND));
        s_json_str (out, "src", s_header (msg, OMNI_JS_HDR_SRC));
        s_json_str (out, "col", s_header (msg, OMNI_JS_HDR_COL));
        s_json_str (out, "ingestd", s_header (msg, OMNI_JS_HDR_INGESTD));
        fprintf (out, ",\"raw\":\"");
        for (size_t i = 0; i < kept; i++)
            fprintf (out, "%02x", data[i]);
        fprintf (out, "\"}\n");
        return;
    }
    const char *reason = s_header (msg, OMNI_JS_HDR_REASON);
    const char *peer = s_header (msg, OMNI_JS_HDR_PEER);
    const char *batch = s_header (msg, OMNI_JS_HDR_SEQ), *frame = s_header (msg, OMNI_JS_HDR_FRAME);
    fprintf (out, "#%" PRIu64 " %s %s %s bytes%s from %s", seq, when, reason ? reason : "?",
             size ? size : "?", size && strtoull (size, NULL, 10) > kept ? " (cut)" : "",
             peer ? peer : "-");
    if (batch)
        fprintf (out, " batch=%s", batch);
    if (frame)
        fprintf (out, " frame=%s", frame);
    static const char *fields[][2] = {{"kind", OMNI_JS_HDR_KIND},
                                      {"src", OMNI_JS_HDR_SRC},
                                      {"col", OMNI_JS_HDR_COL},
                                      {"key", OMNI_JS_HDR_KEY},
                                      {"ingestd", OMNI_JS_HDR_INGESTD}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *value = s_header (msg, fields[i][1]);
        if (value)
            fprintf (out, " %s=\"%s\"", fields[i][0], value);
    }
    const char *detail = s_header (msg, OMNI_JS_HDR_DETAIL);
    fprintf (out, "\n    %s\n    ", detail ? detail : "");
    for (size_t i = 0; i < kept && i < 32; i++)
        fprintf (out, "%02x%s", data[i], i + 1 < kept && i < 31 ? " " : "");
    fprintf (out, "%s\n", kept > 32 ? " ..." : "");
}

//  The message at `seq`: 0 with it, 1 when there is none, -1 on failure.
static int
s_get (jsCtx *js, const char *stream, uint64_t seq, natsMsg **msg, char *why, size_t why_size)
{
    jsOptions o;
    jsOptions_Init (&o);
    o.Wait = WAIT_MS;
    jsErrCode code = 0;
    *msg = NULL;
    natsStatus s = js_GetMsg (msg, js, stream, seq, &o, &code);
    if (s == NATS_OK)
        return 0;
    if (s == NATS_NOT_FOUND || code == JSNoMessageFoundErr)
        return 1;
    omni_js_error (s, code, why, why_size);
    return -1;
}

static int
s_run (const rejects_config_t *config, jsCtx *js, const char *stream)
{
    char why[512], subject[OMNI_JS_SUBJECT_MAX] = "";
    if (*config->reason)
        omni_js_rejects_subject (config->stream, config->reason, subject, sizeof subject);
    natsMsg *msg = NULL;
    if (config->seq) {
        int rc = s_get (js, stream, config->seq, &msg, why, sizeof why);
        if (rc) {
            fprintf (stderr, "error: omnictl rejects: %s: reject #%" PRIu64 ": %s\n", stream,
                     config->seq,
                     rc > 0 ? "not in the stream (never, or removed by its limits)" : why);
            return 1;
        }
        if (config->raw)
            fwrite (natsMsg_GetData (msg), 1, (size_t) natsMsg_GetDataLength (msg), config->out);
        else
            s_print (config, msg, config->seq);
        natsMsg_Destroy (msg);
        return 0;
    }
    jsErrCode code = 0;
    jsStreamInfo *si = omni_js_stream_info (js, stream, WAIT_MS, &code, why, sizeof why);
    if (!si) {
        fprintf (stderr, "error: omnictl rejects: stream %s: %s%s\n", stream, why,
                 code == JSStreamNotFoundErr
                     ? " (made by ingestd with journal: jetstream; see --stream, --rejects-stream)"
                     : "");
        return 1;
    }
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq, msgs = si->State.Msgs;
    jsStreamInfo_Destroy (si);
    //  Newest first into `found`, printed oldest first
    uint64_t *found = calloc (config->limit + 1, sizeof *found);
    assert (found);
    size_t count = 0;
    int rc = 0;
    for (uint64_t seq = last; msgs && seq >= first && seq > 0 && count < config->limit; seq--) {
        int got = s_get (js, stream, seq, &msg, why, sizeof why);
        if (got < 0) {
            fprintf (stderr, "error: omnictl rejects: stream %s: #%" PRIu64 ": %s\n", stream, seq,
                     why);
            rc = 1;
            break;
        }
        if (got == 0 && (!*subject || strcmp (natsMsg_GetSubject (msg), subject) == 0))
            found[count++] = seq;
        natsMsg_Destroy (msg);
    }
    for (size_t i = count; rc == 0 && i-- > 0;) {
        if (s_get (js, stream, found[i], &msg, why, sizeof why) == 0)
            s_print (config, msg, found[i]);
        natsMsg_Destroy (msg);
    }
    free (found);
    return rc;
}

int
rejects_run (const rejects_config_t *config)
{
    char stream[OMNI_JS_STREAM_MAX + 16];
    if (*config->rejects)
        snprintf (stream, sizeof stream, "%s", config->rejects);
    else
        omni_js_rejects_name (config->stream, stream, sizeof stream);
    if (!omni_js_stream_name_ok (stream) || !config->limit || (config->raw && !config->seq)) {
        fprintf (stderr, "error: omnictl rejects: %s\n",
                 !config->limit ? "--limit must be at least 1"
                 : config->raw  ? "--raw goes with --seq (one reject's bytes)"
                                : "not a stream name (see --stream, --rejects-stream)");
        return 2;
    }
    char error[1024];
    natsConnection *nc = omni_js_connect (config->urls, "omnictl", WAIT_MS, error, sizeof error);
    if (!nc) {
        fprintf (stderr, "error: omnictl rejects: %s\n", error);
        return 1;
    }
    jsCtx *js = NULL;
    int rc = 1;
    natsStatus s = natsConnection_JetStream (&js, nc, NULL);
    if (s == NATS_OK)
        rc = s_run (config, js, stream);
    else {
        omni_js_error (s, 0, error, sizeof error);
        fprintf (stderr, "error: omnictl rejects: %s\n", error);
    }
    jsCtx_Destroy (js);
    natsConnection_Close (nc);
    natsConnection_Destroy (nc);
    return rc;
}

//  ---------------------------------------------------------------------------
//  Self-test: a nats-server of its own; rejects published as ingestd does

static void
s_test_publish (jsCtx *js, const char *reason, const void *data, int size)
{
    char subject[OMNI_JS_SUBJECT_MAX];
    omni_js_rejects_subject ("T", reason, subject, sizeof subject);
    natsMsg *msg = NULL;
    assert (natsMsg_Create (&msg, subject, NULL, data, size) == NATS_OK);
    natsMsgHeader_Set (msg, OMNI_JS_HDR_REASON, reason);
    natsMsgHeader_Set (msg, OMNI_JS_HDR_DETAIL, "v: 2 is \"not\" supported");
    natsMsgHeader_Set (msg, OMNI_JS_HDR_RECEIVED, "1700000000123000000");
    natsMsgHeader_Set (msg, OMNI_JS_HDR_SIZE, "100");
    natsMsgHeader_Set (msg, OMNI_JS_HDR_PEER, "127.0.0.1:4000");
    natsMsgHeader_Set (msg, OMNI_JS_HDR_SEQ, "3");
    jsPubAck *ack = NULL;
    assert (js_PublishMsg (&ack, js, msg, NULL, NULL) == NATS_OK);
    jsPubAck_Destroy (ack);
    natsMsg_Destroy (msg);
}

static char *
s_test_run (rejects_config_t *config, int *rc)
{
    char *text = NULL;
    size_t size = 0;
    config->out = open_memstream (&text, &size);
    assert (config->out);
    *rc = rejects_run (config);
    fclose (config->out);
    return text;
}

void
rejects_test (bool verbose)
{
    (void) verbose;
    natstest_t *server = natstest_new ();
    const char *urls[] = {natstest_url (server), NULL};
    rejects_config_t config = {urls, "T", "", "", 0, 10, false, false, NULL};
    int rc;
    //  No server: said so
    char *text = s_test_run (&config, &rc);
    assert (rc == 1 && !*text);
    free (text);
    natstest_start (server);
    char error[512];
    natsConnection *nc = NULL;
    for (int i = 0; i < 200 && !nc; i++)
        if (!(nc = omni_js_connect (urls, "rejects-test", 500, error, sizeof error)))
            zclock_sleep (50);
    assert (nc);
    jsCtx *js = NULL;
    assert (natsConnection_JetStream (&js, nc, NULL) == NATS_OK);
    //  No stream yet: it says which, and how it comes
    text = s_test_run (&config, &rc);
    assert (rc == 1);
    free (text);
    jsStreamConfig cfg;
    jsStreamConfig_Init (&cfg);
    char subject[OMNI_JS_SUBJECT_MAX];
    omni_js_rejects_subject ("T", NULL, subject, sizeof subject);
    const char *subjects[] = {subject};
    cfg.Name = "T_REJECTS";
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_MemoryStorage;
    jsStreamInfo *si = NULL;
    natsStatus s = NATS_ERR;
    for (int i = 0; i < 100 && s != NATS_OK; i++)
        if ((s = js_AddStream (&si, js, &cfg, NULL, NULL)) != NATS_OK)
            zclock_sleep (50);
    assert (s == NATS_OK);
    jsStreamInfo_Destroy (si);
    //  An empty stream: nothing, and no error
    text = s_test_run (&config, &rc);
    assert (rc == 0 && !*text);
    free (text);
    s_test_publish (js, "bad_version", "\x81\xa1v\x02", 4);
    s_test_publish (js, "not_msgpack", "\xc1", 1);
    s_test_publish (js, "bad_version", "\x81\xa1v\x03", 4);
    //  Text: the newest, oldest first, with why and whence
    text = s_test_run (&config, &rc);
    assert (rc == 0);
    assert (strstr (text,
                    "#1 2023-11-14T22:13:20.123Z bad_version 100 bytes (cut) from "
                    "127.0.0.1:4000 batch=3\n    v: 2 is \"not\" supported\n    81 a1 76 02\n"));
    assert (strstr (text, "#1 ") < strstr (text, "#2 ") &&
            strstr (text, "#2 ") < strstr (text, "#3 "));
    free (text);
    //  By reason, at most `limit`, as JSON lines with the bytes
    config.reason = "bad_version";
    config.limit = 1;
    config.json = true;
    text = s_test_run (&config, &rc);
    assert (rc == 0);
    assert (strcmp (text,
                    "{\"seq\":3,\"reason\":\"bad_version\",\"detail\":\"v: 2 is \\\"not\\\" "
                    "supported\",\"received\":\"2023-11-14T22:13:20.123Z\","
                    "\"received_ns\":1700000000123000000,\"size\":100,\"kept\":4,"
                    "\"peer\":\"127.0.0.1:4000\",\"batch_seq\":3,\"raw\":\"81a17603\"}\n") == 0);
    free (text);
    //  One reject's bytes
    config.seq = 2;
    config.raw = true;
    text = s_test_run (&config, &rc);
    assert (rc == 0 && strcmp (text, "\xc1") == 0);
    free (text);
    config.seq = 9;
    text = s_test_run (&config, &rc);
    assert (rc == 1 && !*text);
    free (text);
    //  Usage
    config.seq = 0;
    text = s_test_run (&config, &rc);
    assert (rc == 2);
    free (text);
    jsCtx_Destroy (js);
    natsConnection_Close (nc);
    natsConnection_Destroy (nc);
    natstest_destroy (&server);
    natstest_close_library ();
}
