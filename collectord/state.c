/*  state: a collector's per-source memory between runs.                     */
#include "collectord/state.h"
#include "common/buf.h"
#include "testsupport/selftest.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct _state_t {
    char *dir; //  <state_dir>/<collector>
    char *path;
    char *source;
    char **entries;
    size_t size, cap;
};

//  The file name of a source's state, without its extension.
static void
s_source_hex (const char *source, char hex[33])
{
    uint8_t hash[SHA256_DIGEST_LENGTH];
    SHA256 ((const uint8_t *) source, strlen (source), hash);
    omni_util_hex (hash, 16, hex);
}

state_t *
state_new (const char *state_dir, const char *collector, const char *source)
{
    state_t *self = calloc (1, sizeof *self);
    assert (self);
    char hex[33];
    s_source_hex (source, hex);
    self->source = strdup (source);
    if (asprintf (&self->dir, "%s/%s", state_dir, collector) < 0 ||
        asprintf (&self->path, "%s/%s.state", self->dir, hex) < 0)
        assert (false);
    return self;
}

void
state_destroy (state_t **self_p)
{
    state_t *self = *self_p;
    if (!self)
        return;
    state_clear (self);
    free (self->entries);
    free (self->dir);
    free (self->path);
    free (self->source);
    free (self);
    *self_p = NULL;
}

char *
state_default_dir (void)
{
    char *dir = NULL;
    const char *xdg = getenv ("XDG_STATE_HOME");
    const char *home = getenv ("HOME");
    if (xdg && *xdg == '/')
        assert (asprintf (&dir, "%s/omniaudit", xdg) > 0);
    else
        assert (asprintf (&dir, "%s/.local/state/omniaudit", home && *home ? home : ".") > 0);
    return dir;
}

static bool s_full = false;

void
state_set_full (bool full)
{
    s_full = full;
}

