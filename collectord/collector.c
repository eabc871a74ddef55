/*  collector: the table of collectord's modes.                             */
#include "collectord/collector.h"
#include "collectord/builds.h"
#include "collectord/codestats.h"
#include "collectord/exec.h"
#include "collectord/git_collector.h"
#include "collectord/host_collector.h"
#include "collectord/junit.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const collector_t *s_collectors[] = {&git_collector,       &host_collector,
                                            &junit_collector,     &builds_collector,
                                            &codestats_collector, &exec_collector};

#define S_COUNT (sizeof s_collectors / sizeof s_collectors[0])

const collector_t *
collector_lookup (const char *name)
{
    for (size_t i = 0; name && i < S_COUNT; i++)
        if (strcmp (s_collectors[i]->name, name) == 0)
            return s_collectors[i];
    return NULL;
}

const collector_t *
collector_at (size_t index)
{
    return index < S_COUNT ? s_collectors[index] : NULL;
}

const char *
collector_source (void *self)
{
    return ((collector_names_t *) self)->src;
}

const char *
collector_target (void *self)
{
    return ((collector_names_t *) self)->target;
}

void
collector_names_free (collector_names_t *names)
{
    free (names->src);
    free (names->target);
    names->src = names->target = NULL;
}

int
collector_broken (session_t *session, char *error, size_t error_size)
{
    snprintf (error, error_size, "%s",
              session_interrupted (session) ? "interrupted"
                                            : "ingestd did not acknowledge (give_up)");
    return -1;
}

session_t *
collector_test_session (const char *mode, const char *endpoint, size_t batch)
{
    session_config_t config = {mode,         "test", {endpoint, batch, 0, 4, 5000, 10000, NULL},
                               PROGRESS_OFF, 1000,   NULL};
    session_t *session = session_new (&config);
    assert (session);
    return session;
}

void
collector_test_begin (session_t *session, const collector_t *collector, void *handle)
{
    int rc = session_begin (session, collector->source (handle), collector->target (handle),
                            collector->pack_config, handle);
    assert (rc == 0);
}

void
collector_test (bool verbose)
{
    (void) verbose;
    assert (collector_lookup ("git") == &git_collector);
    assert (collector_lookup ("host") == &host_collector);
    assert (collector_lookup ("nope") == NULL);
    assert (collector_lookup (NULL) == NULL);
    //  Every collector is complete, and its keys do not collide with
    //  another's (they share the config section)
    for (size_t i = 0; collector_at (i); i++) {
        const collector_t *c = collector_at (i);
        assert (c->name && c->usage && c->summary && c->options);
        assert (c->open && c->close && c->source && c->target && c->collect);
        for (const omni_config_option_t *o = c->options; o->key; o++)
            for (size_t j = i + 1; collector_at (j); j++)
                for (const omni_config_option_t *p = collector_at (j)->options; p->key; p++)
                    assert (strcmp (o->key, p->key) != 0 || o->type == p->type);
    }
    assert (collector_at (S_COUNT) == NULL);

    //  A handle that begins with its names serves them
    struct {
        collector_names_t names;
        int other;
    } handle = {{strdup ("src"), strdup ("/the/target")}, 1};
    assert (strcmp (collector_source (&handle), "src") == 0);
    assert (strcmp (collector_target (&handle), "/the/target") == 0);
    collector_names_free (&handle.names);
    assert (!handle.names.src && !handle.names.target);
}
