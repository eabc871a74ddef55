#!/bin/sh
# collector-git [REPO] [OPTION...]: `collectord git` on a repository mounted
# from the host, as the collector-git service runs it (installed in the image
# as /usr/local/bin/collector-git). REPO defaults to $OMNI_GIT_REPO, then /repos.
#
# Why a wrapper: a mounted repository belongs to a host user, not to the
# image's user, and libgit2 (1.5) then refuses it unless git's safe.directory
# names its exact path ("*" is not understood), so the path is added to the
# user's git configuration first. Everything else is collectord's own
# configuration (OMNI_COLLECTORD_* or flags).
set -eu
repo="${OMNI_GIT_REPO:-/repos}"
case "${1:-}" in
"" | -*) ;;
*) repo=$1; shift ;;
esac
config="${HOME:-/var/lib/omniaudit}/.gitconfig"
for path in "$repo" "${repo%/}/.git"; do
    if ! grep -qxF "	directory = $path" "$config" 2>/dev/null; then
        printf '[safe]\n\tdirectory = %s\n' "$path" >>"$config" 2>/dev/null || true
    fi
done
exec collectord git "$@" "$repo"
