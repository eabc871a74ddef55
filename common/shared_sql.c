/*  shared_sql: see shared_sql.h. common/module.mk makes this object depend
    on the files.                                                             */
#include "shared_sql.h"
#include "embed.h"

EMBED_FILE (shared_sql_access, "common/sql/access.sql")
