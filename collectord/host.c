/*  host: /proc snapshots -> metric records.

    Why deltas of counters: /proc/stat, /proc/diskstats and /proc/net/dev
    hold totals since boot; what a dashboard wants is the share of CPU time
    and the throughput over the last interval, so each value comes from the
    difference between two snapshots, divided by the CPU ticks or the
    monotonic time between them.                                            */
#include "collectord/host.h"
#include "common/buf.h"
#include "common/log.h"
#include "proto/record.h"
#include "testsupport/selftest.h"
#include "testsupport/testpeer.h"
#include "common/util.h"

#include <assert.h>
#include <czmq.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  ---------------------------------------------------------------------------
//  Parsers

//  The line of `text` that starts with `prefix`, or NULL
static const char *
s_line (const char *text, const char *prefix)
{
    size_t len = strlen (prefix);
    for (const char *line = text; line && *line;) {
        if (strncmp (line, prefix, len) == 0)
            return line;
        line = strchr (line, '\n');
        if (line)
            line++;
    }
    return NULL;
}

int
host_parse_stat (const char *text, host_snapshot_t *snap)
{
    const char *line = s_line (text, "cpu ");
    if (!line)
        return -1;
    unsigned long long v[8] = {0};
    int n = sscanf (line + 4, "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                    &v[4], &v[5], &v[6], &v[7]);
    if (n < 4)
        return -1;
    //  guest and guest_nice are already counted in user and nice
    snap->user = v[0];
    snap->nice = v[1];
    snap->system = v[2];
    snap->idle = v[3];
    snap->iowait = v[4];
    snap->irq = v[5];
    snap->softirq = v[6];
    snap->steal = v[7];
    snap->have |= HOST_HAVE_STAT;
    return 0;
}

//  "Key:   123 kB" -> bytes; false when absent
static bool
s_meminfo_kb (const char *text, const char *key, uint64_t *bytes)
{
    const char *line = s_line (text, key);
    unsigned long long kb;
    if (!line || sscanf (line + strlen (key), " %llu", &kb) != 1)
        return false;
    *bytes = (uint64_t) kb * 1024;
    return true;
}

int
host_parse_meminfo (const char *text, host_snapshot_t *snap)
{
    if (!s_meminfo_kb (text, "MemTotal:", &snap->mem_total))
        return -1;
    if (!s_meminfo_kb (text, "MemAvailable:", &snap->mem_available)) {
        //  Kernels before 3.14: the usual estimate
        uint64_t free_ = 0, buffers = 0, cached = 0;
        if (!s_meminfo_kb (text, "MemFree:", &free_))
            return -1;
        s_meminfo_kb (text, "Buffers:", &buffers);
        s_meminfo_kb (text, "Cached:", &cached);
        snap->mem_available = free_ + buffers + cached;
    }
    snap->have |= HOST_HAVE_MEM;
    return 0;
}

int
host_parse_loadavg (const char *text, host_snapshot_t *snap)
{
    if (sscanf (text, "%lf %lf %lf", &snap->load1, &snap->load5, &snap->load15) != 3)
        return -1;
    snap->have |= HOST_HAVE_LOAD;
    return 0;
}

#define S_NAME_MAX 64

typedef struct {
    char name[S_NAME_MAX];
    unsigned long long read, written; //  sectors
} s_disk_t;

static bool
s_all_digits (const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isdigit ((unsigned char) *s))
            return false;
    return true;
}

//  Linux names a partition after its disk: sda -> sda1, and with a 'p'
//  when the disk name ends with a digit: nvme0n1 -> nvme0n1p1, nbd1 -> nbd1p1.
static bool
s_is_partition_of (const char *name, const char *disk)
{
    size_t len = strlen (disk);
    if (strncmp (name, disk, len) || !name[len] || len == 0)
        return false;
    bool disk_digit = isdigit ((unsigned char) disk[len - 1]);
    const char *rest = name + len;
    if (disk_digit)
        return rest[0] == 'p' && s_all_digits (rest + 1);
    return s_all_digits (rest);
}

