/*  gitdiff: numstat of a commit against its first parent, with libgit2.

    libgit2's own tree-to-tree diff expands both trees completely and looks
    up attributes for every path, which made it slower than all of `git log
    --numstat`. So the trees are compared here the way git compares them:
    entries in tree order, identical subtrees (same id) skipped unread. Each
    changed file is then counted with git_diff_blobs on the two blobs.

    What git's numstat does, and so this does:
    - no renames: a moved file is a deletion and an addition;
    - a file whose type changed (file <-> symlink <-> submodule) is one entry
      comparing the two contents; a path that became a directory (or the
      reverse) is a deletion plus additions;
    - a submodule's content is the line "Subproject commit <sha>\n";
    - binary when the `diff` attribute is unset (`-diff`, `binary`), or,
      unless it is set, when either side has a NUL byte in its first 8000
      bytes or is larger than core.bigFileThreshold (512 MiB); binary files
      count as changed with 0 lines, even when only their mode changed;
    - attributes come from where git takes them: the work tree's
      .gitattributes files (none for a bare repository), info/attributes,
      the global and system files. They are looked up once per path and run.

    Counting uses hunk headers only: with zero context lines a hunk's old
    and new line counts are exactly its deleted and added lines, so no
    per-line callback runs and no patch is kept in memory.                  */
#include "collectord/gitdiff.h"
#include "common/buf.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FIRST_FEW_BYTES 8000 //  git's binary sniffing window
//  Paths whose attribute is remembered: every path a long history ever
//  touched would otherwise stay here, so the map starts over when full
#define S_ATTRS_MAX 65536

typedef struct {
    size_t path_at, path_len; //  in the arena, which may move while it grows
    size_t old_at, old_len;   //  the path it was renamed from; old_len 0: none
    uint64_t insertions, deletions;
    bool binary;
    bool added, deleted; //  present on one side only
} s_file_t;

//  A tree as read from the object database, its entries indexed in place
//  (libgit2's git_tree would parse the same; having the raw bytes lets two
//  versions of a directory be compared by their differing middle only).
typedef struct {
    const char *name; //  not NUL-terminated by this index: name_len
    const git_oid *id;
    uint16_t name_len;
    uint16_t attr; //  the mode as stored
    uint32_t at;   //  where the entry starts in the raw tree
} s_entry_t;

typedef struct {
    git_odb_object *obj;
    const uint8_t *data;
    size_t len;
    s_entry_t *entries;
    size_t count;
    atomic_size_t refs; //  trees are shared by the threads' cache
} s_tree_t;

//  A tree kept for the commits that follow. libgit2's own object cache
//  is off (git_collector.c): it evicts by iterating its hash table from
//  the start, over the buckets its last evictions emptied, which cost
//  more than the reads it saved (blobs are rarely read twice close
//  together). Here only trees are kept, least recently used out first.
typedef struct s_cached_t {
    git_oid id;
    s_tree_t *tree; //  one reference, held while cached
    size_t bytes;   //  estimated memory of the parsed tree
    struct s_cached_t *chain;
    struct s_cached_t *newer, *older;
} s_cached_t;

#define S_BUCKETS 4096

//  The trees, most recent first. Shared by the worker threads of a run:
//  they take turns at runs of commits, so the trees one reads are mostly
//  needed next by another. A parsed tree is only read once made and its
//  reference count is atomic, so threads of different repository handles
//  can use it; the lock guards the table and the list.
typedef struct {
    pthread_mutex_t lock;
    size_t refs;          //  the gitdiff objects using it
    s_cached_t **buckets; //  S_BUCKETS chains by id
    s_cached_t *lru_head, *lru_tail;
    size_t bytes, budget;
    uint64_t hits, misses;
} s_trees_t;

//  What the `diff` attribute says about a path
typedef enum { S_ATTR_AUTO = 1, S_ATTR_BINARY, S_ATTR_TEXT } s_attr_t;

struct _gitdiff_t {
    git_repository *repo;
    //  A repository of the same object database and nothing else (no
    //  directory, no configuration), for the blobs given to git_diff_blobs:
    //  libgit2 looks up the `diff` attribute of a blob diffed without a
    //  path as if its path were "file", in the blob's repository, statting
    //  the attribute files of the work tree and the system and parsing
    //  them each time (opened bare: still info/attributes and the system's,
    //  ~9 % of the instructions and 4 system calls per file). Here it has
    //  nothing to look in. Attributes are looked up in `repo` (s_attr),
    //  once per path; the driver would only have been "file"'s anyway.
    git_repository *bare;
    git_odb *odb;
    git_diff_options opts;
    s_file_t *files;
    size_t nfiles, cap;
    omni_buf_t arena; //  the files' paths, each with its NUL
    omni_buf_t path;  //  room for the directory being walked, then a file's path
    uint64_t insertions, deletions;
    bool parent_missing;
    int64_t big_file;   //  core.bigFileThreshold
    zhash_t *attrs;     //  path -> s_attr_t (as a pointer-sized integer)
    int error;          //  first libgit2 error of the walk
    s_trees_t *trees;   //  trees read lately, maybe shared with other threads
    git_commit *parent; //  the last commit's first parent, for gitdiff_take_parent
};

static s_tree_t *
s_tree_dup (s_tree_t *tree)
{
    atomic_fetch_add (&tree->refs, 1);
    return tree;
}

