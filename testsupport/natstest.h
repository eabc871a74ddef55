/*  natstest: a nats-server with JetStream of a self-test's own, on a free
    loopback port with its store in a temporary directory, never the
    machine's own server; killed with the test (even when it fails).      */
#ifndef OMNI_NATSTEST_H
#define OMNI_NATSTEST_H

typedef struct _natstest_t natstest_t;

//  Makes the directory and picks the port; the server is not started.
natstest_t *natstest_new (void);
//  Kills the server if running and removes the directory.
void natstest_destroy (natstest_t **self_p);

//  "nats://127.0.0.1:PORT"
const char *natstest_url (natstest_t *self);
//  Starts the server (again); returns without waiting for it to listen.
void natstest_start (natstest_t *self);
//  kill -9.
void natstest_kill (natstest_t *self);
//  Ends a self-test's use of the NATS library: waits until libnats's own
//  threads have let go of it, and asserts that they did (every connection,
//  context and subscription destroyed). nats_Close alone returns while they
//  still run, and the next self-test in the same runner that opens the
//  library again can crash in one of them.
void natstest_close_library (void);

#endif