//  Virtual devices whose traffic is already counted on the disks below
static bool
s_is_virtual (const char *name)
{
    static const char *prefixes[] = {"loop", "ram", "zram", "dm-", "md", "fd", NULL};
    for (int i = 0; prefixes[i]; i++)
        if (strncmp (name, prefixes[i], strlen (prefixes[i])) == 0)
            return true;
    return false;
}

int
host_parse_diskstats (const char *text, host_snapshot_t *snap)
{
    s_disk_t *disks = NULL;
    size_t count = 0, cap = 0;
    for (const char *line = text; line && *line;) {
        unsigned major, minor;
        s_disk_t d;
        unsigned long long reads, rmerged, ms, writes, wmerged;
        if (sscanf (line, " %u %u %63s %llu %llu %llu %llu %llu %llu %llu", &major, &minor, d.name,
                    &reads, &rmerged, &d.read, &ms, &writes, &wmerged, &d.written) == 10) {
            *omni_array_push (disks, count, cap) = d;
        }
        line = strchr (line, '\n');
        if (line)
            line++;
    }
    snap->disk_read = snap->disk_write = 0;
    for (size_t i = 0; i < count; i++) {
        if (s_is_virtual (disks[i].name))
            continue;
        bool partition = false;
        for (size_t j = 0; j < count && !partition; j++)
            partition = j != i && s_is_partition_of (disks[i].name, disks[j].name);
        if (partition)
            continue;
        snap->disk_read += (uint64_t) disks[i].read * 512;
        snap->disk_write += (uint64_t) disks[i].written * 512;
    }
    free (disks);
    if (count == 0 && strspn (text, " \t\n") != strlen (text))
        return -1;
    snap->have |= HOST_HAVE_DISK;
    return 0;
}

int
host_parse_netdev (const char *text, host_snapshot_t *snap)
{
    snap->net_rx = snap->net_tx = 0;
    int interfaces = 0;
    for (const char *line = text; line && *line;) {
        const char *colon = strchr (line, ':');
        const char *end = strchr (line, '\n');
        if (colon && (!end || colon < end)) {
            const char *name = line;
            while (name < colon && (*name == ' ' || *name == '\t'))
                name++;
            unsigned long long v[9];
            if (sscanf (colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                        &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8]) == 9) {
                interfaces++;
                if (!(colon - name == 2 && strncmp (name, "lo", 2) == 0)) {
                    snap->net_rx += v[0];
                    snap->net_tx += v[8];
                }
            }
        }
        line = end ? end + 1 : NULL;
    }
    if (interfaces == 0)
        return -1;
    snap->have |= HOST_HAVE_NET;
    return 0;
}

//  The whole file, NUL-terminated (caller frees), or NULL. /proc files have
//  no size: read until EOF.
static char *
s_read_file (const char *root, const char *name)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/%s", root, name);
    FILE *file = fopen (path, "r");
    if (!file)
        return NULL;
    omni_buf_t text = {0};
    omni_buf_reserve (&text, 16384);
    omni_buf_read_file (&text, file); //  a read error: what was read
    fclose (file);
    return omni_buf_detach (&text);
}

int
host_snapshot_read (const char *proc_root, host_snapshot_t *snap)
{
    static const struct {
        const char *file;
        int (*parse) (const char *, host_snapshot_t *);
    } files[] = {{"stat", host_parse_stat},
                 {"meminfo", host_parse_meminfo},
                 {"loadavg", host_parse_loadavg},
                 {"diskstats", host_parse_diskstats},
                 {"net/dev", host_parse_netdev}};
    memset (snap, 0, sizeof *snap);
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *text = s_read_file (proc_root, files[i].file);
        if (text)
            files[i].parse (text, snap);
        free (text);
    }
    return snap->have ? 0 : -1;
}

//  ---------------------------------------------------------------------------
//  Values

static void
s_value (host_value_t *out, size_t *n, const char *name, double value, const char *unit)
{
    assert (*n < HOST_VALUES_MAX);
    out[(*n)++] = (host_value_t){name, value, unit};
}

//  A counter's increase per second; false when it went backwards
static bool
s_rate (uint64_t prev, uint64_t cur, double seconds, double *rate)
{
    if (cur < prev || seconds <= 0)
        return false;
    *rate = (double) (cur - prev) / seconds;
    return true;
}