static void
s_tree_free (s_tree_t *tree)
{
    if (!tree || atomic_fetch_sub (&tree->refs, 1) != 1)
        return;
    git_odb_object_free (tree->obj);
    free (tree->entries);
    free (tree);
}

//  libgit2's reading of an entry's mode (tree.c): the type by S_IFMT, the
//  mode normalized as git_tree_entry_filemode gives it
static git_object_t
s_entry_type (const s_entry_t *e)
{
    if ((e->attr & 0170000) == 0160000)
        return GIT_OBJECT_COMMIT;
    return (e->attr & 0170000) == 0040000 ? GIT_OBJECT_TREE : GIT_OBJECT_BLOB;
}

static git_filemode_t
s_entry_filemode (const s_entry_t *e)
{
    unsigned type = e->attr & ~0777u;
    if (type == GIT_FILEMODE_TREE)
        return GIT_FILEMODE_TREE;
    if (e->attr & 0100)
        return GIT_FILEMODE_BLOB_EXECUTABLE;
    if (type == GIT_FILEMODE_COMMIT)
        return GIT_FILEMODE_COMMIT;
    if (type == GIT_FILEMODE_LINK)
        return GIT_FILEMODE_LINK;
    return GIT_FILEMODE_BLOB;
}

//  Indexes the entries of a raw tree as libgit2's parser reads them
//  ("MODE NAME\0" and 20 bytes of id, MODE octal). Returns 0 or -1.
static int
s_tree_parse (s_tree_t *tree)
{
    size_t cap = 0;
    omni_array_reserve (tree->entries, cap, 16);
    const uint8_t *at = tree->data, *end = tree->data + tree->len;
    while (at < end) {
        const uint8_t *start = at;
        uint32_t mode = 0;
        if (*at < '0' || *at > '7')
            return -1;
        while (at < end && *at >= '0' && *at <= '7') {
            mode = mode * 8 + (uint32_t) (*at++ - '0');
            if (mode > UINT16_MAX)
                return -1;
        }
        if (at >= end || *at++ != ' ')
            return -1;
        const uint8_t *nul = memchr (at, 0, (size_t) (end - at));
        if (!nul || nul == at || nul - at > UINT16_MAX || end - (nul + 1) < GIT_OID_RAWSZ ||
            start - tree->data > UINT32_MAX)
            return -1;
        *omni_array_push (tree->entries, tree->count, cap) =
            (s_entry_t){(const char *) at, (const git_oid *) (nul + 1), (uint16_t) (nul - at),
                        (uint16_t) mode, (uint32_t) (start - tree->data)};
        at = nul + 1 + GIT_OID_RAWSZ;
    }
    return 0;
}

//  Reads and indexes the tree `id`. Returns 0, or -1 with libgit2's error.
static int
s_tree_read (git_odb *odb, s_tree_t **out, const git_oid *id)
{
    git_odb_object *obj;
    if (git_odb_read (&obj, odb, id))
        return -1;
    if (git_odb_object_type (obj) != GIT_OBJECT_TREE) {
        git_odb_object_free (obj);
        git_error_set_str (GIT_ERROR_INVALID,
                           "the requested type does not match the type in the ODB");
        return -1;
    }
    s_tree_t *tree = calloc (1, sizeof *tree);
    assert (tree);
    tree->obj = obj;
    tree->data = git_odb_object_data (obj);
    tree->len = git_odb_object_size (obj);
    atomic_init (&tree->refs, 1);
    if (s_tree_parse (tree)) {
        s_tree_free (tree);
        git_error_set_str (GIT_ERROR_TREE, "failed to parse tree: object is corrupted");
        return -1;
    }
    *out = tree;
    return 0;
}

static size_t
s_bucket (const git_oid *id)
{
    uint32_t h;
    memcpy (&h, id->id, sizeof h); //  object ids are uniform already
    return h & (S_BUCKETS - 1);
}

//  Drops the least recently used trees until at most `budget` bytes are
//  kept. Called with the lock held.
static void
s_trees_trim (s_trees_t *self, size_t budget)
{
    while (self->lru_tail && self->bytes > budget) {
        s_cached_t *c = self->lru_tail;
        self->lru_tail = c->newer;
        if (self->lru_tail)
            self->lru_tail->older = NULL;
        else
            self->lru_head = NULL;
        s_cached_t **link = &self->buckets[s_bucket (&c->id)];
        while (*link != c)
            link = &(*link)->chain;
        *link = c->chain;
        self->bytes -= c->bytes;
        s_tree_free (c->tree);
        free (c);
    }
}

static s_trees_t *
s_trees_new (void)
{
    s_trees_t *self = calloc (1, sizeof *self);
    assert (self);
    self->buckets = calloc (S_BUCKETS, sizeof *self->buckets);
    assert (self->buckets);
    pthread_mutex_init (&self->lock, NULL);
    self->refs = 1;
    self->budget = GITDIFF_TREE_CACHE;
    return self;
}

static void
s_trees_release (s_trees_t *self)
{
    pthread_mutex_lock (&self->lock);
    bool last = --self->refs == 0;
    pthread_mutex_unlock (&self->lock);
    if (!last)
        return;
    s_trees_trim (self, 0);
    pthread_mutex_destroy (&self->lock);
    free (self->buckets);
    free (self);
}

