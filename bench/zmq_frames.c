/*  zmq_frames: what libzmq costs to move small records one frame each,
    against the same records packed many to a frame (PROTOCOL.md: BATCHP,
    DELIVERP). A DEALER in a child process sends `count` records of `size`
    bytes to a ROUTER over loopback TCP, `per` records a message, as
    frames or packed into one; each side's CPU seconds (its I/O thread
    included, from getrusage) are printed per run, the two ways taking turns:

        cc -O2 -o zmq_frames bench/zmq_frames.c -lzmq && ./zmq_frames [count size per turns]

    Prints: way,records,bytes,sender_cpu_s,receiver_cpu_s,seconds.
    libzmq alone: no records are checked or stored.                         */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static double
s_cpu (void)
{
    struct rusage u;
    getrusage (RUSAGE_SELF, &u);
    return (double) (u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           (double) (u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

//  The child: sends the records, then waits for the receiver's word and
//  reports its CPU through `fd`.
static void
s_send (const char *endpoint, long count, size_t size, int per, int packed, int fd)
{
    void *ctx = zmq_ctx_new ();
    void *sock = zmq_socket (ctx, ZMQ_DEALER);
    int hwm = 0;
    zmq_setsockopt (sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    assert (zmq_connect (sock, endpoint) == 0);
    char *records = calloc ((size_t) per, size);
    assert (records);
    for (long m = 0; m < count / per; m++) {
        if (packed)
            zmq_send (sock, records, size * (size_t) per, 0);
        else
            for (int i = 0; i < per; i++)
                zmq_send (sock, records + (size_t) i * size, size, i + 1 < per ? ZMQ_SNDMORE : 0);
    }
    char word[8];
    zmq_recv (sock, word, sizeof word, 0);
    double cpu = s_cpu ();
    assert (write (fd, &cpu, sizeof cpu) == sizeof cpu);
    free (records);
    zmq_close (sock);
    zmq_ctx_term (ctx);
}

static void
s_turn (long count, size_t size, int per, int packed)
{
    void *ctx = zmq_ctx_new ();
    void *sock = zmq_socket (ctx, ZMQ_ROUTER);
    int hwm = 0;
    zmq_setsockopt (sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    assert (zmq_bind (sock, "tcp://127.0.0.1:*") == 0);
    char endpoint[256];
    size_t endpoint_size = sizeof endpoint;
    zmq_getsockopt (sock, ZMQ_LAST_ENDPOINT, endpoint, &endpoint_size);
    int fds[2];
    assert (pipe (fds) == 0);
    fflush (stdout);
    pid_t pid = fork ();
    if (pid == 0) {
        //  The parent's context is not used here: a fresh one of its own
        s_send (endpoint, count, size, per, packed, fds[1]);
        _exit (0);
    }
    double cpu0 = s_cpu (), start = 0;
    char *copy = malloc (size * (size_t) per);
    assert (copy);
    zmq_msg_t id, msg;
    zmq_msg_init (&id);
    zmq_msg_init (&msg);
    long got = 0;
    while (got < count) {
        zmq_msg_recv (&id, sock, 0);
        if (got == 0)
            start = s_now ();
        size_t at = 0;
        int more = 1;
        while (more) {
            zmq_msg_recv (&msg, sock, 0);
            //  Copied out, as a writer keeps a message's records
            memcpy (copy + at, zmq_msg_data (&msg), zmq_msg_size (&msg));
            at += zmq_msg_size (&msg);
            more = zmq_msg_more (&msg);
        }
        got += (long) (at / size);
    }
    double seconds = s_now () - start;
    zmq_send (sock, zmq_msg_data (&id), zmq_msg_size (&id), ZMQ_SNDMORE);
    zmq_send (sock, "done", 4, 0);
    double sender = 0;
    assert (read (fds[0], &sender, sizeof sender) == sizeof sender);
    int status;
    waitpid (pid, &status, 0);
    printf ("%s,%ld,%zu,%.3f,%.3f,%.3f\n", packed ? "packed" : "frames", count, size, sender,
            s_cpu () - cpu0, seconds);
    close (fds[0]);
    close (fds[1]);
    zmq_msg_close (&id);
    zmq_msg_close (&msg);
    free (copy);
    zmq_close (sock);
    zmq_ctx_term (ctx);
}

int
main (int argc, char **argv)
{
    long count = argc > 1 ? atol (argv[1]) : 1000000;
    size_t size = argc > 2 ? (size_t) atol (argv[2]) : 120;
    int per = argc > 3 ? atoi (argv[3]) : 500;
    int turns = argc > 4 ? atoi (argv[4]) : 3;
    printf ("way,records,bytes,sender_cpu_s,receiver_cpu_s,seconds\n");
    for (int t = 0; t < turns; t++) {
        s_turn (count, size, per, 0);
        s_turn (count, size, per, 1);
    }
    return 0;
}