size_t
host_values (const host_snapshot_t *prev, const host_snapshot_t *cur, host_value_t *out)
{
    size_t n = 0;
    unsigned both = prev ? prev->have & cur->have : 0;
    if (both & HOST_HAVE_STAT) {
        uint64_t p_user = prev->user + prev->nice, c_user = cur->user + cur->nice;
        uint64_t p_sys = prev->system + prev->irq + prev->softirq;
        uint64_t c_sys = cur->system + cur->irq + cur->softirq;
        uint64_t p_total = p_user + p_sys + prev->idle + prev->iowait + prev->steal;
        uint64_t c_total = c_user + c_sys + cur->idle + cur->iowait + cur->steal;
        if (c_total > p_total && c_user >= p_user && c_sys >= p_sys &&
            cur->iowait >= prev->iowait) {
            double total = (double) (c_total - p_total);
            s_value (out, &n, "host.cpu.user", 100.0 * (double) (c_user - p_user) / total,
                     "percent");
            s_value (out, &n, "host.cpu.system", 100.0 * (double) (c_sys - p_sys) / total,
                     "percent");
            s_value (out, &n, "host.cpu.iowait",
                     100.0 * (double) (cur->iowait - prev->iowait) / total, "percent");
        }
    }
    if (cur->have & HOST_HAVE_MEM) {
        s_value (out, &n, "host.mem.total", (double) cur->mem_total, "bytes");
        s_value (out, &n, "host.mem.available", (double) cur->mem_available, "bytes");
        s_value (out, &n, "host.mem.used",
                 cur->mem_total > cur->mem_available
                     ? (double) (cur->mem_total - cur->mem_available)
                     : 0.0,
                 "bytes");
    }
    if (cur->have & HOST_HAVE_LOAD) {
        s_value (out, &n, "host.load.1", cur->load1, "load");
        s_value (out, &n, "host.load.5", cur->load5, "load");
        s_value (out, &n, "host.load.15", cur->load15, "load");
    }
    double seconds = prev ? (double) (cur->mono_ns - prev->mono_ns) / 1e9 : 0;
    double rate;
    if (both & HOST_HAVE_DISK) {
        if (s_rate (prev->disk_read, cur->disk_read, seconds, &rate))
            s_value (out, &n, "host.disk.read", rate, "bytes/s");
        if (s_rate (prev->disk_write, cur->disk_write, seconds, &rate))
            s_value (out, &n, "host.disk.write", rate, "bytes/s");
    }
    if (both & HOST_HAVE_NET) {
        if (s_rate (prev->net_rx, cur->net_rx, seconds, &rate))
            s_value (out, &n, "host.net.rx", rate, "bytes/s");
        if (s_rate (prev->net_tx, cur->net_tx, seconds, &rate))
            s_value (out, &n, "host.net.tx", rate, "bytes/s");
    }
    return n;
}

//  ---------------------------------------------------------------------------
//  The collector

struct _host_t {
    char *proc_root, *hostname, *source, *instance, *run;
    int64_t interval_ms, samples;
    host_snapshot_t prev;
    bool has_prev;
    omni_record_encoder_t *enc;
    uint64_t records;
};

static char *
s_dup (const char *text, const char *fallback)
{
    char *copy = strdup (text && *text ? text : fallback);
    assert (copy);
    return copy;
}

host_t *
host_new (const host_config_t *config)
{
    host_t *self = calloc (1, sizeof *self);
    assert (self);
    char hostname[256] = "localhost";
    if (gethostname (hostname, sizeof hostname - 1))
        snprintf (hostname, sizeof hostname, "localhost");
    hostname[sizeof hostname - 1] = 0;
    self->proc_root = s_dup (config->proc_root, "/proc");
    self->hostname = s_dup (config->hostname, hostname);
    self->source = s_dup (config->source, self->hostname);
    self->instance = s_dup (config->instance, "host");
    char run[96];
    snprintf (run, sizeof run, "host-%d-%" PRId64, (int) getpid (), omni_util_now_ns ());
    self->run = s_dup (config->run, run);
    self->interval_ms = config->interval_ms > 0 ? config->interval_ms : 10000;
    self->samples = config->samples;
    self->enc = omni_record_encoder_new ();
    return self;
}