//  The cached tree `id`, with a reference for the caller, or NULL. Called
//  with the lock held (a tree being evicted by another thread is freed
//  under it).
static s_tree_t *
s_trees_find (s_trees_t *self, const git_oid *id)
{
    for (s_cached_t *c = self->buckets[s_bucket (id)]; c; c = c->chain) {
        if (!git_oid_equal (&c->id, id))
            continue;
        if (c != self->lru_head) {
            c->newer->older = c->older;
            if (c->older)
                c->older->newer = c->newer;
            else
                self->lru_tail = c->newer;
            c->newer = NULL;
            c->older = self->lru_head;
            self->lru_head->newer = c;
            self->lru_head = c;
        }
        return s_tree_dup (c->tree);
    }
    return NULL;
}

//  Sets `tree` to the tree `id` (a reference the caller frees), from the
//  cache or read and then kept. Returns 0, or -1 when it cannot be read.
//  Walking the history newest first, the trees a commit reads on its old
//  side come back as new sides of the commits that change the same
//  directories next: the root at once, a directory a few commits later.
static int
s_tree_get (gitdiff_t *self, s_tree_t **tree, const git_oid *id)
{
    s_trees_t *trees = self->trees;
    pthread_mutex_lock (&trees->lock);
    *tree = s_trees_find (trees, id);
    if (*tree)
        trees->hits++;
    else
        trees->misses++;
    pthread_mutex_unlock (&trees->lock);
    if (*tree)
        return 0;
    //  Read without the lock: this is the slow part
    if (s_tree_read (self->odb, tree, id))
        return -1;
    //  The raw object (~40 bytes an entry), a 24-byte index entry for
    //  each, and the allocations
    size_t bytes = 256 + (*tree)->len + (*tree)->count * sizeof (s_entry_t);
    pthread_mutex_lock (&trees->lock);
    //  Not when a huge tree would push out everything else, or when
    //  another thread read it meanwhile
    s_tree_t *known = bytes > trees->budget / 4 ? NULL : s_trees_find (trees, id);
    if (known)
        s_tree_free (known);
    else if (bytes <= trees->budget / 4) {
        s_cached_t *c = malloc (sizeof *c);
        assert (c);
        c->id = *id;
        c->tree = s_tree_dup (*tree);
        c->bytes = bytes;
        size_t bucket = s_bucket (id);
        c->chain = trees->buckets[bucket];
        trees->buckets[bucket] = c;
        c->newer = NULL;
        c->older = trees->lru_head;
        if (trees->lru_head)
            trees->lru_head->newer = c;
        else
            trees->lru_tail = c;
        trees->lru_head = c;
        trees->bytes += bytes;
        s_trees_trim (trees, trees->budget);
    }
    pthread_mutex_unlock (&trees->lock);
    return 0;
}

gitdiff_t *
gitdiff_new (git_repository *repo)
{
    gitdiff_t *self = calloc (1, sizeof *self);
    assert (self);
    self->repo = repo;
    int rc = git_repository_odb (&self->odb, repo);
    assert (rc == 0);
    if (git_repository_wrap_odb (&self->bare, self->odb)) {
        git_error_clear ();
        self->bare = NULL; //  diffs go through `repo`, slower
    }
    git_diff_options_init (&self->opts, GIT_DIFF_OPTIONS_VERSION);
    self->opts.context_lines = 0;
    self->opts.interhunk_lines = 0;
    //  Binary or not is decided here, before the buffers are diffed
    self->opts.flags |= GIT_DIFF_FORCE_TEXT;
    self->big_file = 512 * 1024 * 1024;
    git_config *config;
    if (git_repository_config_snapshot (&config, repo) == 0) {
        int64_t value;
        if (git_config_get_int64 (&value, config, "core.bigFileThreshold") == 0 && value > 0)
            self->big_file = value;
        git_config_free (config);
    }
    git_error_clear ();
    self->attrs = zhash_new ();
    self->trees = s_trees_new ();
    omni_buf_reserve (&self->path, 256);
    return self;
}

void
gitdiff_destroy (gitdiff_t **self_p)
{
    gitdiff_t *self = *self_p;
    if (!self)
        return;
    s_trees_release (self->trees);
    git_commit_free (self->parent);
    git_odb_free (self->odb);
    git_repository_free (self->bare);
    zhash_destroy (&self->attrs);
    free (self->files);
    omni_buf_release (&self->arena);
    omni_buf_release (&self->path);
    free (self);
    *self_p = NULL;
}

//  Git's tree order: names compared bytewise, a directory as if its name
//  ended with '/'.
static int
s_entry_cmp (const s_entry_t *a, const s_entry_t *b)
{
    size_t la = a->name_len, lb = b->name_len, len = la < lb ? la : lb;
    int c = memcmp (a->name, b->name, len);
    if (c)
        return c;
    int ca = la > len                              ? (unsigned char) a->name[len]
             : s_entry_type (a) == GIT_OBJECT_TREE ? '/'
                                                   : 0;
    int cb = lb > len                              ? (unsigned char) b->name[len]
             : s_entry_type (b) == GIT_OBJECT_TREE ? '/'
                                                   : 0;
    return ca - cb;
}

//  Copies `len` bytes into the arena; returns their offset.
static size_t
s_arena_add (gitdiff_t *self, const char *s, size_t len)
{
    size_t at = self->arena.size;
    omni_buf_append (&self->arena, s, len);
    omni_buf_append (&self->arena, "", 1); //  its NUL, counted
    return at;
}

