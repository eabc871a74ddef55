/*  srcname: normalized source names (see srcname.h).

    Why normalize at all: the same repository is reached as https, ssh and
    scp-like URLs, with or without a user, a port or `.git`; each spelling
    was a source of its own, and the counts of one project were split or
    doubled between them. Only the host is lowercased: paths are case
    sensitive on most servers.                                               */
#include "collectord/srcname.h"
#include "testsupport/selftest.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Appends `len` bytes of `s` to buf (always terminated, cut at size).
static void
s_append (char *buf, size_t size, size_t *at, const char *s, size_t len, bool lower)
{
    for (size_t i = 0; i < len && *at + 1 < size; i++)
        buf[(*at)++] = lower ? (char) tolower ((unsigned char) s[i]) : s[i];
    buf[*at < size ? *at : size - 1] = 0;
}

//  The path part: no leading or repeated slashes, no trailing `/` or `.git`.
static void
s_append_path (char *buf, size_t size, size_t *at, const char *path, size_t len)
{
    while (len && (path[len - 1] == '/' || (len >= 4 && memcmp (path + len - 4, ".git", 4) == 0))) {
        if (path[len - 1] == '/')
            len--;
        else
            len -= 4;
    }
    bool slash = *at > 0; //  a separator is due before the next name
    for (size_t i = 0; i < len; i++) {
        if (path[i] == '/') {
            slash = true;
            continue;
        }
        if (slash && *at > 0 && buf[*at - 1] != '/')
            s_append (buf, size, at, "/", 1, false);
        slash = false;
        s_append (buf, size, at, path + i, 1, false);
    }
}

const char *
srcname_from_url (const char *url, char *buf, size_t size)
{
    if (!url || !size)
        return NULL;
    while (isspace ((unsigned char) *url))
        url++;
    size_t len = strlen (url);
    while (len && isspace ((unsigned char) url[len - 1]))
        len--;
    size_t at = 0;
    buf[0] = 0;
    const char *scheme = strstr (url, "://");
    if (scheme && (size_t) (scheme - url) < len && strncmp (url, "file://", 7) != 0) {
        //  scheme://[user[:password]@]host[:port]/path
        const char *auth = scheme + 3, *end = url + len;
        const char *path = memchr (auth, '/', (size_t) (end - auth));
        if (!path)
            path = end;
        const char *host = auth;
        for (const char *p = auth; p < path; p++)
            if (*p == '@')
                host = p + 1;
        const char *host_end = host;
        if (*host == '[') { //  [IPv6]:port
            const char *close = memchr (host, ']', (size_t) (path - host));
            host_end = close ? close + 1 : path;
        } else
            while (host_end < path && *host_end != ':')
                host_end++;
        s_append (buf, size, &at, host, (size_t) (host_end - host), true);
        s_append_path (buf, size, &at, path, (size_t) (end - path));
        return at ? buf : NULL;
    }
    if (!scheme) {
        //  scp-like [user@]host:path: a colon before any slash
        const char *colon = memchr (url, ':', len);
        const char *slash = memchr (url, '/', len);
        if (colon && colon != url && (!slash || colon < slash)) {
            const char *host = url;
            const char *at_sign = memchr (url, '@', (size_t) (colon - url));
            if (at_sign)
                host = at_sign + 1;
            s_append (buf, size, &at, host, (size_t) (colon - host), true);
            s_append_path (buf, size, &at, colon + 1, len - (size_t) (colon + 1 - url));
            return at ? buf : NULL;
        }
    }
    //  A local path (file:// or not): it stays a path, absolute if it was
    const char *path = strncmp (url, "file://", 7) == 0 ? url + 7 : url;
    size_t plen = len - (size_t) (path - url);
    if (plen && path[0] == '/')
        s_append (buf, size, &at, "/", 1, false);
    size_t before = at;
    s_append_path (buf, size, &at, path, plen);
    if (at == before && at == 1) //  "/" alone names nothing
        at = 0;
    if (!at)
        buf[0] = 0;
    return at ? buf : NULL;
}