void
host_destroy (host_t **self_p)
{
    host_t *self = *self_p;
    if (!self)
        return;
    omni_record_encoder_destroy (&self->enc);
    free (self->proc_root);
    free (self->hostname);
    free (self->source);
    free (self->instance);
    free (self->run);
    free (self);
    *self_p = NULL;
}

uint64_t
host_records (host_t *self)
{
    return self->records;
}

const char *
host_hostname (host_t *self)
{
    return self->hostname;
}

const char *
host_source (host_t *self)
{
    return self->source;
}

const char *
host_proc_root (host_t *self)
{
    return self->proc_root;
}

int64_t
host_interval_ms (host_t *self)
{
    return self->interval_ms;
}

int
host_sample_values (host_t *self, int64_t mono_ns, host_value_t *out)
{
    host_snapshot_t cur;
    if (host_snapshot_read (self->proc_root, &cur))
        return -1;
    cur.mono_ns = mono_ns;
    size_t n = host_values (self->has_prev ? &self->prev : NULL, &cur, out);
    self->prev = cur;
    self->has_prev = true;
    return (int) n;
}

void
host_pack_value (msgpack_packer *pk, const host_value_t *value)
{
    msgpack_pack_map (pk, 3);
    omni_record_pack_kv (pk, "name", value->name);
    omni_record_pack_kv_double (pk, "value", value->value);
    omni_record_pack_kv (pk, "unit", value->unit);
}

int
host_sample (host_t *self, int64_t mono_ns, int64_t wall_ns, host_emit_fn *emit, void *arg)
{
    host_value_t values[HOST_VALUES_MAX];
    int n = host_sample_values (self, mono_ns, values);
    if (n < 0)
        return -1;
    for (int i = 0; i < n; i++) {
        omni_record_encoder_begin (self->enc, "metric", self->source, self->instance, self->run,
                                   wall_ns);
        msgpack_packer *pk = omni_record_encoder_body (self->enc);
        host_pack_value (pk, &values[i]);
        omni_record_encoder_tag (self->enc, "host", self->hostname);
        const void *data;
        size_t size;
        char detail[256];
        if (omni_record_encoder_end (self->enc, &data, &size, detail, sizeof detail)) {
            //  Only a hostname that is not UTF-8 could get here
            log_error ("host.encode_failed", "detail=\"%s\"", detail);
            return -1;
        }
        if (emit (arg, data, size))
            return -1;
        self->records++;
    }
    return n;
}

static int
s_send (void *arg, const void *record, size_t size)
{
    return omni_intake_client_send ((omni_intake_client_t *) arg, record, size);
}

int
host_run (host_t *self, omni_intake_client_t *client)
{
    log_info ("host.start", "host=%s proc=%s interval_ms=%" PRId64 " samples=%" PRId64,
              self->hostname, self->proc_root, self->interval_ms, self->samples);
    int64_t next = omni_util_mono_ms ();
    for (int64_t taken = 0; self->samples == 0 || taken < self->samples; taken++) {
        while (!zsys_interrupted && omni_util_mono_ms () < next)
            zclock_sleep (
                (int) (next - omni_util_mono_ms () < 100 ? next - omni_util_mono_ms () : 100));
        if (zsys_interrupted)
            break;
        next += self->interval_ms;
        int64_t now = omni_util_mono_ms ();
        if (next < now) //  fell behind (ingestd away): no burst to catch up
            next = now + self->interval_ms;
        int n = host_sample (self, now * 1000000, omni_util_now_ns (), s_send, client);
        if (n < 0) {
            log_error ("host.sample_failed",
                       "proc=%s detail=\"no /proc file could be read, or "
                       "ingestd did not acknowledge\"",
                       self->proc_root);
            return -1;
        }
        //  A sample is a handful of records: send it now rather than wait
        //  for a batch to fill (which would take minutes).
        if (omni_intake_client_flush (client))
            return zsys_interrupted ? 0 : -1;
    }
    int rc = omni_intake_client_flush (client);
    log_info ("host.stop", "records=%" PRIu64, self->records);
    return rc && !zsys_interrupted ? -1 : 0;
}

//  ---------------------------------------------------------------------------
//  Self-test

