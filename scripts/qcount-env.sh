# Sourced by the scripts/qcount-*.sh scripts: finds ../shared/tools/qcount (or $QCOUNT), builds
# its qemu plugin into a temporary folder removed on exit, exports QCOUNT_SO, and changes to the
# repository root ($root).
root=$(cd "$(dirname "$0")/.." && pwd)
QCOUNT=${QCOUNT:-$root/../shared/tools/qcount}
[ -d "$QCOUNT" ] || QCOUNT=/work/shared/tools/qcount
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
make -s -C "$QCOUNT" B="$build" >/dev/null
export QCOUNT_SO="$build/libqcount.so"
cd "$root"
