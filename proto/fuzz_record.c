/*  libFuzzer target for the record decoder: whatever the bytes, decoding
    must return a reason or a record, never crash, hang or over-allocate,
    and an accepted record must convert to JSON and back to its id.          */
#include "mpjson.h"
#include "record.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    msgpack_zone zone;
    msgpack_zone_init (&zone, 1024);
    record_t record;
    char detail[256];
    if (record_decode (&record, &zone, data, size, NULL, detail, sizeof detail) == REJECT_NONE) {
        mpjson_buf_t json = {0};
        mpjson_record (&json, &record);
        assert (json.size > 0 && json.data[0] == '{' && json.data[json.size - 1] == '}');
        mpjson_buf_free (&json);
        uint8_t id[RECORD_ID_SIZE];
        record_compute_id (&record, id);
    }
    else
        assert (strlen (detail) > 0);
    msgpack_zone_destroy (&zone);
    return 0;
}