static s_file_t *
s_add_file (gitdiff_t *self, size_t path_len)
{
    s_file_t *file = omni_array_push (self->files, self->nfiles, self->cap);
    file->path_at = s_arena_add (self, self->path.data, path_len);
    file->path_len = path_len;
    file->insertions = file->deletions = 0;
    file->binary = false;
    file->added = file->deleted = false;
    file->old_at = file->old_len = 0;
    return file;
}

static s_attr_t
s_attr (gitdiff_t *self, const char *path)
{
    void *known = zhash_lookup (self->attrs, path);
    if (known)
        return (s_attr_t) (uintptr_t) known;
    const char *value = NULL;
    s_attr_t attr = S_ATTR_AUTO;
    if (git_attr_get (&value, self->repo, GIT_ATTR_CHECK_FILE_THEN_INDEX, path, "diff") == 0) {
        if (GIT_ATTR_IS_FALSE (value))
            attr = S_ATTR_BINARY;
        else if (GIT_ATTR_IS_TRUE (value))
            attr = S_ATTR_TEXT;
    }
    git_error_clear ();
    if (zhash_size (self->attrs) >= S_ATTRS_MAX) {
        zhash_destroy (&self->attrs);
        self->attrs = zhash_new ();
    }
    zhash_insert (self->attrs, path, (void *) (uintptr_t) attr);
    return attr;
}

//  One side of a changed file: its content, or none.
typedef struct {
    git_blob *blob;
    const char *data;
    size_t len;
    bool big;
    bool gitlink;
    char line[64];
} s_side_t;

static int
s_load (gitdiff_t *self, const s_entry_t *entry, s_side_t *side)
{
    side->blob = NULL;
    side->data = "";
    side->len = 0;
    side->big = side->gitlink = false;
    if (!entry)
        return 0;
    const git_oid *id = entry->id;
    if (s_entry_filemode (entry) == GIT_FILEMODE_COMMIT) {
        char hex[GIT_OID_HEXSZ + 1];
        side->len = (size_t) snprintf (side->line, sizeof side->line, "Subproject commit %s\n",
                                       git_oid_tostr (hex, sizeof hex, id));
        side->data = side->line;
        side->gitlink = true;
        return 0;
    }
    size_t size;
    git_object_t type;
    if (git_odb_read_header (&size, &type, self->odb, id))
        return -1;
    if ((int64_t) size > self->big_file) {
        side->big = true;
        return 0;
    }
    if (git_blob_lookup (&side->blob, self->bare ? self->bare : self->repo, id))
        return -1;
    side->data = (const char *) git_blob_rawcontent (side->blob);
    side->len = (size_t) git_blob_rawsize (side->blob);
    return 0;
}

static bool
s_sniff_binary (const s_side_t *side)
{
    return side->big ||
           memchr (side->data, 0, side->len < S_FIRST_FEW_BYTES ? side->len : S_FIRST_FEW_BYTES);
}

static int
s_on_hunk (const git_diff_delta *delta, const git_diff_hunk *hunk, void *payload)
{
    (void) delta;
    gitdiff_t *self = (gitdiff_t *) payload;
    s_file_t *file = &self->files[self->nfiles - 1];
    file->deletions += (uint64_t) hunk->old_lines;
    file->insertions += (uint64_t) hunk->new_lines;
    return 0;
}

//  A file that differs: `old` and/or `new` (NULL when absent); its path is
//  self->path.data[0..path_len).
static void
s_file (gitdiff_t *self, size_t path_len, const s_entry_t *old, const s_entry_t *new)
{
    s_file_t *file = s_add_file (self, path_len);
    file->added = !old;
    file->deleted = !new;
    s_attr_t attr = s_attr (self, self->arena.data + file->path_at);
    if (attr == S_ATTR_BINARY) {
        file->binary = true;
        return;
    }
    s_side_t a, b;
    bool same = old && new &&git_oid_equal (old->id, new->id);
    if (s_load (self, old, &a) || (!same && s_load (self, new, &b))) {
        if (!self->error)
            self->error = -1;
        git_blob_free (a.blob);
        return;
    }
    if (same)
        b = a, b.blob = NULL;
    if (attr != S_ATTR_TEXT && (s_sniff_binary (&a) || s_sniff_binary (&b)))
        file->binary = true;
    else if (!same && (a.big || b.big))
        file->binary = true; //  too big to diff even when declared text
    else if (!same) {
        //  git_diff_blobs knows the ids; git_diff_buffers would hash both
        //  contents again. The blobs come from the odb-only handle (see `bare`).
        int rc;
        if (a.gitlink || b.gitlink)
            rc = git_diff_buffers (a.data, a.len, NULL, b.data, b.len, NULL, &self->opts, NULL,
                                   NULL, s_on_hunk, NULL, self);
        else
            rc = git_diff_blobs (a.blob, NULL, b.blob, NULL, &self->opts, NULL, NULL, s_on_hunk,
                                 NULL, self);
        if (rc && !self->error)
            self->error = rc;
    }
    git_blob_free (a.blob);
    git_blob_free (b.blob);
}

static void s_walk (gitdiff_t *self, size_t dir_len, const s_tree_t *old, const s_tree_t *new);

