/*  host_collector: host_t wired to the session.                            */
#include "collectord/host_collector.h"
#include "testsupport/testpeer.h"
#include "collectord/host.h"
#include "proto/record.h"
#include "common/log.h"
#include "common/util.h"

#include <assert.h>
#include <czmq.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    int64_t samples;
    char *hostname;
    char *proc_root;
    char *source;
} s_settings;

static const omni_config_option_t s_options[] = {
    {"samples", CONFIG_INT, "0",
     "host: samples to take, 0 = until stopped (--once: 1); --interval is the time between "
     "them",
     &s_settings.samples},
    {"hostname", CONFIG_STRING, NULL, "host: the host= tag of the records (default the hostname)",
     &s_settings.hostname},
    {"proc_root", CONFIG_STRING, "/proc",
     "host: where to read stat, meminfo, loadavg, diskstats "
     "and net/dev",
     &s_settings.proc_root},
    {"source", CONFIG_STRING, NULL, "the records' src (host: default the hostname)",
     &s_settings.source},
    {NULL}};

typedef struct {
    host_t *host;
    int64_t samples;
} s_host_t;

static void s_close (void **self_p);

static void *
s_open (const collector_env_t *env, char *error, size_t size)
{
    if (env->nargs) {
        snprintf (error, size, "no arguments, please (\"%s\" given)", env->args[0]);
        return NULL;
    }
    if (s_settings.samples < 0) {
        snprintf (error, size, "collectord.samples: must be 0 or more");
        return NULL;
    }
    host_snapshot_t probe;
    const char *proc =
        s_settings.proc_root && *s_settings.proc_root ? s_settings.proc_root : "/proc";
    if (host_snapshot_read (proc, &probe)) {
        snprintf (error, size, "cannot read %s/stat, meminfo, loadavg, diskstats or net/dev", proc);
        return NULL;
    }
    s_host_t *self = calloc (1, sizeof *self);
    assert (self);
    self->samples = env->once && !s_settings.samples ? 1 : s_settings.samples;
    host_config_t config = {proc, s_settings.hostname, s_settings.source, env->instance,
                            NULL, env->interval_ms,    self->samples};
    self->host = host_new (&config);
    return self;
}

static void
s_close (void **self_p)
{
    s_host_t *self = (s_host_t *) *self_p;
    if (!self)
        return;
    host_destroy (&self->host);
    free (self);
    *self_p = NULL;
}

static const char *
s_source (void *handle)
{
    return host_source (((s_host_t *) handle)->host);
}

static const char *
s_target (void *handle)
{
    return host_hostname (((s_host_t *) handle)->host);
}

static void
s_pack_config (void *handle, msgpack_packer *pk)
{
    s_host_t *self = (s_host_t *) handle;
    msgpack_pack_map (pk, 3);
    omni_record_pack_str (pk, "proc_root");
    omni_record_pack_str (pk, host_proc_root (self->host));
    omni_record_pack_str (pk, "interval_ms");
    msgpack_pack_int64 (pk, host_interval_ms (self->host));
    omni_record_pack_str (pk, "samples");
    msgpack_pack_int64 (pk, self->samples);
}

static int
s_collect (void *handle, session_t *session, char *error, size_t size)
{
    s_host_t *self = (s_host_t *) handle;
    int64_t interval = host_interval_ms (self->host);
    int64_t next = omni_util_mono_ms ();
    for (int64_t taken = 0; self->samples == 0 || taken < self->samples; taken++) {
        while (!session_interrupted (session) && omni_util_mono_ms () < next) {
            int64_t left = next - omni_util_mono_ms ();
            zclock_sleep ((int) (left < 100 ? left : 100));
        }
        if (session_interrupted (session))
            return 0; //  stopping is how a sampler ends
        next += interval;
        int64_t now = omni_util_mono_ms ();
        if (next < now) //  fell behind (ingestd away): no burst to catch up
            next = now + interval;
        host_value_t values[HOST_VALUES_MAX];
        int n = host_sample_values (self->host, now * 1000000, values);
        if (n < 0) {
            snprintf (error, size, "cannot read %s", host_proc_root (self->host));
            return -1;
        }
        int64_t wall = omni_util_now_ns ();
        for (int i = 0; i < n; i++) {
            msgpack_packer *pk = session_record (session, "metric", wall);
            host_pack_value (pk, &values[i]);
            session_tag (session, "host", host_hostname (self->host));
            int rc = session_send (session);
            if (rc > 0) {
                snprintf (error, size, "%s", session_detail (session));
                return -1;
            }
            if (rc < 0)
                break;
        }
        //  A sample is a handful of records: send it now, not when a batch
        //  would be full (minutes later)
        if (session_flush (session)) {
            if (session_interrupted (session))
                return 0;
            snprintf (error, size, "ingestd did not acknowledge (give_up)");
            return -1;
        }
    }
    return 0;
}

const collector_t host_collector = {
    "host",        "(none)",  "host metrics from /proc: cpu, memory, load, disk and network rates",
    true,          s_options, s_open,
    s_close,       s_source,  s_target,
    s_pack_config, s_collect, NULL, //  nothing to remember between runs
    false,
};

void
host_collector_test (bool verbose)
{
    (void) verbose;
    testpeer_t *fake = testpeer_new ();
    session_t *session = collector_test_session ("host", testpeer_endpoint (fake), 500);
    s_settings.samples = 2;
    s_settings.hostname = "test-host";
    s_settings.proc_root = "/proc";
    s_settings.source = NULL;
    collector_env_t env = {NULL, 0, "/nonexistent", "test", 50, false};
    char error[256];
    void *handle = s_open (&env, error, sizeof error);
    assert (handle);
    assert (strcmp (s_source (handle), "test-host") == 0);
    collector_test_begin (session, &host_collector, handle);
    int64_t start = omni_util_mono_ms ();
    assert (s_collect (handle, session, error, sizeof error) == 0);
    assert (omni_util_mono_ms () - start >= 45); //  two samples, one interval apart
    //  Each sample was acknowledged as it was taken
    size_t metrics = testpeer_count_kind (fake, "metric");
    assert (metrics > 0 && metrics == session_count (session, "metric"));
    assert (session_end (session, "ok", NULL) == 0);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    bool saw_mem = false;
    for (size_t i = 0; i < testpeer_count (fake); i++) {
        omni_record_t rec;
        testpeer_record (fake, i, &rec, &zone);
        omni_record_str_t s;
        if (omni_record_str_eq (rec.kind, "metric")) {
            assert (rec.tags && omni_record_field_str (rec.tags, "host", &s) &&
                    omni_record_str_eq (s, "test-host"));
            assert (omni_record_str_eq (rec.src, "test-host"));
            assert (omni_record_field_str (rec.body, "name", &s));
            saw_mem |= omni_record_str_eq (s, "host.mem.total");
        }
        msgpack_zone_clear (&zone);
    }
    assert (saw_mem);
    msgpack_zone_destroy (&zone);
    s_close (&handle);
    assert (handle == NULL);

    //  Arguments, or a /proc that is not there: refused at open
    const char *args[] = {"x"};
    collector_env_t with_args = {args, 1, "/nonexistent", "test", 0, false};
    assert (s_open (&with_args, error, sizeof error) == NULL && strstr (error, "no arguments"));
    s_settings.proc_root = "/nonexistent";
    assert (s_open (&env, error, sizeof error) == NULL && strstr (error, "/nonexistent"));
    session_destroy (&session);
    testpeer_destroy (&fake);
}