static const char s_stat_a[] = "cpu  1000 50 300 8000 100 10 20 5 7 0\n"
                               "cpu0 500 25 150 4000 50 5 10 2 0 0\n"
                               "intr 12345\nctxt 999\n";
static const char s_stat_b[] = "cpu  1130 70 360 8700 140 15 25 10 9 0\n"
                               "cpu0 565 35 180 4350 70 7 12 5 0 0\n";
static const char s_meminfo[] = "MemTotal:       16318360 kB\n"
                                "MemFree:         1000000 kB\n"
                                "MemAvailable:    8159180 kB\n"
                                "Buffers:          200000 kB\n"
                                "Cached:          3000000 kB\n";
static const char s_meminfo_old[] = "MemTotal:       1000 kB\nMemFree:   100 kB\n"
                                    "Buffers:   20 kB\nCached:   30 kB\n";
static const char s_loadavg[] = "0.52 1.58 2.59 3/1234 5678\n";
static const char s_diskstats_a[] =
    "   7       0 loop0 100 0 8000 10 0 0 0 0 0 10 10 0 0 0 0\n"
    "   8       0 sda 1000 10 20000 500 400 20 30000 900 0 800 1400 0 0 0 0\n"
    "   8       1 sda1 900 10 19000 450 390 20 29000 880 0 780 1330 0 0 0 0\n"
    " 259       0 nvme0n1 10 0 1000 1 10 0 2000 1 0 2 2 0 0 0 0\n"
    " 259       1 nvme0n1p1 10 0 999 1 10 0 1999 1 0 2 2 0 0 0 0\n"
    "  43       1 nbd1 1 0 100 1 1 0 100 1 0 1 1\n"
    "  43      10 nbd10 1 0 50 1 1 0 60 1 0 1 1\n"
    " 253       0 dm-0 500 0 9000 1 500 0 9000 1 0 1 1 0 0 0 0\n";
static const char s_diskstats_b[] =
    "   8       0 sda 1100 10 24000 500 450 20 34000 900 0 800 1400 0 0 0 0\n"
    " 259       0 nvme0n1 10 0 1000 1 10 0 2000 1 0 2 2 0 0 0 0\n"
    "  43       1 nbd1 1 0 100 1 1 0 100 1 0 1 1\n"
    "  43      10 nbd10 1 0 50 1 1 0 60 1 0 1 1\n";
static const char s_netdev_a[] =
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs "
    "drop fifo colls carrier compressed\n"
    "    lo: 5000000   100    0    0    0     0          0         0  5000000    100    0    "
    "0    0     0       0          0\n"
    "  eth0: 1000000   900    0    0    0     0          0         0   300000    800    0    "
    "0    0     0       0          0\n"
    "veth1234abcd:    2000    20    0    0    0     0          0         0     4000     40    "
    "0    0    0     0       0          0\n";
static const char s_netdev_b[] =
    "Inter-|   Receive\n face |bytes\n"
    "    lo: 9000000   100    0    0    0     0          0         0  9000000    100    0    "
    "0    0     0       0          0\n"
    "  eth0: 1250000   900    0    0    0     0          0         0   350000    800    0    "
    "0    0     0       0          0\n"
    "veth1234abcd:    2000    20    0    0    0     0          0         0     4000     40    "
    "0    0    0     0       0          0\n";

static double
s_find (const host_value_t *values, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp (values[i].name, name) == 0)
            return values[i].value;
    fprintf (stderr, "host_test: no value %s\n", name);
    assert (false);
    return 0;
}

static bool
s_has (const host_value_t *values, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp (values[i].name, name) == 0)
            return true;
    return false;
}

static bool
s_near (double a, double b)
{
    double scale = fabs (a) > fabs (b) ? fabs (a) : fabs (b);
    return fabs (a - b) <= 1e-9 * (scale > 1 ? scale : 1);
}

static void
s_write (const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf (path, sizeof path, "%s/%s", dir, name);
    FILE *file = fopen (path, "w");
    assert (file);
    fputs (text, file);
    fclose (file);
}

static void
s_fake_proc (const char *dir, const char *stat, const char *disk, const char *net)
{
    s_write (dir, "stat", stat);
    s_write (dir, "meminfo", s_meminfo);
    s_write (dir, "loadavg", s_loadavg);
    s_write (dir, "diskstats", disk);
    s_write (dir, "net/dev", net);
}