//  Appends an entry's name to the directory path; returns the new length.
static size_t
s_path_push (gitdiff_t *self, size_t dir_len, const s_entry_t *entry)
{
    size_t len = entry->name_len;
    omni_buf_reserve (&self->path, dir_len + len + 2);
    memcpy (self->path.data + dir_len, entry->name, len);
    return dir_len + len;
}

//  An entry present on one side only: a file, or a whole directory.
static void
s_one_side (gitdiff_t *self, size_t dir_len, const s_entry_t *entry, bool added)
{
    size_t len = s_path_push (self, dir_len, entry);
    if (s_entry_type (entry) != GIT_OBJECT_TREE) {
        s_file (self, len, added ? NULL : entry, added ? entry : NULL);
        return;
    }
    s_tree_t *tree;
    if (s_tree_get (self, &tree, entry->id)) {
        if (!self->error)
            self->error = -1;
        return;
    }
    self->path.data[len] = '/';
    s_walk (self, len + 1, added ? NULL : tree, added ? tree : NULL);
    s_tree_free (tree);
}

//  Where entry `k` of `tree` ends
static size_t
s_entry_end (const s_tree_t *tree, size_t k)
{
    return k + 1 < tree->count ? tree->entries[k + 1].at : tree->len;
}

//  The first entry of `tree` from `lo` on that starts at byte `at` or
//  after it (count if none).
static size_t
s_entry_from (const s_tree_t *tree, size_t lo, size_t at)
{
    size_t hi = tree->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tree->entries[mid].at < at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

//  The index of the entry of `tree` starting at byte `at` among entries
//  [lo, count], or SIZE_MAX; `at` == len is the end (count).
static size_t
s_entry_at (const s_tree_t *tree, size_t lo, size_t at)
{
    if (at == tree->len)
        return tree->count;
    size_t k = s_entry_from (tree, lo, at);
    return k < tree->count && tree->entries[k].at == at ? k : SIZE_MAX;
}

//  Two versions of a directory mostly differ in a few entries: the entries
//  before the first differing byte and those after the last are the same
//  on both sides (same bytes parse the same from the same entry start),
//  and are skipped without being compared one by one. Sets the entries to
//  compare: old [*first, *old_end), new [*first, *new_end).
static void
s_middle (const s_tree_t *old, const s_tree_t *new, size_t *first, size_t *old_end, size_t *new_end)
{
    size_t n = old->len < new->len ? old->len : new->len, p = 0;
    while (p + 8 <= n) {
        uint64_t x, y;
        memcpy (&x, old->data + p, 8);
        memcpy (&y, new->data + p, 8);
        if (x != y)
            break;
        p += 8;
    }
    while (p < n && old->data[p] == new->data[p])
        p++;
    //  Entries wholly in the common prefix: the first k with end(k) > p
    size_t lo = 0, hi = old->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s_entry_end (old, mid) <= p)
            lo = mid + 1;
        else
            hi = mid;
    }
    *first = lo;
    //  The common suffix, not reaching back into those entries
    size_t old_from = lo < old->count ? old->entries[lo].at : old->len;
    size_t new_from = lo < new->count ? new->entries[lo].at : new->len;
    size_t room =
        old->len - old_from < new->len - new_from ? old->len - old_from : new->len - new_from;
    size_t sfx = 0;
    const uint8_t *a = old->data + old->len, *b = new->data + new->len;
    while (sfx + 8 <= room) {
        uint64_t x, y;
        memcpy (&x, a - sfx - 8, 8);
        memcpy (&y, b - sfx - 8, 8);
        if (x != y)
            break;
        sfx += 8;
    }
    while (sfx < room && a[-(ptrdiff_t) sfx - 1] == b[-(ptrdiff_t) sfx - 1])
        sfx++;
    //  The first old entry inside it that also starts an entry on the new
    //  side at the same distance from the end (the end itself always does)
    for (size_t k = s_entry_from (old, lo, old->len - sfx);; k++) {
        size_t tail = k < old->count ? old->len - old->entries[k].at : 0;
        size_t m = s_entry_at (new, lo, new->len - tail);
        if (m != SIZE_MAX) {
            *old_end = k;
            *new_end = m;
            return;
        }
    }
}

//  Compares two trees (either may be NULL) under the path self->path.data[0..dir_len).
static void
s_walk (gitdiff_t *self, size_t dir_len, const s_tree_t *old, const s_tree_t *new)
{
    size_t i = 0, j = 0;
    size_t nold = old ? old->count : 0, nnew = new ? new->count : 0;
    if (old && new) {
        s_middle (old, new, &i, &nold, &nnew);
        j = i;
    }
    while ((i < nold || j < nnew) && !self->error) {
        const s_entry_t *a = i < nold ? &old->entries[i] : NULL;
        const s_entry_t *b = j < nnew ? &new->entries[j] : NULL;
        int c = !a ? 1 : !b ? -1 : s_entry_cmp (a, b);
        if (c < 0) {
            s_one_side (self, dir_len, a, false);
            i++;
        } else if (c > 0) {
            s_one_side (self, dir_len, b, true);
            j++;
        } else {
            i++;
            j++;
            if (git_oid_equal (a->id, b->id) && s_entry_filemode (a) == s_entry_filemode (b))
                continue;
            size_t len = s_path_push (self, dir_len, a);
            if (s_entry_type (a) != GIT_OBJECT_TREE) {
                s_file (self, len, a, b);
                continue;
            }
            s_tree_t *ta, *tb;
            if (s_tree_get (self, &ta, a->id)) {
                self->error = -1;
                break;
            }
            if (s_tree_get (self, &tb, b->id)) {
                s_tree_free (ta);
                self->error = -1;
                break;
            }
            self->path.data[len] = '/';
            s_walk (self, len + 1, ta, tb);
            s_tree_free (ta);
            s_tree_free (tb);
        }
    }
}

