/*  sql: relationald's statements (relationald/sql/<name>.sql), embedded into
    the binary at build time by pg/embed_sql.sh as relsql_<name>, each a
    NUL-terminated string: the SQL stays in .sql files that psql can read
    (with $1 and $2 as parameters), and the daemon needs no file at run time.
    The schema is in relationald/migrations/ (schema.h).                     */
#ifndef OMNI_RELATIONALD_SQL_H
#define OMNI_RELATIONALD_SQL_H

extern const char relsql_conflicts_code[];
extern const char relsql_conflicts_commits[];
extern const char relsql_conflicts_tests[];
extern const char relsql_ins_analysis[];
extern const char relsql_ins_branches[];
extern const char relsql_ins_builds[];
extern const char relsql_ins_code[];
extern const char relsql_ins_commits[];
extern const char relsql_ins_files[];
extern const char relsql_ins_projects[];
extern const char relsql_ins_reject[];
extern const char relsql_ins_runs_end[];
extern const char relsql_ins_runs_start[];
extern const char relsql_ins_sources[];
extern const char relsql_ins_tags[];
extern const char relsql_ins_tests[];
extern const char relsql_source_id[];
extern const char relsql_upd_unreachable[];

#endif
