/*  documentd_plain: the baseline of bench/documentd.py. Reads records
    (msgpack, each preceded by its length as u32 big-endian) from a file,
    turns them into the documents documentd would write (docmap, untimed),
    then times the C driver's own unordered bulk inserts of those documents,
    `batch` per bulk, into an empty collection with the indexes documentd
    makes. Prints "documents=N seconds=S rate=R".

    usage: documentd_plain URI DATABASE COLLECTION FILE BATCH WRITE_CONCERN       */
#include "common/buf.h"
#include "documentd/docmap.h"

#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

int
main (int argc, char **argv)
{
    if (argc != 7) {
        fprintf (stderr, "usage: %s URI DATABASE COLLECTION FILE BATCH WRITE_CONCERN\n", argv[0]);
        return 2;
    }
    size_t batch = (size_t) atol (argv[5]);
    FILE *in = fopen (argv[4], "rb");
    if (!in || batch == 0) {
        perror (argv[4]);
        return 2;
    }
    //  All documents are made before the clock starts
    size_t count = 0, capacity = 0;
    bson_t **docs = NULL;
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1 << 20);
    uint8_t head[4];
    while (fread (head, 1, 4, in) == 4) {
        size_t size =
            (size_t) head[0] << 24 | (size_t) head[1] << 16 | (size_t) head[2] << 8 | head[3];
        char *data = malloc (size);
        if (fread (data, 1, size, in) != size)
            return 2;
        omni_record_t record;
        char detail[256];
        if (omni_record_decode (&record, &zone, data, size, NULL, detail, sizeof detail) !=
            REJECT_NONE) {
            fprintf (stderr, "bad record: %s\n", detail);
            return 2;
        }
        bson_t *doc = bson_new ();
        *omni_array_push (docs, count, capacity) = doc;
        docmap_record (doc, &record);
        msgpack_zone_clear (&zone);
        free (data);
    }
    fclose (in);

    mongoc_init ();
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error (argv[1], &error);
    if (!uri) {
        fprintf (stderr, "uri: %s\n", error.message);
        return 2;
    }
    mongoc_client_t *client = mongoc_client_new_from_uri (uri);
    mongoc_client_set_error_api (client, MONGOC_ERROR_API_VERSION_2);
    mongoc_collection_t *coll = mongoc_client_get_collection (client, argv[2], argv[3]);
    mongoc_database_t *db = mongoc_client_get_database (client, argv[2]);
    bson_t *cmd = BCON_NEW ("createIndexes", BCON_UTF8 (argv[3]), "indexes", "[", "{", "key", "{",
                            "src", BCON_INT32 (1), "}", "name", "src_1", "}", "{", "key", "{",
                            "run", BCON_INT32 (1), "}", "name", "run_1", "}", "{", "key", "{", "ts",
                            BCON_INT32 (1), "}", "name", "ts_1", "}", "]");
    if (!mongoc_database_write_command_with_opts (db, cmd, NULL, NULL, &error)) {
        fprintf (stderr, "createIndexes: %s\n", error.message);
        return 1;
    }
    bson_destroy (cmd);
    mongoc_write_concern_t *wc = mongoc_write_concern_new ();
    if (strcmp (argv[6], "majority") == 0)
        mongoc_write_concern_set_wmajority (wc, 10000);
    else
        mongoc_write_concern_set_w (wc, atoi (argv[6]));
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL (&opts, "ordered", false);
    mongoc_write_concern_append (wc, &opts);

    double start = s_now ();
    for (size_t i = 0; i < count; i += batch) {
        mongoc_bulk_operation_t *bulk =
            mongoc_collection_create_bulk_operation_with_opts (coll, &opts);
        for (size_t j = i; j < count && j < i + batch; j++)
            mongoc_bulk_operation_insert_with_opts (bulk, docs[j], NULL, NULL);
        bson_t reply;
        if (!mongoc_bulk_operation_execute (bulk, &reply, &error)) {
            fprintf (stderr, "bulk: %s\n", error.message);
            return 1;
        }
        bson_destroy (&reply);
        mongoc_bulk_operation_destroy (bulk);
    }
    double seconds = s_now () - start;
    printf ("documents=%zu seconds=%.3f rate=%.0f\n", count, seconds, (double) count / seconds);

    for (size_t i = 0; i < count; i++)
        bson_destroy (docs[i]);
    free (docs);
    bson_destroy (&opts);
    mongoc_write_concern_destroy (wc);
    mongoc_database_destroy (db);
    mongoc_collection_destroy (coll);
    mongoc_client_destroy (client);
    mongoc_uri_destroy (uri);
    msgpack_zone_destroy (&zone);
    mongoc_cleanup ();
    return 0;
}