//  Pairs added files with deleted ones as `git diff` does by default
//  (similarity 50 %, rename limit 1000). Only commits that add and delete
//  files pay for it, and libgit2 diffs only those paths (an exact pathspec),
//  never the whole trees.
static int
s_renames (gitdiff_t *self, const git_oid *old_id, const git_oid *new_id)
{
    size_t added = 0, deleted = 0;
    for (size_t i = 0; i < self->nfiles; i++) {
        added += self->files[i].added;
        deleted += self->files[i].deleted;
    }
    if (!added || !deleted)
        return 0;
    char **paths = malloc ((added + deleted) * sizeof (char *));
    assert (paths);
    size_t n = 0;
    for (size_t i = 0; i < self->nfiles; i++)
        if (self->files[i].added || self->files[i].deleted)
            paths[n++] = self->arena.data + self->files[i].path_at;
    git_diff_options opts;
    git_diff_options_init (&opts, GIT_DIFF_OPTIONS_VERSION);
    opts.flags |= GIT_DIFF_DISABLE_PATHSPEC_MATCH;
    opts.pathspec.strings = paths;
    opts.pathspec.count = n;
    git_diff *diff = NULL;
    git_tree *old_tree = NULL, *new_tree = NULL;
    int rc = old_id ? git_tree_lookup (&old_tree, self->repo, old_id) : 0;
    if (rc == 0)
        rc = git_tree_lookup (&new_tree, self->repo, new_id);
    if (rc == 0)
        rc = git_diff_tree_to_tree (&diff, self->repo, old_tree, new_tree, &opts);
    git_tree_free (old_tree);
    git_tree_free (new_tree);
    free (paths); //  the diff keeps its own copy of the pathspec
    git_diff_find_options find;
    git_diff_find_options_init (&find, GIT_DIFF_FIND_OPTIONS_VERSION);
    find.flags = GIT_DIFF_FIND_RENAMES;
    find.rename_threshold = 50;
    find.rename_limit = 1000;
    if (rc == 0)
        rc = git_diff_find_similar (diff, &find);
    for (size_t d = 0; rc == 0 && d < git_diff_num_deltas (diff); d++) {
        const git_diff_delta *delta = git_diff_get_delta (diff, d);
        if (delta->status != GIT_DELTA_RENAMED)
            continue;
        for (size_t i = 0; i < self->nfiles; i++) {
            s_file_t *f = &self->files[i];
            if (f->added && strcmp (self->arena.data + f->path_at, delta->new_file.path) == 0) {
                size_t len = strlen (delta->old_file.path);
                f->old_at = s_arena_add (self, delta->old_file.path, len);
                f->old_len = len;
                break;
            }
        }
    }
    git_diff_free (diff);
    return rc;
}

int
gitdiff_commit (gitdiff_t *self, const git_commit *commit)
{
    self->nfiles = 0;
    omni_buf_reset (&self->arena);
    self->insertions = self->deletions = 0;
    self->parent_missing = false;
    self->error = 0;
    git_commit_free (self->parent);
    self->parent = NULL;
    s_tree_t *old_tree = NULL, *new_tree = NULL;
    const git_oid *old_id = NULL;
    int rc = s_tree_get (self, &new_tree, git_commit_tree_id (commit));
    if (rc == 0 && git_commit_parentcount (commit) > 0) {
        git_commit *parent = NULL;
        rc = git_commit_parent (&parent, commit, 0);
        if (rc == GIT_ENOTFOUND) {
            self->parent_missing = true;
            git_error_clear ();
            rc = 0;
        } else if (rc == 0) {
            old_id = git_commit_tree_id (parent);
            rc = s_tree_get (self, &old_tree, old_id);
            self->parent = parent;
        }
    }
    if (rc == 0) {
        s_walk (self, 0, old_tree, new_tree);
        rc = self->error;
    }
    if (rc == 0)
        rc = s_renames (self, old_id, git_commit_tree_id (commit));
    s_tree_free (old_tree);
    s_tree_free (new_tree);
    if (rc)
        return -1;
    for (size_t i = 0; i < self->nfiles; i++) {
        self->insertions += self->files[i].insertions;
        self->deletions += self->files[i].deletions;
    }
    return 0;
}

git_commit *
gitdiff_take_parent (gitdiff_t *self, const git_oid *id)
{
    git_commit *parent = self->parent;
    if (!parent || !git_oid_equal (git_commit_id (parent), id))
        return NULL;
    self->parent = NULL;
    return parent;
}

void
gitdiff_set_tree_cache (gitdiff_t *self, size_t bytes)
{
    s_trees_t *trees = self->trees;
    pthread_mutex_lock (&trees->lock);
    trees->budget = bytes;
    s_trees_trim (trees, bytes);
    pthread_mutex_unlock (&trees->lock);
}