char *
srcname_from_repo (git_repository *repo, bool *from_remote)
{
    *from_remote = false;
    //  The URL as configured, read from a config snapshot: git_remote_lookup
    //  also parses the refspecs, and its regular expressions leak in pcre2
    //  under libgit2 1.5 (about 20 KiB a call; the code collector opens the
    //  repository every run)
    char buf[1024];
    const char *name = NULL;
    git_config *config = NULL;
    const char *url = NULL;
    if (git_repository_config_snapshot (&config, repo) == 0 &&
        git_config_get_string (&url, config, "remote.origin.url") == 0)
        name = srcname_from_url (url, buf, sizeof buf);
    git_config_free (config);
    git_error_clear ();
    if (name) {
        *from_remote = true;
        return strdup (name);
    }
    //  The common directory names every linked work tree alike: .../widget/.git
    //  or .../widget.git
    const char *dir = git_repository_commondir (repo);
    size_t len = strlen (dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    size_t start = len;
    while (start && dir[start - 1] != '/')
        start--;
    if (len - start == 4 && memcmp (dir + start, ".git", 4) == 0 && start > 1) {
        len = start - 1;
        while (len > 1 && dir[len - 1] == '/')
            len--;
        start = len;
        while (start && dir[start - 1] != '/')
            start--;
    } else if (len - start > 4 && memcmp (dir + len - 4, ".git", 4) == 0)
        len -= 4;
    char *out = malloc (len - start + 1);
    assert (out);
    memcpy (out, dir + start, len - start);
    out[len - start] = 0;
    return out;
}

void
srcname_test (bool verbose)
{
    (void) verbose;
    static const char *cases[][2] = {
        {"https://github.com/acme/widget.git", "github.com/acme/widget"},
        {"https://User:secret@GitHub.COM:443/acme/widget.git/", "github.com/acme/widget"},
        {"git@github.com:acme/widget.git", "github.com/acme/widget"},
        {"ssh://git@GITHUB.com:22/acme/widget", "github.com/acme/widget"},
        {"git://github.com/acme//widget", "github.com/acme/widget"},
        {"  https://github.com/acme/widget\n", "github.com/acme/widget"},
        {"https://gitlab.example.org/Group/Sub/Proj", "gitlab.example.org/Group/Sub/Proj"},
        {"https://[::1]:8080/a/b.git", "[::1]/a/b"},
        {"/srv/repos/widget.git", "/srv/repos/widget"},
        {"/srv/repos/widget/.git/", "/srv/repos/widget"},
        {"file:///srv/repos/widget.git", "/srv/repos/widget"},
        {"../widget", "../widget"},
        {"https://github.com", "github.com"},
    };
    char buf[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = srcname_from_url (cases[i][0], buf, sizeof buf);
        if (!got || strcmp (got, cases[i][1]) != 0)
            fprintf (stderr, "srcname: %s -> %s, expected %s\n", cases[i][0], got ? got : "NULL",
                     cases[i][1]);
        assert (got && strcmp (got, cases[i][1]) == 0);
    }
    assert (srcname_from_url ("", buf, sizeof buf) == NULL);
    assert (srcname_from_url ("/", buf, sizeof buf) == NULL);
    assert (srcname_from_url (NULL, buf, sizeof buf) == NULL);
    //  Cut, never overrun
    assert (srcname_from_url ("https://github.com/acme/widget", buf, 8) == buf &&
            strcmp (buf, "github.") == 0);

    //  A repository: its origin, else its directory's name
    git_libgit2_init ();
    char *dir = selftest_tmpdir ("srcname");
    char *path;
    assert (asprintf (&path, "%s/widget", dir) > 0);
    git_repository *repo;
    assert (git_repository_init (&repo, path, false) == 0);
    bool remote;
    char *name = srcname_from_repo (repo, &remote);
    assert (!remote && strcmp (name, "widget") == 0);
    free (name);
    //  Set as plain config: git_remote_create's refspec handling leaks in
    //  pcre2 under libgit2 1.5 (LeakSanitizer), as git_remote_lookup does
    git_config *config;
    assert (git_repository_config (&config, repo) == 0);
    assert (git_config_set_string (config, "remote.origin.url", "git@GitHub.com:acme/widget.git") ==
            0);
    git_config_free (config);
    name = srcname_from_repo (repo, &remote);
    assert (remote && strcmp (name, "github.com/acme/widget") == 0);
    free (name);
    git_repository_free (repo);
    free (path);
    assert (asprintf (&path, "%s/tool.git", dir) > 0);
    assert (git_repository_init (&repo, path, true) == 0);
    name = srcname_from_repo (repo, &remote);
    assert (!remote && strcmp (name, "tool") == 0);
    free (name);
    git_repository_free (repo);
    free (path);
    selftest_rmtree (dir);
    free (dir);
    git_libgit2_shutdown ();
}
