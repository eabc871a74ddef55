/*  kinds: the one table of record kinds. For each kind: its body fields and
    their types (what ingestd validates), its natural key (what its id is a
    hash of), the document collection it belongs to, and which writers
    receive it. Every process uses this table; nothing else lists kinds.      */
#ifndef OMNI_KINDS_H
#define OMNI_KINDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  The writers. A writer names itself with one of these in its HELLO.
typedef enum {
    WRITER_ARCHIVE = 1 << 0,    //  archiverd
    WRITER_RELATIONAL = 1 << 1, //  relationald
    WRITER_DOCUMENT = 1 << 2,   //  documentd
    WRITER_METRICS = 1 << 3,    //  metricsd
} omni_writer_role_t;
#define WRITER_ALL (WRITER_ARCHIVE | WRITER_RELATIONAL | WRITER_DOCUMENT | WRITER_METRICS)
#define WRITER_MAX 4

typedef enum {
    FIELD_STR, //  UTF-8 string
    FIELD_INT, //  signed or unsigned integer
    FIELD_NUM, //  integer or float (finite)
    FIELD_BOOL,
    FIELD_BIN,
    FIELD_ARRAY,
    FIELD_MAP,
    FIELD_ANY
} omni_field_type_t;

typedef struct omni_field_spec_s omni_field_spec_t;
struct omni_field_spec_s {
    const char *name;
    omni_field_type_t type;
    bool required;
    const char *doc; //  meaning and unit
    //  FIELD_ARRAY: what every element is (its name unused, "required"
    //  false lets an element be nil); NULL: any element
    const omni_field_spec_t *element;
    //  FIELD_MAP (a field or an array's element): the members it must or
    //  may have and their types, ending with {NULL}; other members pass.
    //  NULL: any members. What ingestd checks here, writers need not check.
    const omni_field_spec_t *members;
};

//  Natural key parts: a body field name, or "@ts" / "@tags" for the
//  record's event time and tags. "?field" is a part added to a kind later:
//  packed only when the body has it, so records without it keep the ids
//  they had before (ci.test's occurrence).
#define KIND_KEY_MAX 5

typedef struct {
    const char *name;       //  "git.commit"
    const char *collection; //  document collection, "git_commits"
    unsigned writers;       //  omni_writer_role_t bits
    bool mutable_state;     //  a later record with the same id replaces the earlier
    const char *key[KIND_KEY_MAX];
    const omni_field_spec_t *fields; //  ends with {NULL}
    const char *doc;
} omni_kind_spec_t;

//  The kinds by number, in the table's order, for the processes that keep
//  something of their own per kind (relationald: the table each goes to).
//  Such a process switches over these without a default, so that a kind
//  added here is one the compiler asks each of them to place, rather than
//  a name of theirs that no longer matches, or a kind they miss unseen.
//  The table says what a kind is and where it is routed; what a writer
//  does with it (its SQL, its collections) stays with the writer.
typedef enum {
    KIND_RUN_START,
    KIND_RUN_END,
    KIND_GIT_COMMIT,
    KIND_GIT_BRANCH,
    KIND_GIT_TAG,
    KIND_GIT_UNREACHABLE,
    KIND_CI_BUILD,
    KIND_CI_TEST,
    KIND_CODE_STATS,
    KIND_ANALYSIS_SUMMARY,
    KIND_METRIC,
    KIND_CUSTOM //  every "x.*" kind (omni_kinds_custom); the declared ones come before
} omni_kind_id_t;

//  The number of a kind's spec (from omni_kinds_lookup, omni_kinds_at or
//  omni_kinds_custom).
omni_kind_id_t omni_kinds_id (const omni_kind_spec_t *spec);

//  The spec of a kind, or NULL. Kinds named "x.<anything>" are custom kinds
//  (collectord exec): any body, keyed on the whole body, to archive and
//  document writers; they share one spec returned for all of them.
const omni_kind_spec_t *omni_kinds_lookup (const char *name, size_t len);

//  Bit n set when the kind's field n is part of its natural key (fields
//  past the 64th are never key parts): what omni_record_check notes while it
//  walks a body, so that ids are computed without a second pass.
uint64_t omni_kinds_key_mask (const omni_kind_spec_t *spec);
//  The body field a key part names: "?field" (optional: absent adds
//  nothing to the id) names "field".
const char *omni_kinds_key_field (const char *part);

//  Iterates the declared kinds (not the custom one): index 0.. until NULL;
//  the index is the kind's omni_kind_id_t.
const omni_kind_spec_t *omni_kinds_at (size_t index);

//  The custom-kinds spec.
const omni_kind_spec_t *omni_kinds_custom (void);

//  Writer role from its name ("archive", "relational", "document",
//  "metrics"); 0 if unknown.
unsigned omni_kinds_writer_role (const char *name);
const char *omni_kinds_writer_name (unsigned role);

const char *omni_field_type_name (omni_field_type_t type);

void omni_kinds_test (bool verbose);

#endif