typedef struct {
    zlist_t *names;
    double values[64];
    char hosts[64][64];
    int64_t ts[64];
    size_t count;
} s_sink_t;

static int
s_sink (void *arg, const void *data, size_t size)
{
    s_sink_t *sink = arg;
    omni_record_t record;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 4096);
    char detail[256];
    assert (omni_record_decode (&record, &zone, data, size, &omni_record_default_limits, detail,
                                sizeof detail) == REJECT_NONE);
    assert (omni_record_str_eq (record.kind, "metric"));
    omni_record_str_t name, unit;
    assert (omni_record_field_str (record.body, "name", &name));
    assert (omni_record_field_str (record.body, "unit", &unit));
    assert (sink->count < 64);
    assert (omni_record_field_num (record.body, "value", &sink->values[sink->count]));
    zlist_append (sink->names, omni_record_str_dup (name));
    assert (record.tags && record.tags->via.map.size == 1);
    const msgpack_object *host = &record.tags->via.map.ptr[0].val;
    snprintf (sink->hosts[sink->count], 64, "%.*s", (int) host->via.str.size, host->via.str.ptr);
    sink->ts[sink->count] = record.ts;
    sink->count++;
    msgpack_zone_destroy (&zone);
    return 0;
}

static double
s_sink_value (s_sink_t *sink, const char *name)
{
    size_t i = 0;
    for (char *n = zlist_first (sink->names); n; n = zlist_next (sink->names), i++)
        if (strcmp (n, name) == 0)
            return sink->values[i];
    fprintf (stderr, "host_test: no record %s\n", name);
    assert (false);
    return 0;
}

static void
s_sink_reset (s_sink_t *sink)
{
    char *name;
    while ((name = zlist_pop (sink->names)))
        free (name);
    sink->count = 0;
}

//  The live check: a host snapshot of the real /proc lies between the
//  test's own readings just before and just after it.
static void
s_test_live (void)
{
    host_snapshot_t before, snap, after;
    if (host_snapshot_read ("/proc", &before) || !(before.have & HOST_HAVE_STAT)) {
        fprintf (stderr, "host_test: no /proc/stat, live check skipped\n");
        return;
    }
    //  The test's own reading, with its own parser: the first cpu line
    FILE *file = fopen ("/proc/stat", "r");
    assert (file);
    unsigned long long user, nice, system, idle;
    assert (fscanf (file, "cpu %llu %llu %llu %llu", &user, &nice, &system, &idle) == 4);
    fclose (file);
    assert (host_snapshot_read ("/proc", &snap) == 0);
    assert (host_snapshot_read ("/proc", &after) == 0);
    assert (before.user <= user && user <= snap.user && snap.user <= after.user);
    assert (before.system <= system && system <= snap.system && snap.system <= after.system);
    assert (before.idle <= idle && idle <= snap.idle && snap.idle <= after.idle);
    assert (snap.nice >= nice && snap.iowait >= before.iowait);
    if (snap.have & HOST_HAVE_MEM) {
        file = fopen ("/proc/meminfo", "r");
        assert (file);
        unsigned long long total_kb;
        assert (fscanf (file, "MemTotal: %llu kB", &total_kb) == 1);
        fclose (file);
        assert (snap.mem_total == total_kb * 1024);
        assert (snap.mem_available > 0 && snap.mem_available <= snap.mem_total);
    }
    if (snap.have & HOST_HAVE_NET) {
        assert (before.net_rx <= snap.net_rx && snap.net_rx <= after.net_rx);
        assert (before.net_tx <= snap.net_tx && snap.net_tx <= after.net_tx);
    }
    if (snap.have & HOST_HAVE_DISK) {
        assert (before.disk_read <= snap.disk_read && snap.disk_read <= after.disk_read);
        assert (before.disk_write <= snap.disk_write && snap.disk_write <= after.disk_write);
    }
    //  Two real snapshots a little apart: percentages in range and summing
    //  to at most 100
    zclock_sleep (50);
    host_snapshot_t later;
    assert (host_snapshot_read ("/proc", &later) == 0);
    snap.mono_ns = 0;
    later.mono_ns = 50000000;
    host_value_t values[HOST_VALUES_MAX];
    size_t n = host_values (&snap, &later, values);
    if (s_has (values, n, "host.cpu.user")) {
        double u = s_find (values, n, "host.cpu.user"), s = s_find (values, n, "host.cpu.system"),
               w = s_find (values, n, "host.cpu.iowait");
        assert (u >= 0 && s >= 0 && w >= 0 && u + s + w <= 100.0 + 1e-9);
    }
}

