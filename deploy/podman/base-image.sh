#!/usr/bin/env bash
# Makes the local base image (localhost/omniaudit-base:bookworm) without a
# registry: debootstrap --variant=minbase from the Debian mirror this machine's
# apt uses, then podman import. The root filesystem is cached as a tarball in
# var/deploy/ so that a later run only imports it.
#   deploy/podman/base-image.sh [--rebuild]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

rebuild=0; [ "${1:-}" = "--rebuild" ] && rebuild=1
need_podman
if [ $rebuild = 0 ] && image_exists "$OMNI_BASE_IMAGE"; then
    log "base image $OMNI_BASE_IMAGE present"
    exit 0
fi
mkdir -p "$OMNI_VAR"
tarball="$OMNI_VAR/base-$OMNI_SUITE.tar"
if [ $rebuild = 1 ] || [ ! -s "$tarball" ]; then
    mirror=$(debian_mirror)
    root=$(mktemp -d "$OMNI_VAR/rootfs.XXXXXX")
    # debootstrap can leave /proc (and more) mounted in the new root: unmount
    # before tar or rm touch it, and never let rm cross into a mount.
    unmount_under() {
        local m
        for m in $(awk -v r="$1/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r); do
            umount "$m" 2>/dev/null || umount -l "$m"
        done
    }
    trap 'unmount_under "$root"; rm -rf --one-file-system "$root" "$tarball.tmp"' EXIT
    log "debootstrap --variant=minbase $OMNI_SUITE from $mirror"
    start=$SECONDS
    debootstrap --variant=minbase "$OMNI_SUITE" "$root" "$mirror" >"$OMNI_VAR/debootstrap.log" 2>&1 ||
        { tail -n 20 "$OMNI_VAR/debootstrap.log" >&2; die "debootstrap failed (log: $OMNI_VAR/debootstrap.log)"; }
    unmount_under "$root"
    # The image's apt reads the same sources as this machine's, so that builds
    # inside it reach Debian the same way.
    {
        echo "deb $mirror $OMNI_SUITE main"
        updates=$(debian_mirror "$OMNI_SUITE-updates")
        [ -n "$updates" ] && echo "deb $updates $OMNI_SUITE-updates main"
        security=$(debian_mirror "$OMNI_SUITE-security")
        [ -n "$security" ] && echo "deb $security $OMNI_SUITE-security main"
    } >"$root/etc/apt/sources.list"
    # ... and apt's settings for reaching it (a proxy, a snapshot mirror whose
    # Release files are past their Valid-Until date), as this machine has them.
    apt-config dump 2>/dev/null |
        grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy|Retries) ' \
            >"$root/etc/apt/apt.conf.d/90omniaudit-host" || true
    # Keep images small: no docs, no caches (as Debian's own slim images).
    cat >"$root/etc/dpkg/dpkg.cfg.d/90omniaudit-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' \
        >"$root/etc/apt/apt.conf.d/90omniaudit-norecommends"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/var/log/*.log
    tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    log "base root filesystem: $(du -h "$tarball" | cut -f1) in $((SECONDS - start))s"
fi
podman import -q --change 'CMD ["/bin/bash"]' "$tarball" "$OMNI_BASE_IMAGE" >/dev/null
log "imported $OMNI_BASE_IMAGE"
