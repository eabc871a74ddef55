/*  curve_roles: the curve_clients directory tree as a list of (key, name,
    role). A directory per role, rather than one file mapping keys to roles,
    keeps what operators already do (drop a public certificate in a
    directory, remove it to revoke), needs no new file format, and lets a
    change at run time be seen the way zauth saw it: by the directory.

    The list is small (one entry per client certificate) and looked up once
    per connection handshake, so it is a plain array searched in order.    */
#include "proto/curve_roles.h"
#include "common/buf.h"
#include "proto/curve.h"
#include "proto/kinds.h"
#include "common/log.h"
#include "testsupport/selftest.h"
#include "common/util.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
    char key[41];  //  Z85 public key
    char *name;    //  path under the clients directory
    char role[80]; //  "collector", "tap", "writer:NAME"
} s_entry_t;

struct _omni_curve_roles_t {
    char *dir;
    s_entry_t *entries;
    size_t size, cap;
    uint64_t signature; //  of the tree as last read
};

static const char *s_socket_names[CURVE_SOCKETS] = {"intake", "delivery", "tap"};

const char *
omni_curve_socket_name (omni_curve_socket_t sock)
{
    return sock < CURVE_SOCKETS ? s_socket_names[sock] : "?";
}

//  FNV-1a over everything that changes when a certificate is added,
//  removed, renamed or rewritten: names, sizes, mtimes, inodes.
static uint64_t
s_mix (uint64_t hash, const void *data, size_t size)
{
    const uint8_t *bytes = data;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ bytes[i]) * 1099511628211ULL;
    return hash;
}

static uint64_t
s_signature (const char *path, int depth, uint64_t hash)
{
    struct stat st;
    if (stat (path, &st))
        return s_mix (hash, "-", 1);
    hash = s_mix (hash, path, strlen (path));
    hash = s_mix (hash, &st.st_mtim, sizeof st.st_mtim);
    hash = s_mix (hash, &st.st_size, sizeof st.st_size);
    hash = s_mix (hash, &st.st_ino, sizeof st.st_ino);
    if (!S_ISDIR (st.st_mode) || depth > 3)
        return hash;
    DIR *dir = opendir (path);
    if (!dir)
        return hash;
    //  readdir's order is stable for an unchanged directory, and any change
    //  moves its mtime anyway
    for (struct dirent *e; (e = readdir (dir));) {
        if (e->d_name[0] == '.')
            continue;
        char child[4096];
        snprintf (child, sizeof child, "%s/%s", path, e->d_name);
        hash = s_signature (child, depth + 1, hash);
    }
    closedir (dir);
    return hash;
}

typedef struct {
    s_entry_t *entries;
    size_t size, cap;
    bool strict;
    char *error;
    size_t error_size;
    const char *root;
} s_load_t;

//  A problem with one file: fatal when strict (at start-up), else logged
//  and skipped so that one bad file does not lock every client out.
static int
s_problem (s_load_t *load, const char *path, const char *why)
{
    if (load->strict) {
        snprintf (load->error, load->error_size, "curve_clients: %s: %s", path, why);
        return -1;
    }
    log_warn ("curve.ignored", "file=%s why=\"%s\"", path, why);
    return 0;
}

static int
s_add (s_load_t *load, const char *path, const char *name, const char *role)
{
    char error[1024];
    zcert_t *cert = omni_curve_cert_load (path, false, error, sizeof error);
    if (!cert) {
        if (load->strict) {
            snprintf (load->error, load->error_size, "curve_clients: %s", error);
            return -1;
        }
        log_warn ("curve.ignored", "file=%s why=\"%s\"", path, error);
        return 0;
    }
    s_entry_t *e = omni_array_push (load->entries, load->size, load->cap);
    snprintf (e->key, sizeof e->key, "%s", zcert_public_txt (cert));
    e->name = strdup (name);
    snprintf (e->role, sizeof e->role, "%s", role);
    zcert_destroy (&cert);
    return 0;
}

