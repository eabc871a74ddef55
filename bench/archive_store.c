/*  archive_store: archiverd's store alone (archive_write: dedup lookups,
    JSON, pwrite, fsync, LMDB commit, merges of the recent ids), without
    ZeroMQ or ingestd, over an archive that grows to --records ids. Built
    and run by bench/archive_store.py; prints one line per window with the
    rate, the ids in the tree and in memory, and the process's RSS, so that
    what the id set costs as the archive grows can be read off. LOG_LEVEL=
    debug prints each batch's phases and each merge on stderr.              */
#include "archiverd/archive.h"
#include "common/log.h"
#include "proto/record.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
s_now (void)
{
    struct timespec t;
    clock_gettime (CLOCK_MONOTONIC, &t);
    return (double) t.tv_sec + (double) t.tv_nsec / 1e9;
}

static long
s_rss_mib (void)
{
    FILE *f = fopen ("/proc/self/status", "r");
    char line[256];
    long kib = 0;
    while (f && fgets (line, sizeof line, f))
        if (strncmp (line, "VmRSS:", 6) == 0)
            kib = atol (line + 6);
    if (f)
        fclose (f);
    return kib / 1024;
}

int
main (int argc, char **argv)
{
    if (argc < 4) {
        fprintf (stderr, "usage: archive_store DIR RECORDS BATCH [WINDOW]\n");
        return 2;
    }
    const char *dir = argv[1];
    size_t total = strtoull (argv[2], NULL, 10), batch = strtoull (argv[3], NULL, 10);
    size_t window = argc > 4 ? strtoull (argv[4], NULL, 10) : 500000;
    omni_log_init ("archive-store", getenv ("LOG_LEVEL") ? getenv ("LOG_LEVEL") : "warn", "kv");
    char error[512];
    archive_t *archive = archive_new (dir, NULL, error, sizeof error);
    if (!archive) {
        fprintf (stderr, "archive: %s\n", error);
        return 1;
    }
    omni_record_encoder_t *encoder = omni_record_encoder_new ();
    omni_record_t *records = calloc (batch, sizeof *records);
    void **data = calloc (batch, sizeof *data);
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1 << 20);
    const int64_t day = 1700000000000000000LL;
    uint64_t seed = 88172645463325252ULL;
    double store_seconds = 0, window_seconds = 0;
    size_t window_done = 0;
    printf ("records,window_records_per_s,tree_ids,ids_in_memory,rss_mib\n");
    for (size_t done = 0; done < total;) {
        size_t n = total - done < batch ? total - done : batch;
        msgpack_zone_clear (&zone);
        for (size_t i = 0; i < n; i++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            omni_record_encoder_begin (encoder, "metric", "bench-host", "archive-store", "run-1",
                                       day + (int64_t) (done + i));
            msgpack_packer *pk = omni_record_encoder_body (encoder);
            msgpack_pack_map (pk, 3);
            omni_record_pack_str (pk, "name");
            omni_record_pack_str (pk, "host.cpu.user");
            omni_record_pack_str (pk, "value");
            msgpack_pack_double (pk, (double) (seed >> 11) / 9007199254740992.0 * 100.0);
            omni_record_pack_str (pk, "unit");
            omni_record_pack_str (pk, "percent");
            omni_record_encoder_tag (encoder, "host", "bench-host.example.org");
            omni_record_encoder_tag (encoder, "region", "eu-west-1");
            const void *bytes;
            size_t size;
            int rc = omni_record_encoder_end (encoder, &bytes, &size, error, sizeof error);
            assert (rc == 0);
            free (data[i]);
            data[i] = malloc (size);
            memcpy (data[i], bytes, size);
            rc = omni_record_decode (&records[i], &zone, data[i], size, NULL, error, sizeof error);
            assert (rc == REJECT_NONE);
        }
        double t0 = s_now ();
        if (archive_write (archive, records, n, NULL, error, sizeof error)) {
            fprintf (stderr, "archive_write: %s\n", error);
            return 1;
        }
        window_seconds += s_now () - t0;
        done += n;
        window_done += n;
        if (window_done >= window || done == total) {
            uint64_t recent = archive_recent_id_count (archive);
            printf ("%zu,%.0f,%" PRIu64 ",%" PRIu64 ",%ld\n", done,
                    (double) window_done / window_seconds, archive_id_count (archive) - recent,
                    recent, s_rss_mib ());
            fflush (stdout);
            store_seconds += window_seconds;
            window_seconds = 0;
            window_done = 0;
        }
    }
    printf ("# %zu records stored in %.2f s (archive_write only) = %.0f records/s\n", total,
            store_seconds, (double) total / store_seconds);
    for (size_t i = 0; i < batch; i++)
        free (data[i]);
    free (data);
    free (records);
    msgpack_zone_destroy (&zone);
    omni_record_encoder_destroy (&encoder);
    archive_destroy (&archive);
    return 0;
}
