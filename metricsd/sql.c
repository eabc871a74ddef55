/*  sql: the .sql files as read-only data, by the assembler's .incbin (no
    generator script, no escaping: the bytes are the file's), each followed
    by a NUL. Paths are relative to the repository root, where make runs;
    module.mk makes this object depend on the files.                          */
#include "sql.h"

#define S_EMBED(symbol, path)                                                                      \
    __asm__(".pushsection .rodata\n"                                                               \
            ".global " #symbol "\n"                                                                \
            ".type " #symbol ", @object\n"                                                         \
            ".balign 16\n" #symbol ":\n"                                                           \
            ".incbin \"" path "\"\n"                                                               \
            ".byte 0\n"                                                                            \
            ".size " #symbol ", . - " #symbol "\n"                                                 \
            ".popsection\n");

S_EMBED (sql_points_native, "metricsd/sql/001_points.native.sql")
S_EMBED (sql_points_timescaledb, "metricsd/sql/001_points.timescaledb.sql")
S_EMBED (sql_views, "metricsd/sql/views.sql")
S_EMBED (sql_rollups, "metricsd/sql/rollups.timescaledb.sql")
S_EMBED (sql_rollup_views, "metricsd/sql/rollup_views.sql")
