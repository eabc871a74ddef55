/*  shared_sql: see shared_sql.h. common/module.mk makes this object depend
    on the files.                                                             */
#include "pg/shared_sql.h"
#include "common/embed.h"

EMBED_FILE (omni_shared_sql_access, "pg/sql/access.sql")
