/*  natstest: a private nats-server for self-tests (see natstest.h).        */
#include "testsupport/natstest.h"

#include <assert.h>
#include <czmq.h>
#include <nats/nats.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

struct _natstest_t {
    char dir[64];
    char url[64];
    int port;
    pid_t pid;
};

natstest_t *
natstest_new (void)
{
    natstest_t *self = calloc (1, sizeof *self);
    assert (self);
    snprintf (self->dir, sizeof self->dir, "/tmp/natstest-XXXXXX");
    assert (mkdtemp (self->dir));
    //  A port the kernel hands out as free now
    zsock_t *probe = zsock_new (ZMQ_PUSH);
    self->port = zsock_bind (probe, "tcp://127.0.0.1:*");
    zsock_destroy (&probe);
    assert (self->port > 0);
    snprintf (self->url, sizeof self->url, "nats://127.0.0.1:%d", self->port);
    return self;
}

void
natstest_kill (natstest_t *self)
{
    if (self->pid > 0) {
        kill (self->pid, SIGKILL);
        waitpid (self->pid, NULL, 0);
    }
    self->pid = 0;
}

void
natstest_destroy (natstest_t **self_p)
{
    natstest_t *self = *self_p;
    if (!self)
        return;
    natstest_kill (self);
    char rm[128];
    snprintf (rm, sizeof rm, "rm -rf %s", self->dir);
    int rc = system (rm);
    assert (rc == 0);
    free (self);
    *self_p = NULL;
}

void
natstest_close_library (void)
{
    natsStatus status = nats_CloseAndWait (10000);
    assert (status == NATS_OK);
    (void) status;
}

const char *
natstest_url (natstest_t *self)
{
    return self->url;
}

void
natstest_start (natstest_t *self)
{
    natstest_kill (self);
    char port[16];
    snprintf (port, sizeof port, "%d", self->port);
    pid_t pid = fork ();
    assert (pid >= 0);
    if (pid == 0) {
        prctl (PR_SET_PDEATHSIG, SIGKILL); //  never outlives a failed test
        int null = open ("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2 (null, 1);
            dup2 (null, 2);
        }
        execlp ("nats-server", "nats-server", "-js", "-sd", self->dir, "-a", "127.0.0.1", "-p",
                port, (char *) NULL);
        _exit (127);
    }
    self->pid = pid;
}
