#!/bin/sh
# Fails when a library file includes a header of a layer above its own. The
# layers, bottom up (docs/architecture.md, "Layers of the code"):
#   common/  config, log, metrics, HTTP, utilities
#   proto/   the wire: records, kinds, the codec, CURVE keys and roles
#   pg/      the PostgreSQL layer: connection, COPY, migrations, shared SQL
#   client/  the intake client and the writer loop
# Self-tests and fuzz targets may include testsupport/; nothing in these four
# may include a daemon's or a tool's header.
status=0
check() {
    dir=$1 allowed=$2
    for f in "$dir"/*.c "$dir"/*.h; do
        [ -e "$f" ] || continue
        grep -o '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*"' "$f" | sed 's/.*"\(.*\)"/\1/' |
            while read -r inc; do
                top=${inc%%/*}
                case " $allowed testsupport " in
                *" $top "*) ;;
                *) echo "check-layers: $f includes $inc (a layer above $dir/ or outside the library)" >&2
                   echo x ;;
                esac
            done
    done | grep -q x && status=1
}
check common "common"
check proto "common proto"
check pg "common pg"
check client "common proto client"
exit $status