void
host_test (bool verbose)
{
    if (!verbose)
        omni_log_init ("host-test", "error", "kv");
    //  Parsers
    host_snapshot_t a = {0}, b = {0};
    assert (host_parse_stat (s_stat_a, &a) == 0);
    assert (a.user == 1000 && a.nice == 50 && a.system == 300 && a.idle == 8000 &&
            a.iowait == 100 && a.irq == 10 && a.softirq == 20 && a.steal == 5);
    assert (host_parse_meminfo (s_meminfo, &a) == 0);
    assert (a.mem_total == 16318360ull * 1024 && a.mem_available == 8159180ull * 1024);
    host_snapshot_t old = {0};
    assert (host_parse_meminfo (s_meminfo_old, &old) == 0);
    assert (old.mem_total == 1000 * 1024 && old.mem_available == 150 * 1024);
    assert (host_parse_loadavg (s_loadavg, &a) == 0);
    assert (a.load1 == 0.52 && a.load5 == 1.58 && a.load15 == 2.59);
    assert (host_parse_diskstats (s_diskstats_a, &a) == 0);
    //  sda + nvme0n1 + nbd1 + nbd10; not loop0, sda1, nvme0n1p1, dm-0
    assert (a.disk_read == (20000ull + 1000 + 100 + 50) * 512);
    assert (a.disk_write == (30000ull + 2000 + 100 + 60) * 512);
    assert (host_parse_netdev (s_netdev_a, &a) == 0);
    assert (a.net_rx == 1002000 && a.net_tx == 304000);
    assert (a.have ==
            (HOST_HAVE_STAT | HOST_HAVE_MEM | HOST_HAVE_LOAD | HOST_HAVE_DISK | HOST_HAVE_NET));
    host_snapshot_t bad = {0};
    assert (host_parse_stat ("intr 1\n", &bad) == -1);
    assert (host_parse_meminfo ("nothing\n", &bad) == -1);
    assert (host_parse_loadavg ("x", &bad) == -1);
    assert (host_parse_netdev ("Inter-|\n face |\n", &bad) == -1);
    assert (host_parse_diskstats ("garbage line\n", &bad) == -1);
    assert (bad.have == 0);
    assert (s_is_partition_of ("sda1", "sda") && !s_is_partition_of ("sdaa", "sda"));
    assert (s_is_partition_of ("nvme0n1p2", "nvme0n1") && !s_is_partition_of ("nbd10", "nbd1"));
    assert (s_is_partition_of ("mmcblk0p1", "mmcblk0") && !s_is_partition_of ("sda", "sda"));

    //  Values: first sample (gauges only), then deltas over 2 s
    a.mono_ns = INT64_C (5000000000);
    host_value_t values[HOST_VALUES_MAX];
    size_t n = host_values (NULL, &a, values);
    assert (n == 6 && !s_has (values, n, "host.cpu.user") && !s_has (values, n, "host.net.rx"));
    assert (s_find (values, n, "host.mem.used") == (16318360.0 - 8159180.0) * 1024);
    assert (s_find (values, n, "host.load.15") == 2.59);
    b = a;
    assert (host_parse_stat (s_stat_b, &b) == 0);
    assert (host_parse_diskstats (s_diskstats_b, &b) == 0);
    assert (host_parse_netdev (s_netdev_b, &b) == 0);
    b.mono_ns = a.mono_ns + INT64_C (2000000000);
    n = host_values (&a, &b, values);
    assert (n == 13);
    //  ticks: user+nice 1050 -> 1200 (150), system+irq+softirq 330 -> 400
    //  (70), idle 700, iowait 40, steal 5: total 965
    assert (s_near (s_find (values, n, "host.cpu.user"), 100.0 * 150 / 965));
    assert (s_near (s_find (values, n, "host.cpu.system"), 100.0 * 70 / 965));
    assert (s_near (s_find (values, n, "host.cpu.iowait"), 100.0 * 40 / 965));
    //  disks (sda1 gone, so sda is now whole either way): sda +4000 sectors read
    assert (s_near (s_find (values, n, "host.disk.read"), 4000.0 * 512 / 2));
    assert (s_near (s_find (values, n, "host.disk.write"), 4000.0 * 512 / 2));
    //  network without lo: eth0 +250000 rx, +50000 tx
    assert (s_near (s_find (values, n, "host.net.rx"), 125000));
    assert (s_near (s_find (values, n, "host.net.tx"), 25000));
    //  A counter that went backwards gives no value
    host_snapshot_t c = b;
    c.mono_ns += INT64_C (1000000000);
    c.net_rx = 10;
    c.user = 0;
    n = host_values (&b, &c, values);
    assert (!s_has (values, n, "host.net.rx") && s_has (values, n, "host.net.tx"));
    assert (!s_has (values, n, "host.cpu.user"));

    //  The collector over a fake /proc: records with the values, host tag, ts
    char *dir = selftest_tmpdir ("host");
    char net[1024];
    snprintf (net, sizeof net, "%s/net", dir);
    assert (omni_util_mkdirs (net) == 0);
    s_fake_proc (dir, s_stat_a, s_diskstats_a, s_netdev_a);
    host_t *host = host_new (&(host_config_t){dir, "web-1", NULL, NULL, NULL, 1000, 2});
    s_sink_t sink = {zlist_new (), {0}, {{0}}, {0}, 0};
    assert (host_sample (host, INT64_C (5000000000), INT64_C (1700000000000000000), s_sink,
                         &sink) == 6);
    assert (s_sink_value (&sink, "host.mem.total") == 16318360.0 * 1024);
    assert (strcmp (sink.hosts[0], "web-1") == 0);
    assert (sink.ts[0] == INT64_C (1700000000000000000));
    s_sink_reset (&sink);
    s_fake_proc (dir, s_stat_b, s_diskstats_b, s_netdev_b);
    assert (host_sample (host, INT64_C (7000000000), INT64_C (1700000002000000000), s_sink,
                         &sink) == 13);
    assert (s_near (s_sink_value (&sink, "host.cpu.user"), 100.0 * 150 / 965));
    assert (s_near (s_sink_value (&sink, "host.net.rx"), 125000));
    assert (host_records (host) == 19);
    //  The values alone (for glue that packs its own records): nothing
    //  moved since, so no CPU share and zero rates
    assert (strcmp (host_hostname (host), "web-1") == 0 && host_interval_ms (host) == 1000);
    assert (host_sample_values (host, INT64_C (9000000000), values) == 10);
    assert (!s_has (values, 10, "host.cpu.user") && s_find (values, 10, "host.net.rx") == 0);
    s_sink_reset (&sink);
    zlist_destroy (&sink.names);
    host_destroy (&host);
    assert (host == NULL);

    //  host_run: three samples 50 ms apart through a real intake client
    testpeer_t *peer = testpeer_new ();
    omni_intake_client_t *client = omni_intake_client_new (
        &(omni_intake_config_t){testpeer_endpoint (peer), 0, 0, 0, 0, 0, NULL});
    assert (client);
    host = host_new (&(host_config_t){dir, "web-1", NULL, NULL, NULL, 50, 3});
    int64_t started = omni_util_mono_ms ();
    assert (host_run (host, client) == 0);
    assert (omni_util_mono_ms () - started >= 100);
    //  6 on the first sample; then nothing moved: no CPU share, 10 each
    assert (host_records (host) == 26);
    assert (omni_intake_client_accepted (client) == 26 && testpeer_accepted (peer) == 26);
    host_destroy (&host);
    omni_intake_client_destroy (&client);
    testpeer_destroy (&peer);
    //  No /proc at all: an error, not a crash
    host = host_new (&(host_config_t){"/nonexistent", NULL, NULL, NULL, NULL, 0, 0});
    assert (host_sample (host, 0, 0, s_sink, &sink) == -1);
    host_destroy (&host);
    selftest_rmtree (dir);
    free (dir);

    s_test_live ();
}