int
state_load (state_t *self, char *error, size_t error_size)
{
    state_clear (self);
    if (s_full)
        return 0;
    FILE *file = fopen (self->path, "r");
    if (!file) {
        if (errno == ENOENT)
            return 0;
        snprintf (error, error_size, "cannot read %s: %s", self->path, strerror (errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline (&line, &cap, file)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (len > 0 && line[0] != '#')
            state_add (self, line);
    }
    bool failed = ferror (file);
    free (line);
    fclose (file);
    if (failed) {
        snprintf (error, error_size, "cannot read %s", self->path);
        return -1;
    }
    return 0;
}

size_t
state_size (state_t *self)
{
    return self->size;
}

const char *
state_entry (state_t *self, size_t index)
{
    return index < self->size ? self->entries[index] : NULL;
}

void
state_clear (state_t *self)
{
    for (size_t i = 0; i < self->size; i++)
        free (self->entries[i]);
    self->size = 0;
}

void
state_add (state_t *self, const char *entry)
{
    char *copy = strdup (entry);
    assert (copy);
    for (char *c = copy; *c; c++)
        if (*c == '\n' || *c == '\r')
            *c = ' ';
    *omni_array_push (self->entries, self->size, self->cap) = copy;
}

int
state_save (state_t *self, char *error, size_t error_size)
{
    if (omni_util_mkdirs (self->dir)) {
        snprintf (error, error_size, "cannot create %s: %s", self->dir, strerror (errno));
        return -1;
    }
    char *temp;
    assert (asprintf (&temp, "%s.tmp.%d", self->path, (int) getpid ()) > 0);
    int fd = open (temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FILE *file = fd >= 0 ? fdopen (fd, "w") : NULL;
    if (!file) {
        snprintf (error, error_size, "cannot write %s: %s", temp, strerror (errno));
        if (fd >= 0)
            close (fd);
        free (temp);
        return -1;
    }
    fprintf (file, "# omniaudit collector state, source: ");
    for (const char *c = self->source; *c; c++)
        fputc (*c == '\n' || *c == '\r' ? ' ' : *c, file);
    fputc ('\n', file);
    for (size_t i = 0; i < self->size; i++)
        fprintf (file, "%s\n", self->entries[i]);
    bool failed = fflush (file) != 0 || fsync (fd) != 0;
    int saved = errno;
    failed |= fclose (file) != 0;
    if (!failed && rename (temp, self->path) != 0) {
        failed = true;
        saved = errno;
    }
    if (failed) {
        snprintf (error, error_size, "cannot write %s: %s", self->path, strerror (saved));
        unlink (temp);
        free (temp);
        return -1;
    }
    free (temp);
    omni_util_fsync_dir (self->dir);
    return 0;
}

const char *
state_path (state_t *self)
{
    return self->path;
}

omni_dirlock_t *
state_lock (const char *state_dir, const char *collector, const char *source, char *error,
            size_t error_size)
{
    //  Apart from the states: <collector>/ holds a state only once a run
    //  saved one, and a lock there would say otherwise.
    char hex[33], *dir, name[128];
    s_source_hex (source, hex);
    snprintf (name, sizeof name, "%.64s-%s.lock", collector, hex);
    if (asprintf (&dir, "%s/.locks", state_dir) < 0)
        assert (false);
    char reason[1024];
    omni_dirlock_t *lock = omni_dirlock_new (dir, name, reason, sizeof reason);
    if (!lock)
        snprintf (error, error_size, "state of source \"%s\": %s", source, reason);
    free (dir);
    return lock;
}

void
state_test (bool verbose)
{
    (void) verbose;
    char *dir = selftest_tmpdir ("state");
    char error[256];
    state_t *state = state_new (dir, "git", "/srv/repo.git");
    assert (strstr (state_path (state), "/git/") && strstr (state_path (state), ".state"));
    assert (state_load (state, error, sizeof error) == 0); //  no file: empty
    assert (state_size (state) == 0);
    state_add (state, "tip abc");
    state_add (state, "since two\nlines");
    assert (state_save (state, error, sizeof error) == 0);
    state_destroy (&state);
    assert (state == NULL);

    //  Another source has its own file; the same source reads back
    state_t *other = state_new (dir, "git", "/srv/other.git");
    assert (state_load (other, error, sizeof error) == 0 && state_size (other) == 0);
    state_destroy (&other);
    state = state_new (dir, "git", "/srv/repo.git");
    assert (state_load (state, error, sizeof error) == 0);
    assert (state_size (state) == 2);
    assert (strcmp (state_entry (state, 0), "tip abc") == 0);
    assert (strcmp (state_entry (state, 1), "since two lines") == 0);
    assert (state_entry (state, 2) == NULL);
    //  --full: read as empty, the file untouched until saved
    state_set_full (true);
    assert (state_load (state, error, sizeof error) == 0 && state_size (state) == 0);
    state_set_full (false);
    assert (state_load (state, error, sizeof error) == 0 && state_size (state) == 2);
    //  Saving again replaces, never appends; no temp file is left behind
    state_clear (state);
    state_add (state, "tip def");
    assert (state_save (state, error, sizeof error) == 0);
    assert (state_load (state, error, sizeof error) == 0 && state_size (state) == 1);
    char *listing;
    assert (asprintf (&listing, "ls -a %s/git | grep -c tmp > /dev/null", dir) > 0);
    assert (system (listing) != 0);
    free (listing);
    state_destroy (&state);

    //  An unwritable directory is an error with the path in it
    state = state_new ("/proc/omni-no-such", "git", "x");
    assert (state_save (state, error, sizeof error) == -1);
    assert (strstr (error, "/proc/omni-no-such"));
    state_destroy (&state);

    //  One process per source: the same source is refused while locked,
    //  another source is not.
    omni_dirlock_t *lock = state_lock (dir, "git", "/srv/repo.git", error, sizeof error);
    assert (lock);
    omni_dirlock_t *other_lock = state_lock (dir, "git", "/srv/other.git", error, sizeof error);
    assert (other_lock);
    omni_dirlock_destroy (&other_lock);
    pid_t child = fork ();
    assert (child >= 0);
    if (child == 0)
        _exit (!state_lock (dir, "git", "/srv/repo.git", error, sizeof error) &&
                       strstr (error, "/srv/repo.git") && strstr (error, "in use by pid")
                   ? 0
                   : 1);
    int status;
    assert (waitpid (child, &status, 0) == child && WIFEXITED (status) &&
            WEXITSTATUS (status) == 0);
    omni_dirlock_destroy (&lock);

    char *def = state_default_dir ();
    assert (strstr (def, "omniaudit"));
    free (def);
    selftest_rmtree (dir);
    free (dir);
}
