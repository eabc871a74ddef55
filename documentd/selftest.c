/*  documentd-selftest: docmap on its own; docstore against a real
    MongoDB-wire server, $OMNI_TEST_MONGO_URI's, else a FerretDB started
    here with tools/mongo-test-server.sh for the length of the run (each test
    uses a database of its own and drops it).                              */
#include "documentd/docmap.h"
#include "documentd/docstore.h"
#include "documentd/idmigrate.h"
#include "testsupport/selftest.h"

#include <mongoc/mongoc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Starts a private server when none is given; returns its directory (to
//  stop it) or NULL.
static char *
s_start_server (void)
{
    if (getenv ("OMNI_TEST_MONGO_URI") && *getenv ("OMNI_TEST_MONGO_URI"))
        return NULL;
    const char *script = "tools/mongo-test-server.sh";
    if (access (script, X_OK) != 0) {
        fprintf (stderr,
                 "documentd-selftest: %s not found (run from the repository root); "
                 "docstore needs OMNI_TEST_MONGO_URI\n",
                 script);
        return NULL;
    }
    char *dir = selftest_tmpdir ("omni-mongo");
    char command[1024], uri[512] = "";
    snprintf (command, sizeof command, "%s start '%s'", script, dir);
    FILE *out = popen (command, "r");
    if (out) {
        if (!fgets (uri, sizeof uri, out))
            uri[0] = 0;
        pclose (out);
    }
    uri[strcspn (uri, "\n")] = 0;
    if (strncmp (uri, "mongodb", 7) != 0) {
        fprintf (stderr, "documentd-selftest: could not start a MongoDB-wire server\n");
        selftest_rmtree (dir);
        free (dir);
        return NULL;
    }
    setenv ("OMNI_TEST_MONGO_URI", uri, 1);
    return dir;
}

static void
s_stop_server (char *dir)
{
    if (!dir)
        return;
    char command[1024];
    snprintf (command, sizeof command, "tools/mongo-test-server.sh stop '%s'", dir);
    if (system (command) != 0)
        fprintf (stderr, "documentd-selftest: stopping the server in %s failed\n", dir);
    selftest_rmtree (dir);
    free (dir);
}

int
main (int argc, char **argv)
{
    static const selftest_t tests[] = {{"docmap", docmap_test},
                                       {"idmigrate", idmigrate_test},
                                       {"docstore", docstore_test},
                                       {NULL, NULL}};
    mongoc_init ();
    //  Only the docstore test needs a server
    bool named = false, server = false;
    for (int i = 1; i < argc; i++)
        if (argv[i][0] != '-') {
            named = true;
            server |= strcmp (argv[i], "docstore") == 0 || strcmp (argv[i], "idmigrate") == 0;
        }
    server |= !named;
    char *dir = server ? s_start_server () : NULL;
    int rc = selftest_run (tests, argc, argv);
    s_stop_server (dir);
    mongoc_cleanup ();
    return rc;
}
