/*  config: one YAML file shared by all daemons, a top-level section each
    (plus `common`, applied to every daemon before its own section). Every key
    can be overridden by the environment, OMNI_<SECTION>_<KEY> (upper case,
    '-' as '_'), then by a command-line flag --key=value or --key value.
    Precedence: default < file common < file section < env < flag.
    An unknown key or a bad value stops start-up with a message naming it.    */
#ifndef OMNI_CONFIG_H
#define OMNI_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

typedef enum {
    CONFIG_STRING,   //  char **target (strdup'ed, freed by omni_config_destroy)
    CONFIG_INT,      //  int64_t *target
    CONFIG_BOOL,     //  bool *target: true/false/yes/no/on/off/1/0
    CONFIG_SIZE,     //  uint64_t *target, bytes: 512B, 64k, 16M, 2G (powers of 1024); 0
    CONFIG_DURATION, //  int64_t *target, milliseconds: 250ms, 5s, 2m, 1h, 1d; 0
    CONFIG_LIST,     //  char ***target, NULL-terminated; YAML sequence or comma-separated text
    CONFIG_ENDPOINT, //  char **target: a ZeroMQ endpoint, tcp://HOST:PORT, ipc://PATH,
                     //  inproc://NAME
    //  char **target: one or more endpoints, each checked as CONFIG_ENDPOINT,
    //  given as a YAML sequence or comma-separated text, kept joined by commas
    //  ("tcp://a:5550,tcp://b:5550": what omni_intake_config_t.endpoint takes)
    CONFIG_ENDPOINTS
} omni_config_type_t;

typedef struct {
    const char *key; //  "journal_dir"
    omni_config_type_t type;
    const char *default_value; //  text, parsed like a flag value; NULL = unset (string NULL)
    const char *help;
    void *target;
} omni_config_option_t;

typedef struct _omni_config_t omni_config_t;

//  The option table must end with a {NULL} entry and outlive the object.
omni_config_t *omni_config_new (const char *section, const omni_config_option_t *options);
void omni_config_destroy (omni_config_t **self_p);

//  Loads defaults, the file (--config FILE, else $OMNI_CONFIG, else none),
//  environment and flags. Arguments that are not flags are kept as
//  positional arguments ("--" ends flags). --help prints the options and
//  returns 1; --version prints the version and returns 2. Returns 0 on success, -1 after
//  printing an error naming the key, file and line where known.
int omni_config_load (omni_config_t *self, int argc, char **argv);

//  --help shows only the first COUNT options (the others are still
//  accepted): collectord knows every mode's keys but shows one mode's.
void omni_config_set_help_count (omni_config_t *self, size_t count);

//  OmniAudit's version, as built.
const char *omni_config_version (void);

size_t omni_config_argc (omni_config_t *self);
const char *omni_config_arg (omni_config_t *self, size_t index);

//  Where each value came from, for the start-up log: "default", "file",
//  "env" or "flag".
const char *omni_config_origin (omni_config_t *self, const char *key);

//  A duration as a CONFIG_DURATION value is written (250ms, 5s, 2m, 1h,
//  7d; 0) into milliseconds, for keys whose values hold durations inside
//  other text (retain: metric=90d). false on anything else.
bool omni_config_parse_duration (const char *text, int64_t *ms);

//  Whether `text` is an endpoint libzmq takes (the check of CONFIG_ENDPOINT):
//  a transport and, for tcp, a host and a numeric port (or * to bind any).
bool omni_config_valid_endpoint (const char *text);

void omni_config_test (bool verbose);

#endif
