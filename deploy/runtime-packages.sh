#!/bin/sh
# Prints the Debian packages that hold the shared libraries the programs given
# need (ldd, then dpkg -S): what the runtime image installs, so that a library
# added to the build is never forgotten there. Run in the build stage.
#   deploy/runtime-packages.sh build/bin/*
set -eu
for program in "$@"; do
    ldd "$program" | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }'
done | sort -u | while read -r lib; do
    # usrmerge: dpkg may know the file as /lib/... or /usr/lib/...
    real=$(readlink -f "$lib")
    for path in "$lib" "$real" "${real#/usr}" "/usr$lib"; do
        if pkg=$(dpkg -S "$path" 2>/dev/null); then
            printf '%s\n' "${pkg%%:*}"
            break
        fi
    done
done | sed 's/:[a-z0-9]*$//' | sort -u
