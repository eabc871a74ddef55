/*  host: the host collector (`collectord host`). At an interval it reads
    /proc/stat, /proc/meminfo, /proc/loadavg, /proc/diskstats and
    /proc/net/dev into a snapshot and turns the difference from the previous
    snapshot into `metric` records, tagged host=<hostname>:

        host.cpu.user      percent  (user + nice) of all CPU time in the interval
        host.cpu.system    percent  (system + irq + softirq)
        host.cpu.iowait    percent
        host.mem.total     bytes    MemTotal
        host.mem.available bytes    MemAvailable
        host.mem.used      bytes    MemTotal - MemAvailable
        host.load.1/5/15   load     /proc/loadavg
        host.disk.read     bytes/s  sectors read x 512, whole disks only
        host.disk.write    bytes/s  (no partitions, loop, ram, zram, dm-, md)
        host.net.rx        bytes/s  every interface but lo
        host.net.tx        bytes/s

    The CPU percentages and rates need two snapshots: the first sample gives
    memory and load only. A counter that went backwards (device removed,
    counter reset) gives no value for that interval.

    Parsing and arithmetic are pure functions of the files' text, so the
    self-test checks them exactly; host_t adds the reading, the clock and
    the records.                                                             */
#ifndef OMNI_COLLECTORD_HOST_H
#define OMNI_COLLECTORD_HOST_H

#include "client/intake_client.h"

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  What each file gave (host_snapshot_t.have)
#define HOST_HAVE_STAT 1u
#define HOST_HAVE_MEM  2u
#define HOST_HAVE_LOAD 4u
#define HOST_HAVE_DISK 8u
#define HOST_HAVE_NET  16u

typedef struct {
    unsigned have;
    int64_t mono_ns; //  when it was taken (rates), monotonic
    //  /proc/stat, first "cpu" line, in clock ticks
    uint64_t user, nice, system, idle, iowait, irq, softirq, steal;
    //  /proc/meminfo, bytes
    uint64_t mem_total, mem_available;
    //  /proc/loadavg
    double load1, load5, load15;
    //  /proc/diskstats, whole disks, bytes
    uint64_t disk_read, disk_write;
    //  /proc/net/dev, every interface but lo, bytes
    uint64_t net_rx, net_tx;
} host_snapshot_t;

typedef struct {
    const char *name; //  e.g. "host.cpu.user" (static text)
    double value;
    const char *unit; //  "percent", "bytes", "bytes/s", "load"
} host_value_t;

#define HOST_VALUES_MAX 16

//  Parsers of each file's text into `snap`; each sets its HOST_HAVE_ bit
//  and returns 0, or returns -1 when the text has not the expected shape.
int host_parse_stat (const char *text, host_snapshot_t *snap);
int host_parse_meminfo (const char *text, host_snapshot_t *snap);
int host_parse_loadavg (const char *text, host_snapshot_t *snap);
int host_parse_diskstats (const char *text, host_snapshot_t *snap);
int host_parse_netdev (const char *text, host_snapshot_t *snap);

//  Reads the five files under `proc_root` (e.g. "/proc"). A file missing or
//  unreadable leaves its bit clear (e.g. no /proc/diskstats in a container).
//  Returns 0 when at least one file was read.
int host_snapshot_read (const char *proc_root, host_snapshot_t *snap);

//  The values from `prev` (NULL on the first sample) to `cur`, at most
//  HOST_VALUES_MAX. Returns how many.
size_t host_values (const host_snapshot_t *prev, const host_snapshot_t *cur, host_value_t *out);

//  ---------------------------------------------------------------------------
//  The collector

typedef struct {
    const char *proc_root; //  default "/proc"
    const char *hostname;  //  tag host= and default source; default gethostname ()
    const char *source;    //  record src; default the hostname
    const char *instance;  //  record col, e.g. "host@web-1"; default "host"
    const char *run;       //  record run id; default "host-<pid>-<start time>"
    int64_t interval_ms;   //  between samples; default 10000
    int64_t samples;       //  samples to take, 0 = until interrupted
} host_config_t;

typedef struct _host_t host_t;

//  Called with each encoded metric record (valid during the call).
typedef int (host_emit_fn) (void *arg, const void *record, size_t size);

host_t *host_new (const host_config_t *config);
void host_destroy (host_t **self_p);

//  Takes one snapshot (at `mono_ns`, monotonic) and gives the values since
//  the previous one (see host_values). Returns how many, or -1 when no
//  /proc file could be read. For glue that packs records itself (e.g. a
//  collectord session); host_sample below packs them here.
int host_sample_values (host_t *self, int64_t mono_ns, host_value_t *out);

//  Packs a value as a metric record's body: name, value and unit.
void host_pack_value (msgpack_packer *pk, const host_value_t *value);

//  The settings in force (defaults applied).
const char *host_hostname (host_t *self);
const char *host_source (host_t *self);
const char *host_proc_root (host_t *self);
int64_t host_interval_ms (host_t *self);

//  Takes one snapshot (at `mono_ns`, stamped `wall_ns` = record ts) and
//  emits one record per value. Returns the number of records, or -1 when
//  no file could be read or `emit` failed.
int host_sample (host_t *self, int64_t mono_ns, int64_t wall_ns, host_emit_fn *emit, void *arg);

//  Samples every interval_ms and sends the records through `client` until
//  `samples` were taken or the process is interrupted (SIGINT/SIGTERM),
//  then flushes. Returns 0, or -1 when ingestd gave no ACK in time or /proc
//  could not be read.
int host_run (host_t *self, omni_intake_client_t *client);

//  Records sent by host_run / emitted by host_sample since creation.
uint64_t host_records (host_t *self);

void host_test (bool verbose);

#endif