typedef int (s_entry_fn) (s_load_t *load, const char *rel, const char *path, const char *name);

//  Calls `fn` for each entry of the directory `rel` under the root but the
//  hidden ones, with its path and name, until one fails.
static int
s_each_entry (s_load_t *load, const char *rel, s_entry_fn *fn)
{
    char path[2048];
    snprintf (path, sizeof path, "%s/%s", load->root, rel);
    DIR *dir = opendir (path);
    if (!dir)
        return s_problem (load, path, strerror (errno));
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir (dir));)
        if (e->d_name[0] != '.') {
            char file[4096];
            snprintf (file, sizeof file, "%s/%s", path, e->d_name);
            rc = fn (load, rel, file, e->d_name);
        }
    closedir (dir);
    return rc;
}

//  A certificate of a role directory: `rel` "collector", "tap" or
//  "writer/<name>", whose role is the same but for writer:<name>.
static int
s_role_entry (s_load_t *load, const char *rel, const char *file, const char *entry)
{
    char name[4096], role[80];
    snprintf (name, sizeof name, "%s/%s", rel, entry);
    if (strncmp (rel, "writer/", 7) == 0)
        snprintf (role, sizeof role, "writer:%.64s", rel + 7);
    else
        snprintf (role, sizeof role, "%s", rel);
    struct stat st;
    if (stat (file, &st) || !S_ISREG (st.st_mode))
        return s_problem (load, file,
                          "not a certificate file (a role directory holds public certificates "
                          "only)");
    if (strlen (entry) > 7 && streq (entry + strlen (entry) - 7, "_secret"))
        return s_problem (load, file,
                          "a secret key has no place on the server: remove it, only the public "
                          "half of a client's certificate goes here");
    return s_add (load, file, name, role);
}

//  A directory of writer/: writer/<name>/ holds the certificates of writer <name>.
static int
s_writer_entry (s_load_t *load, const char *rel, const char *sub, const char *entry)
{
    (void) rel;
    struct stat st;
    if (stat (sub, &st) || !S_ISDIR (st.st_mode))
        return s_problem (load, sub,
                          "a writer's certificate goes in writer/<name>/ (archive, relational, "
                          "document, metrics), the writer it may deliver to");
    if (!omni_kinds_writer_role (entry) || strlen (entry) > 60)
        return s_problem (load, sub,
                          "unknown writer (expected archive, relational, document or metrics)");
    char writer[300];
    snprintf (writer, sizeof writer, "writer/%s", entry);
    return s_each_entry (load, writer, s_role_entry);
}

//  The whole tree into `load`. 0, or -1 (strict only) with load->error.
static int
s_load_tree (s_load_t *load)
{
    DIR *dir = opendir (load->root);
    if (!dir) {
        snprintf (load->error, load->error_size, "cannot read curve_clients directory %s: %s",
                  load->root, strerror (errno));
        return -1;
    }
    int rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir (dir));) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf (path, sizeof path, "%s/%s", load->root, e->d_name);
        struct stat st;
        bool is_dir = stat (path, &st) == 0 && S_ISDIR (st.st_mode);
        if (is_dir && streq (e->d_name, "collector"))
            rc = s_each_entry (load, "collector", s_role_entry);
        else if (is_dir && streq (e->d_name, "tap"))
            rc = s_each_entry (load, "tap", s_role_entry);
        else if (is_dir && streq (e->d_name, "writer"))
            rc = s_each_entry (load, "writer", s_writer_entry);
        else if (is_dir)
            rc = s_problem (load, path,
                            "unknown role directory (expected collector, tap or writer/<name>)");
        else
            //  Before roles, every client certificate sat here and could
            //  use every socket: refusing to guess its role is what closes
            //  that hole, and the message says how to migrate
            rc = s_problem (
                load, path,
                "a certificate directly in curve_clients has no role; move it to collector/ "
                "(intake), tap/ or writer/<name>/ (delivery as that writer) under curve_clients "
                "(docs/operations.md, \"Security (CURVE)\")");
    }
    closedir (dir);
    return rc;
}

