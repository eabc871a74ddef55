/*  idcheck: what ingestd's id check costs per record, alone on one core:
    omni_record_check (what intake did before) against omni_record_check followed by
    omni_record_check_id (what it does now), over the records omni-loadgen
    sends, in one process, the two loops taking turns, so that the noise of
    a shared machine hits both alike. Prints one line per kind and round:
    kind,bytes,check_ns,check_and_id_ns.                                   */
#include "common/buf.h"
#include "proto/record.h"
#include "tools/omni-loadgen/synth.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

int
main (int argc, char **argv)
{
    size_t count = argc > 1 ? (size_t) atol (argv[1]) : 200000;
    int rounds = argc > 2 ? atoi (argv[2]) : 5;
    const char *kinds[] = {"metric", "git.commit", "mix"};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        char error[256];
        synth_config_t config = {kinds[k], 1, 200, NULL, NULL, NULL, 0};
        synth_t *synth = synth_new (&config, error, sizeof error);
        assert (synth);
        //  The records packed one after the other, as they come off the wire
        size_t *offsets = malloc ((count + 1) * sizeof *offsets);
        assert (offsets);
        omni_buf_t bytes = {0};
        omni_buf_reserve (&bytes, count * 256);
        for (size_t i = 0; i < count; i++) {
            const void *data;
            size_t size;
            synth_record (synth, i, &data, &size);
            offsets[i] = bytes.size;
            omni_buf_append (&bytes, data, size);
        }
        offsets[count] = bytes.size;
        for (int round = 0; round < rounds; round++) {
            double ns[2];
            for (int with_id = 0; with_id < 2; with_id++) {
                double start = s_now ();
                for (size_t i = 0; i < count; i++) {
                    omni_record_t record;
                    omni_record_reject_t rc =
                        omni_record_check (&record, bytes.data + offsets[i],
                                           offsets[i + 1] - offsets[i], NULL, error, sizeof error);
                    if (with_id && rc == REJECT_NONE)
                        rc = omni_record_check_id (&record, error, sizeof error);
                    assert (rc == REJECT_NONE);
                }
                ns[with_id] = (s_now () - start) * 1e9 / (double) count;
            }
            printf ("%s,%.0f,%.0f,%.0f\n", kinds[k], (double) bytes.size / (double) count, ns[0],
                    ns[1]);
        }
        free (offsets);
        omni_buf_release (&bytes);
        synth_destroy (&synth);
    }
    return 0;
}
