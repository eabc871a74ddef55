/*  pgwriter: what relationald and metricsd say alike about their
    PostgreSQL connection: whether a failed start-up connection is worth
    asking again, and the answer of /health. Beside pgconn, which knows
    nothing of writers.                                                     */
#ifndef OMNI_PGWRITER_H
#define OMNI_PGWRITER_H

#include "pg/pgconn.h"

#include <stdbool.h>
#include <stddef.h>

//  After omni_pgconn_ensure failed at start-up: 1 when the writer keeps
//  asking (the server is away, or refuses for good until an operator acts:
//  logged at error by pgconn and said by /health), -1 for anything else.
int omni_pgwriter_connect_failed (omni_pgconn_t *conn);

//  /health of a writer: false with why in `text` when PostgreSQL refuses
//  for good or does not answer, else true with "postgresql ok".
bool omni_pgwriter_healthy (omni_pgconn_t *conn, char *text, size_t size);

void omni_pgwriter_test (bool verbose);

#endif