static void
s_free_entries (s_entry_t *entries, size_t size)
{
    for (size_t i = 0; i < size; i++)
        free (entries[i].name);
    free (entries);
}

omni_curve_roles_t *
omni_curve_roles_new (const char *dir, char *error, size_t error_size)
{
    s_load_t load = {NULL, 0, 0, true, error, error_size, dir};
    uint64_t signature = s_signature (dir, 0, 14695981039346656037ULL);
    if (s_load_tree (&load)) {
        s_free_entries (load.entries, load.size);
        return NULL;
    }
    omni_curve_roles_t *self = calloc (1, sizeof *self);
    assert (self);
    self->dir = strdup (dir);
    self->entries = load.entries;
    self->size = load.size;
    self->cap = load.cap;
    self->signature = signature;
    return self;
}

void
omni_curve_roles_destroy (omni_curve_roles_t **self_p)
{
    omni_curve_roles_t *self = *self_p;
    if (!self)
        return;
    s_free_entries (self->entries, self->size);
    free (self->dir);
    free (self);
    *self_p = NULL;
}

bool
omni_curve_roles_refresh (omni_curve_roles_t *self)
{
    uint64_t signature = s_signature (self->dir, 0, 14695981039346656037ULL);
    if (signature == self->signature)
        return false;
    char error[1024] = "";
    s_load_t load = {NULL, 0, 0, false, error, sizeof error, self->dir};
    if (s_load_tree (&load)) {
        //  The directory itself is gone: keep what we had rather than lock
        //  every client out because of a mount hiccup
        log_warn ("curve.reload_failed", "error=\"%s\"", error);
        s_free_entries (load.entries, load.size);
        return false;
    }
    s_free_entries (self->entries, self->size);
    self->entries = load.entries;
    self->size = load.size;
    self->cap = load.cap;
    self->signature = signature;
    log_info ("curve.clients_reloaded", "dir=%s certificates=%zu", self->dir, self->size);
    return true;
}

static bool
s_role_fits (const char *role, omni_curve_socket_t sock)
{
    switch (sock) {
    case CURVE_INTAKE: return streq (role, "collector");
    case CURVE_TAP: return streq (role, "tap");
    case CURVE_DELIVERY: return strncmp (role, "writer:", 7) == 0;
    default: return false;
    }
}

//  Appends `item` to a comma-separated list, when it fits whole.
static void
s_list_add (char *list, size_t size, const char *item)
{
    size_t used = strlen (list);
    if (used + strlen (item) + 2 > size)
        return;
    snprintf (list + used, size - used, "%s%s", used ? "," : "", item);
}

const char *
omni_curve_roles_admit (omni_curve_roles_t *self, const char *key, omni_curve_socket_t sock,
                        char *writers, size_t writers_size)
{
    const char *name = NULL;
    if (writers && writers_size)
        *writers = 0;
    for (size_t i = 0; i < self->size; i++) {
        s_entry_t *e = &self->entries[i];
        if (!streq (e->key, key) || !s_role_fits (e->role, sock))
            continue;
        if (!name)
            name = e->name;
        if (sock == CURVE_DELIVERY && writers)
            s_list_add (writers, writers_size, e->role + 7);
    }
    return name;
}

const char *
omni_curve_roles_describe (omni_curve_roles_t *self, const char *key, char *roles,
                           size_t roles_size)
{
    const char *name = NULL;
    *roles = 0;
    for (size_t i = 0; i < self->size; i++) {
        if (!streq (self->entries[i].key, key))
            continue;
        if (!name)
            name = self->entries[i].name;
        s_list_add (roles, roles_size, self->entries[i].role);
    }
    return name;
}

size_t
omni_curve_roles_size (omni_curve_roles_t *self)
{
    return self->size;
}