void
gitdiff_share_trees (gitdiff_t *self, gitdiff_t *with)
{
    if (self->trees == with->trees)
        return;
    s_trees_release (self->trees);
    self->trees = with->trees;
    pthread_mutex_lock (&self->trees->lock);
    self->trees->refs++;
    pthread_mutex_unlock (&self->trees->lock);
}

void
gitdiff_tree_stats (gitdiff_t *self, uint64_t *hits, uint64_t *misses, size_t *bytes)
{
    s_trees_t *trees = self->trees;
    pthread_mutex_lock (&trees->lock);
    *hits = trees->hits;
    *misses = trees->misses;
    *bytes = trees->bytes;
    pthread_mutex_unlock (&trees->lock);
}

size_t
gitdiff_files (gitdiff_t *self)
{
    return self->nfiles;
}

gitdiff_file_t
gitdiff_file (gitdiff_t *self, size_t index)
{
    assert (index < self->nfiles);
    const s_file_t *f = &self->files[index];
    gitdiff_file_t out = {self->arena.data + f->path_at,
                          f->path_len,
                          f->insertions,
                          f->deletions,
                          f->binary,
                          f->old_len ? self->arena.data + f->old_at : NULL,
                          f->old_len};
    return out;
}

uint64_t
gitdiff_insertions (gitdiff_t *self)
{
    return self->insertions;
}

uint64_t
gitdiff_deletions (gitdiff_t *self)
{
    return self->deletions;
}

bool
gitdiff_parent_missing (gitdiff_t *self)
{
    return self->parent_missing;
}

//  ---------------------------------------------------------------------------
//  Self-test: a repository made with git itself; every commit's numbers
//  are compared with `git diff --numstat -z --no-renames`.

static void
s_git (const char *repo, const char *script)
{
    selftest_sh (
        repo, "GIT_AUTHOR_NAME=A GIT_AUTHOR_EMAIL=a@x GIT_COMMITTER_NAME=C GIT_COMMITTER_EMAIL=c@x",
        script);
}

