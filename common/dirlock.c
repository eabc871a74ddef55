/*  dirlock: an exclusive flock on <dir>/<name> (see dirlock.h).

    flock, not fcntl locks: fcntl locks are per process and dropped when any
    descriptor of the file is closed, and a second open in the same process
    would not conflict, so the self-test could not show the refusal. The
    file is never unlinked: removing it while another process waits on it
    would let two processes hold two different files.                      */
#include "common/dirlock.h"
#include "testsupport/selftest.h"
#include "common/util.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

struct _omni_dirlock_t {
    char *path;
    int fd;
};

static char *
s_join (const char *dir, const char *name)
{
    char *path;
    if (asprintf (&path, "%s/%s", dir, name) < 0)
        assert (false);
    return path;
}

int
omni_dirlock_holder (const char *dir, const char *name)
{
    char *path = s_join (dir, name);
    FILE *file = fopen (path, "r");
    free (path);
    int pid = 0;
    if (file) {
        if (fscanf (file, "%d", &pid) != 1 || pid < 0)
            pid = 0;
        fclose (file);
    }
    return pid;
}

omni_dirlock_t *
omni_dirlock_new (const char *dir, const char *name, char *error, size_t error_size)
{
    if (omni_util_mkdirs (dir)) {
        snprintf (error, error_size, "cannot create %s: %s", dir, strerror (errno));
        return NULL;
    }
    omni_dirlock_t *self = calloc (1, sizeof *self);
    assert (self);
    self->path = s_join (dir, name);
    self->fd = open (self->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->fd < 0) {
        snprintf (error, error_size, "cannot open lock file %s: %s", self->path, strerror (errno));
        omni_dirlock_destroy (&self);
        return NULL;
    }
    if (flock (self->fd, LOCK_EX | LOCK_NB)) {
        if (errno == EWOULDBLOCK) {
            //  The holder writes its pid just after it locks: a reader that
            //  comes in between finds the file empty for a moment.
            int pid = 0;
            for (int tries = 0; tries < 20 && !(pid = omni_dirlock_holder (dir, name)); tries++)
                usleep (5000);
            if (pid)
                snprintf (error, error_size, "%s in use by pid %d (lock file %s)", dir, pid,
                          self->path);
            else
                snprintf (error, error_size, "%s in use by another process (lock file %s)", dir,
                          self->path);
        } else
            snprintf (error, error_size, "cannot lock %s: %s", self->path, strerror (errno));
        omni_dirlock_destroy (&self);
        return NULL;
    }
    char text[32];
    int len = snprintf (text, sizeof text, "%d\n", (int) getpid ());
    if (ftruncate (self->fd, 0) || pwrite (self->fd, text, (size_t) len, 0) != len) {
        snprintf (error, error_size, "cannot write lock file %s: %s", self->path, strerror (errno));
        omni_dirlock_destroy (&self);
        return NULL;
    }
    return self;
}

void
omni_dirlock_destroy (omni_dirlock_t **self_p)
{
    omni_dirlock_t *self = *self_p;
    if (!self)
        return;
    //  The pid stays in the file: it is only read while the lock is held.
    if (self->fd >= 0)
        close (self->fd);
    free (self->path);
    free (self);
    *self_p = NULL;
}

const char *
omni_dirlock_path (omni_dirlock_t *self)
{
    return self->path;
}

void
omni_dirlock_test (bool verbose)
{
    (void) verbose;
    char *tmp = selftest_tmpdir ("dirlock");
    char *dir = s_join (tmp, "state/sub");
    char error[512];
    //  Creates the directory and names its holder.
    omni_dirlock_t *lock = omni_dirlock_new (dir, "lock", error, sizeof error);
    assert (lock);
    assert (strstr (omni_dirlock_path (lock), "state/sub/lock"));
    assert (omni_dirlock_holder (dir, "lock") == (int) getpid ());

    //  Another process is refused with the holder's pid and the directory.
    pid_t child = fork ();
    assert (child >= 0);
    if (child == 0) {
        omni_dirlock_t *second = omni_dirlock_new (dir, "lock", error, sizeof error);
        char expected[64];
        snprintf (expected, sizeof expected, "in use by pid %d", (int) getppid ());
        _exit (!second && strstr (error, dir) && strstr (error, expected) ? 0 : 1);
    }
    int status;
    assert (waitpid (child, &status, 0) == child);
    assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);

    //  Another lock file in the same directory is another lock.
    omni_dirlock_t *other = omni_dirlock_new (dir, "other.lock", error, sizeof error);
    assert (other);
    omni_dirlock_destroy (&other);

    //  Released on destroy (and by the kernel when the holder dies): a
    //  child that locks and is killed leaves the directory free.
    omni_dirlock_destroy (&lock);
    assert (lock == NULL);
    child = fork ();
    assert (child >= 0);
    if (child == 0) {
        omni_dirlock_t *held = omni_dirlock_new (dir, "lock", error, sizeof error);
        (void) held;
        _exit (held ? 0 : 1);
    }
    assert (waitpid (child, &status, 0) == child);
    assert (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    lock = omni_dirlock_new (dir, "lock", error, sizeof error);
    assert (lock);
    omni_dirlock_destroy (&lock);

    //  A directory that cannot be made is an error naming it.
    assert (!omni_dirlock_new ("/proc/omni-no-such/dir", "lock", error, sizeof error));
    assert (strstr (error, "/proc/omni-no-such/dir"));

    free (dir);
    selftest_rmtree (tmp);
    free (tmp);
}
