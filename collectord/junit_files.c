/*  junit_files: report files from files, directories and globs. Walked
    with readdir and lstat (no nftw: a glob's segments are matched as the
    walk goes down, so a `**` glob prunes nothing but a plain one stops at
    its depth).                                                             */
#include "collectord/junit_files.h"
#include "common/buf.h"
#include "common/log.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    char **items;
    size_t count, cap;
} s_list_t;

static void
s_list_add (s_list_t *list, char *item)
{
    omni_array_reserve (list->items, list->cap, list->count + 2); //  and the NULL
    list->items[list->count++] = item;
    list->items[list->count] = NULL;
}

bool
junit_is_glob (const char *s)
{
    return strpbrk (s, "*?[") != NULL;
}

//  Path segments against pattern segments; "**" is any number of them.
static bool
s_match_segments (char **pat, size_t np, char **seg, size_t ns)
{
    if (np == 0)
        return ns == 0;
    if (strcmp (pat[0], "**") == 0) {
        for (size_t k = 0; k <= ns; k++)
            if (s_match_segments (pat + 1, np - 1, seg + k, ns - k))
                return true;
        return false;
    }
    if (ns == 0 || fnmatch (pat[0], seg[0], FNM_PERIOD) != 0)
        return false;
    return s_match_segments (pat + 1, np - 1, seg + 1, ns - 1);
}

static size_t
s_split (char *s, char **out, size_t max)
{
    size_t n = 0;
    for (char *tok = strtok (s, "/"); tok && n < max; tok = strtok (NULL, "/"))
        out[n++] = tok;
    return n;
}

#define S_MAX_SEGMENTS 64

typedef struct {
    s_list_t *out;
    char *const *patterns;     //  directory mode: names to take
    char *pat[S_MAX_SEGMENTS]; //  glob mode: segments after the root
    size_t npat;
    bool glob;
    size_t max_depth;
} s_walk_t;

static void
s_walk (s_walk_t *w, const char *dir, const char *rel, size_t depth)
{
    DIR *d = opendir (dir);
    if (!d) {
        log_warn ("junit.unreadable", "path=\"%s\" error=\"%s\"", dir, strerror (errno));
        return;
    }
    struct dirent *e;
    while ((e = readdir (d))) {
        if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
        char *path, *sub;
        assert (asprintf (&path, "%s/%s", dir, e->d_name) > 0);
        assert (asprintf (&sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name) > 0);
        struct stat st;
        bool is_dir = false, is_file = false;
        if (lstat (path, &st) == 0) {
            is_dir = S_ISDIR (st.st_mode);
            //  Symbolic links to files are followed, to directories not (loops)
            is_file = S_ISREG (st.st_mode) ||
                      (S_ISLNK (st.st_mode) && stat (path, &st) == 0 && S_ISREG (st.st_mode));
        }
        if (is_dir && depth + 1 < w->max_depth)
            s_walk (w, path, sub, depth + 1);
        else if (is_file) {
            bool take = false;
            if (w->glob) {
                char *copy = strdup (sub), *seg[S_MAX_SEGMENTS];
                size_t ns = s_split (copy, seg, S_MAX_SEGMENTS);
                take = s_match_segments (w->pat, w->npat, seg, ns);
                free (copy);
            } else
                for (size_t i = 0; w->patterns && w->patterns[i] && !take; i++)
                    take = fnmatch (w->patterns[i], e->d_name, 0) == 0;
            if (take) {
                s_list_add (w->out, path);
                path = NULL;
            }
        }
        free (path);
        free (sub);
    }
    closedir (d);
}