//  Compares the object's result for `sha` with git's numstat of it.
static void
s_check_commit (gitdiff_t *diff, git_repository *repo, const char *dir, const char *sha,
                bool verbose)
{
    git_oid oid;
    git_commit *commit;
    assert (git_oid_fromstr (&oid, sha) == 0);
    assert (git_commit_lookup (&commit, repo, &oid) == 0);
    assert (gitdiff_commit (diff, commit) == 0);
    char *cmd;
    char from[64];
    if (git_commit_parentcount (commit))
        snprintf (from, sizeof from, "%s^", sha);
    else //  the empty tree
        snprintf (from, sizeof from, "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
    assert (asprintf (&cmd, "git -C '%s' diff --numstat -z --no-renames %s %s", dir, from, sha) >
            0);
    FILE *out = popen (cmd, "r");
    assert (out);
    char buf[65536];
    size_t len = fread (buf, 1, sizeof buf, out);
    assert (pclose (out) == 0);
    size_t index = 0, at = 0;
    uint64_t ins_total = 0, del_total = 0;
    while (at < len) {
        //  "ins\tdel\tpath\0"; binary: "-\t-\tpath\0"
        char *field = buf + at;
        char *nul = memchr (field, 0, len - at);
        assert (nul);
        char *tab1 = strchr (field, '\t'), *tab2 = tab1 ? strchr (tab1 + 1, '\t') : NULL;
        assert (tab2);
        gitdiff_file_t f = gitdiff_file (diff, index);
        if (verbose)
            fprintf (stderr, "  %s: git %.*s ours %llu %llu %s%s\n", sha, (int) (tab2 - field),
                     field, (unsigned long long) f.insertions, (unsigned long long) f.deletions,
                     f.binary ? "binary " : "", f.path);
        assert (f.path_len == (size_t) (nul - tab2 - 1) &&
                memcmp (f.path, tab2 + 1, f.path_len) == 0);
        if (field[0] == '-') {
            assert (f.binary && f.insertions == 0 && f.deletions == 0);
        } else {
            assert (!f.binary);
            assert (f.insertions == strtoull (field, NULL, 10));
            assert (f.deletions == strtoull (tab1 + 1, NULL, 10));
        }
        ins_total += f.insertions;
        del_total += f.deletions;
        index++;
        at = (size_t) (nul - buf) + 1;
    }
    assert (index == gitdiff_files (diff));
    assert (ins_total == gitdiff_insertions (diff) && del_total == gitdiff_deletions (diff));
    free (cmd);
    git_commit_free (commit);
}

void
gitdiff_test (bool verbose)
{
    git_libgit2_init ();
    char *dir = selftest_tmpdir ("gitdiff");
    s_git (dir, "git init -q -b main . && printf 'a\\nb\\nc\\n' > t.txt && "
                "printf '\\000\\001bin' > b.bin && : > empty && mkdir -p d/e && "
                "printf 'x' > d/e/noeol && printf 'a.txt\\n' > a.txt && "
                "git add -A && git commit -q -m root");
    s_git (dir, "printf 'a\\nB\\nc\\nd\\n' > t.txt && printf '\\000\\002bin' > b.bin && "
                "printf 'y' > d/e/noeol && git mv a.txt renamed.txt && chmod +x empty && "
                "git add -A && git commit -q -m change");
    s_git (dir,
           "rm t.txt && ln -s renamed.txt empty2 && rm empty && ln -s t empty && "
           "printf '1\\n2\\n' > \"$(printf 'sp ace\\303\\244')\" && printf 'text\\n' > b.bin && "
           "git add -A && git commit -q -m typechange");
    s_git (dir, "git checkout -q -b side HEAD~1 && printf 'side\\n' > side.txt && "
                "git add -A && git commit -q -m side && git checkout -q main && "
                "git merge -q --no-ff -m merge side");
    //  Attributes of the work tree, a binary file whose mode alone changes,
    //  submodules (gitlinks) added, moved on, and replaced by a file
    s_git (dir, "printf '\\000x' > c.bin && git add c.bin && git commit -q -m c.bin");
    s_git (dir, "printf '*.nodiff -diff\\n*.txtbin diff\\n' > .gitattributes && "
                "echo text > x.nodiff && printf 'a\\000b\\n' > y.txtbin && chmod +x c.bin && "
                "git add -A && "
                "git update-index --add --cacheinfo 160000,$(git rev-parse HEAD),sub && "
                "git update-index --add --cacheinfo 160000,$(git rev-parse HEAD),sub2 && "
                "git commit -q -m attrs");
    s_git (dir, "git update-index --cacheinfo 160000,$(git rev-parse HEAD~2),sub && "
                "git update-index --force-remove sub2 && echo file > sub2 && git add sub2 && "
                "echo more > x.nodiff && printf 'a\\000c\\n' > y.txtbin && "
                "git add x.nodiff y.txtbin && git commit -q -m submodule");
    s_git (dir, "git commit -q --allow-empty -m empty");

    git_repository *repo;
    assert (git_repository_open (&repo, dir) == 0);
    gitdiff_t *diff = gitdiff_new (repo);
    char *cmd;
    assert (asprintf (&cmd, "git -C '%s' rev-list --all", dir) > 0);
    FILE *list = popen (cmd, "r");
    char sha[64];
    int commits = 0;
    while (fgets (sha, sizeof sha, list)) {
        sha[strcspn (sha, "\n")] = 0;
        s_check_commit (diff, repo, dir, sha, verbose);
        commits++;
    }
    assert (pclose (list) == 0);
    assert (commits == 9);
    //  Trees came back from the cache; a cache of a few bytes keeps none
    //  and the numbers stay git's
    uint64_t hits, misses;
    size_t bytes;
    gitdiff_tree_stats (diff, &hits, &misses, &bytes);
    assert (hits > 0 && misses > 0 && bytes > 0);
    gitdiff_set_tree_cache (diff, 64);
    gitdiff_tree_stats (diff, &hits, &misses, &bytes);
    assert (bytes == 0);
    list = popen (cmd, "r");
    while (fgets (sha, sizeof sha, list)) {
        sha[strcspn (sha, "\n")] = 0;
        s_check_commit (diff, repo, dir, sha, verbose);
    }
    assert (pclose (list) == 0);
    gitdiff_tree_stats (diff, &hits, &misses, &bytes);
    assert (bytes == 0);
    gitdiff_set_tree_cache (diff, GITDIFF_TREE_CACHE);
    free (cmd);

    //  The root commit: everything added, the binary file as binary
    git_oid oid;
    git_commit *commit;
    assert (git_revparse_single ((git_object **) &commit, repo, "main~7") == 0);
    assert (git_commit_parentcount (commit) == 0);
    assert (gitdiff_commit (diff, commit) == 0);
    assert (gitdiff_files (diff) == 5 && gitdiff_insertions (diff) == 5);
    assert (gitdiff_take_parent (diff, git_commit_id (commit)) == NULL);
    assert (gitdiff_file (diff, 1).binary && strcmp (gitdiff_file (diff, 1).path, "b.bin") == 0);
    assert (!gitdiff_parent_missing (diff));
    git_commit_free (commit);
    (void) oid;
    //  The parent read for the diff is handed over once, to its id only
    git_commit *child;
    assert (git_revparse_single ((git_object **) &child, repo, "main~6") == 0);
    assert (gitdiff_commit (diff, child) == 0);
    assert (gitdiff_take_parent (diff, git_commit_id (child)) == NULL);
    git_commit *parent = gitdiff_take_parent (diff, git_commit_parent_id (child, 0));
    assert (parent && git_oid_equal (git_commit_id (parent), git_commit_parent_id (child, 0)));
    assert (gitdiff_take_parent (diff, git_commit_parent_id (child, 0)) == NULL);
    git_commit_free (parent);
    git_commit_free (child);

    //  Two objects on one cache, as gitpool's threads
    gitdiff_t *other = gitdiff_new (repo);
    gitdiff_share_trees (other, diff);
    assert (git_revparse_single ((git_object **) &commit, repo, "main") == 0);
    gitdiff_tree_stats (diff, &hits, &misses, &bytes);
    uint64_t hits_before = hits;
    assert (gitdiff_commit (diff, commit) == 0 && gitdiff_commit (other, commit) == 0);
    gitdiff_tree_stats (other, &hits, &misses, &bytes);
    assert (hits >= hits_before + 2); //  other found the trees diff read
    git_commit_free (commit);
    gitdiff_destroy (&other);
    gitdiff_destroy (&diff);
    assert (diff == NULL);
    git_repository_free (repo);
    selftest_rmtree (dir);
    free (dir);
    git_libgit2_shutdown ();
}