bool
omni_curve_roles_writer_listed (const char *writers, const char *name)
{
    size_t len = strlen (name);
    for (const char *at = writers; at && *at;) {
        const char *end = strchr (at, ',');
        size_t item = end ? (size_t) (end - at) : strlen (at);
        if (item == len && strncmp (at, name, len) == 0)
            return true;
        at = end ? end + 1 : NULL;
    }
    return false;
}

//  The directory of `role` under the clients directory; false when unknown.
static bool
s_role_dir (const char *role, char *rel, size_t size)
{
    if (streq (role, "collector") || streq (role, "tap"))
        snprintf (rel, size, "%s", role);
    else if (strncmp (role, "writer:", 7) == 0 && omni_kinds_writer_role (role + 7) &&
             strlen (role) < 64)
        snprintf (rel, size, "writer/%s", role + 7);
    else
        return false;
    return true;
}

bool
omni_curve_roles_known (const char *role)
{
    char rel[128];
    return s_role_dir (role, rel, sizeof rel);
}

int
omni_curve_roles_allow (const char *clients_dir, const char *role, const char *cert_path,
                        char *path, size_t path_size, char *error, size_t error_size)
{
    char rel[128];
    if (!s_role_dir (role, rel, sizeof rel)) {
        snprintf (error, error_size,
                  "unknown role \"%s\" (expected collector, tap or writer:NAME with NAME archive, "
                  "relational, document or metrics)",
                  role);
        return -1;
    }
    zcert_t *cert = omni_curve_cert_load (cert_path, false, error, error_size);
    if (!cert)
        return -1;
    const char *base = strrchr (cert_path, '/');
    base = base ? base + 1 : cert_path;
    char dir[4096];
    snprintf (dir, sizeof dir, "%s/%s", clients_dir, rel);
    snprintf (path, path_size, "%s/%s", dir, base);
    struct stat st;
    int rc = -1;
    if (omni_util_mkdirs (dir))
        snprintf (error, error_size, "cannot create %s: %s", dir, strerror (errno));
    else if (stat (path, &st) == 0)
        snprintf (error, error_size, "%s exists: not overwritten", path);
    else if (zcert_save_public (cert, path))
        snprintf (error, error_size, "cannot write %s: %s", path, strerror (errno));
    else
        rc = 0;
    zcert_destroy (&cert);
    return rc;
}

//  --------------------------------------------------------------------------
//  Self-test

static void
s_public (const char *from, const char *dir, const char *to)
{
    zcert_t *cert = zcert_load (from);
    assert (cert);
    char path[1024];
    snprintf (path, sizeof path, "%s/%s", dir, to);
    int rc = zcert_save_public (cert, path);
    assert (rc == 0);
    zcert_destroy (&cert);
}