static int
s_strcmp (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

char **
junit_find_files (const char *const *args, size_t nargs, char *const *patterns)
{
    s_list_t list = {0};
    s_list_add (&list, NULL);
    list.count = 0;
    for (size_t i = 0; i < nargs; i++) {
        const char *arg = args[i];
        size_t before = list.count;
        struct stat st;
        if (stat (arg, &st) == 0 && S_ISREG (st.st_mode))
            s_list_add (&list, strdup (arg));
        else if (stat (arg, &st) == 0 && S_ISDIR (st.st_mode)) {
            s_walk_t w = {&list, patterns, {0}, 0, false, SIZE_MAX};
            char *dir = strdup (arg);
            size_t len = strlen (dir);
            while (len > 1 && dir[len - 1] == '/')
                dir[--len] = 0;
            s_walk (&w, dir, "", 0);
            free (dir);
        } else if (junit_is_glob (arg)) {
            //  The root: the leading segments without wildcards
            char *copy = strdup (arg), *seg[S_MAX_SEGMENTS];
            size_t ns = s_split (copy, seg, S_MAX_SEGMENTS), k = 0;
            while (k < ns && !junit_is_glob (seg[k]))
                k++;
            char root[PATH_MAX] = "";
            size_t used = 0;
            if (arg[0] == '/')
                used = (size_t) snprintf (root, sizeof root, "/");
            for (size_t j = 0; j < k && used < sizeof root; j++)
                used += (size_t) snprintf (root + used, sizeof root - used, "%s%s", seg[j],
                                           j + 1 < k ? "/" : "");
            if (!*root)
                snprintf (root, sizeof root, ".");
            s_walk_t w = {&list, NULL, {0}, 0, true, SIZE_MAX};
            bool deep = false;
            for (size_t j = k; j < ns; j++) {
                w.pat[w.npat++] = seg[j];
                deep |= strcmp (seg[j], "**") == 0;
            }
            if (!deep)
                w.max_depth = w.npat;
            if (w.npat)
                s_walk (&w, root, "", 0);
            //  "./x" from a relative glob reads better as "x"
            for (size_t j = before; arg[0] != '.' && strcmp (root, ".") == 0 && j < list.count; j++)
                if (strncmp (list.items[j], "./", 2) == 0)
                    memmove (list.items[j], list.items[j] + 2, strlen (list.items[j]) - 1);
            free (copy);
        }
        if (list.count == before)
            log_warn ("junit.no_reports", "path=\"%s\" reason=\"%s\"", arg,
                      stat (arg, &st) == 0 || junit_is_glob (arg) ? "no report file in it"
                                                                  : strerror (errno));
    }
    qsort (list.items, list.count, sizeof (char *), s_strcmp);
    size_t n = 0;
    for (size_t i = 0; i < list.count; i++) {
        if (n && strcmp (list.items[n - 1], list.items[i]) == 0)
            free (list.items[i]);
        else
            list.items[n++] = list.items[i];
    }
    list.items[n] = NULL;
    return list.items;
}

//  ---------------------------------------------------------------------------
//  Self-test

static size_t
s_count_free (char **files)
{
    size_t n = 0;
    while (files[n])
        free (files[n++]);
    free (files);
    return n;
}

void
junit_files_test (bool verbose)
{
    (void) verbose;
    assert (junit_is_glob ("a/**/b.xml") && !junit_is_glob ("a/b.xml"));
    //  A directory (recursive, by pattern), a glob with **
    char *root = selftest_fixture ("junit");
    const char *args1[] = {root};
    char *xml[] = {"*.xml", NULL};
    char **files = junit_find_files (args1, 1, xml);
    size_t n = 0;
    while (files[n])
        n++;
    assert (n == 12);
    for (size_t k = 0; k + 1 < n; k++)
        assert (strcmp (files[k], files[k + 1]) < 0);
    assert (s_count_free (files) == 12);
    char *glob;
    assert (asprintf (&glob, "%s/**/TEST-*.xml", root) > 0);
    const char *args2[] = {glob, root, "/nonexistent/omni"};
    assert (s_count_free (junit_find_files (args2, 3, xml)) == 12); //  no duplicates
    files = junit_find_files (args2, 1, xml);
    for (n = 0; files[n]; n++)
        assert (strstr (files[n], "/TEST-"));
    assert (s_count_free (files) == 3);
    free (glob);
    //  A glob without ** stays at its depth
    assert (asprintf (&glob, "%s/go/*.xml", root) > 0);
    args2[0] = glob;
    assert (s_count_free (junit_find_files (args2, 1, xml)) == 2);
    free (glob);
    free (root);
}