void
omni_curve_roles_test (bool verbose)
{
    if (verbose)
        printf (" * curve_roles: ");
    char *tmp = selftest_tmpdir ("curve_roles");
    char keys[512], clients[512], collector[600], writer[600], both[600], path[1024];
    char error[1024], writers[256], roles[256];
    snprintf (keys, sizeof keys, "%s/keys", tmp);
    snprintf (clients, sizeof clients, "%s/clients", tmp);
    assert (omni_util_mkdirs (keys) == 0 && omni_util_mkdirs (clients) == 0);
    snprintf (collector, sizeof collector, "%s/collector-git", keys);
    snprintf (writer, sizeof writer, "%s/archiverd", keys);
    snprintf (both, sizeof both, "%s/both", keys);
    assert (omni_curve_keygen (collector, error, sizeof error) == 0);
    assert (omni_curve_keygen (writer, error, sizeof error) == 0);
    assert (omni_curve_keygen (both, error, sizeof error) == 0);
    zcert_t *cert = zcert_load (collector);
    char collector_key[41], writer_key[41], both_key[41];
    snprintf (collector_key, sizeof collector_key, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    cert = zcert_load (writer);
    snprintf (writer_key, sizeof writer_key, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);
    cert = zcert_load (both);
    snprintf (both_key, sizeof both_key, "%s", zcert_public_txt (cert));
    zcert_destroy (&cert);

    //  An empty directory is valid: nobody gets in
    omni_curve_roles_t *roles_map = omni_curve_roles_new (clients, error, sizeof error);
    assert (roles_map && omni_curve_roles_size (roles_map) == 0);
    assert (!omni_curve_roles_admit (roles_map, collector_key, CURVE_INTAKE, NULL, 0));
    omni_curve_roles_destroy (&roles_map);
    assert (!roles_map);

    //  omnictl keygen --role puts public halves where their role belongs
    assert (omni_curve_roles_allow (clients, "collector", collector, path, sizeof path, error,
                                    sizeof error) == 0);
    assert (strstr (path, "/collector/collector-git"));
    assert (omni_curve_roles_allow (clients, "collector", collector, path, sizeof path, error,
                                    sizeof error) == -1);
    assert (strstr (error, "exists"));
    assert (omni_curve_roles_allow (clients, "writer:archive", writer, path, sizeof path, error,
                                    sizeof error) == 0);
    assert (strstr (path, "/writer/archive/archiverd"));
    assert (omni_curve_roles_allow (clients, "writer:bogus", writer, path, sizeof path, error,
                                    sizeof error) == -1);
    assert (strstr (error, "unknown role") && strstr (error, "writer:bogus"));
    assert (omni_curve_roles_known ("writer:metrics") && omni_curve_roles_known ("tap"));
    assert (!omni_curve_roles_known ("writer:") && !omni_curve_roles_known ("writer"));
    assert (omni_curve_roles_allow (clients, "admin", writer, path, sizeof path, error,
                                    sizeof error) == -1);
    //  A key may hold several roles
    assert (omni_curve_roles_allow (clients, "tap", both, path, sizeof path, error, sizeof error) ==
            0);
    assert (omni_curve_roles_allow (clients, "writer:relational", both, path, sizeof path, error,
                                    sizeof error) == 0);
    assert (omni_curve_roles_allow (clients, "writer:metrics", both, path, sizeof path, error,
                                    sizeof error) == 0);
    struct stat st;
    snprintf (path, sizeof path, "%s/tap/both_secret", clients);
    assert (stat (path, &st) != 0);

    roles_map = omni_curve_roles_new (clients, error, sizeof error);
    assert (roles_map);
    assert (omni_curve_roles_size (roles_map) == 5);
    //  Each key on its own socket only
    const char *name = omni_curve_roles_admit (roles_map, collector_key, CURVE_INTAKE, NULL, 0);
    assert (name && streq (name, "collector/collector-git"));
    assert (!omni_curve_roles_admit (roles_map, collector_key, CURVE_DELIVERY, writers,
                                     sizeof writers));
    assert (!omni_curve_roles_admit (roles_map, collector_key, CURVE_TAP, NULL, 0));
    name = omni_curve_roles_admit (roles_map, writer_key, CURVE_DELIVERY, writers, sizeof writers);
    assert (name && streq (name, "writer/archive/archiverd") && streq (writers, "archive"));
    assert (!omni_curve_roles_admit (roles_map, writer_key, CURVE_INTAKE, NULL, 0));
    assert (!omni_curve_roles_admit (roles_map, writer_key, CURVE_TAP, NULL, 0));
    assert (omni_curve_roles_admit (roles_map, both_key, CURVE_TAP, NULL, 0));
    assert (omni_curve_roles_admit (roles_map, both_key, CURVE_DELIVERY, writers, sizeof writers));
    assert (omni_curve_roles_writer_listed (writers, "relational"));
    assert (omni_curve_roles_writer_listed (writers, "metrics"));
    assert (!omni_curve_roles_writer_listed (writers, "archive"));
    assert (!omni_curve_roles_writer_listed (writers, "relation"));
    assert (!omni_curve_roles_writer_listed ("", "archive"));
    assert (!omni_curve_roles_admit (roles_map, both_key, CURVE_INTAKE, NULL, 0));
    name = omni_curve_roles_describe (roles_map, collector_key, roles, sizeof roles);
    assert (name && streq (roles, "collector"));
    assert (!omni_curve_roles_describe (roles_map, "0000000000000000000000000000000000000000",
                                        roles, sizeof roles));
    assert (streq (omni_curve_socket_name (CURVE_TAP), "tap"));

    //  Unchanged: not read again. Removing a key takes effect on refresh
    assert (!omni_curve_roles_refresh (roles_map));
    snprintf (path, sizeof path, "%s/writer/archive/archiverd", clients);
    assert (unlink (path) == 0);
    assert (omni_curve_roles_refresh (roles_map));
    assert (
        !omni_curve_roles_admit (roles_map, writer_key, CURVE_DELIVERY, writers, sizeof writers));
    //  At run time a bad file is skipped, the rest still applies
    snprintf (path, sizeof path, "%s/tap/garbage", clients);
    FILE *file = fopen (path, "w");
    fputs ("not a certificate\n", file);
    fclose (file);
    s_public (writer, clients, "flat");
    assert (omni_curve_roles_refresh (roles_map));
    assert (omni_curve_roles_size (roles_map) == 4);
    assert (omni_curve_roles_admit (roles_map, collector_key, CURVE_INTAKE, NULL, 0));
    //  The flat key got no role
    assert (!omni_curve_roles_describe (roles_map, writer_key, roles, sizeof roles));
    omni_curve_roles_destroy (&roles_map);

    //  At start-up the same files are errors naming them
    assert (!omni_curve_roles_new (clients, error, sizeof error));
    assert (strstr (error, "garbage") || strstr (error, "flat"));
    snprintf (path, sizeof path, "%s/tap/garbage", clients);
    unlink (path);
    assert (!omni_curve_roles_new (clients, error, sizeof error));
    assert (strstr (error, "/flat") && strstr (error, "has no role") &&
            strstr (error, "collector/"));
    snprintf (path, sizeof path, "%s/flat", clients);
    unlink (path);
    snprintf (path, sizeof path, "%s/writers", clients);
    assert (omni_util_mkdirs (path) == 0);
    assert (!omni_curve_roles_new (clients, error, sizeof error));
    assert (strstr (error, "/writers") && strstr (error, "unknown role directory"));
    rmdir (path);
    snprintf (path, sizeof path, "%s/writer/archiv", clients);
    assert (omni_util_mkdirs (path) == 0);
    assert (!omni_curve_roles_new (clients, error, sizeof error));
    assert (strstr (error, "/writer/archiv") && strstr (error, "unknown writer"));
    rmdir (path);
    s_public (writer, clients, "writer/loose");
    assert (!omni_curve_roles_new (clients, error, sizeof error));
    assert (strstr (error, "writer/loose") && strstr (error, "writer/<name>/"));
    snprintf (path, sizeof path, "%s/writer/loose", clients);
    unlink (path);
    //  A secret key copied by mistake is refused, not served
    snprintf (path, sizeof path, "%s_secret", both);
    char secret_copy[1024];
    snprintf (secret_copy, sizeof secret_copy, "%s/tap/both_secret", clients);
    zchunk_t *chunk = zchunk_slurp (path, 0);
    file = fopen (secret_copy, "w");
    fwrite (zchunk_data (chunk), 1, zchunk_size (chunk), file);
    fclose (file);
    zchunk_destroy (&chunk);
    assert (!omni_curve_roles_new (clients, error, sizeof error));
    assert (strstr (error, "both_secret") && strstr (error, "secret"));
    unlink (secret_copy);
    roles_map = omni_curve_roles_new (clients, error, sizeof error);
    assert (roles_map && omni_curve_roles_size (roles_map) == 4);
    omni_curve_roles_destroy (&roles_map);
    assert (!omni_curve_roles_new ("/nonexistent-omni-dir", error, sizeof error));
    assert (strstr (error, "/nonexistent-omni-dir"));

    selftest_rmtree (tmp);
    free (tmp);
    if (verbose)
        printf ("OK\n");
}
