# Sourced by the scripts/qcount-*.sh scripts: installs what is missing (Debian packages, as root or
# with sudo: libglib2.0-dev for the plugin, qemu-user, gcc-aarch64-linux-gnu,
# libc6-dev-arm64-cross; the rustup target aarch64-unknown-linux-gnu), finds
# ../shared/tools/qcount (or $QCOUNT), builds its qemu plugin into a temporary folder removed on
# exit, exports QCOUNT_SO, and changes to the repository root ($root).
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/scripts/lib/prereqs.sh"

QCOUNT=${QCOUNT:-$root/../shared/tools/qcount}
[ -d "$QCOUNT" ] || QCOUNT=/work/shared/tools/qcount
if [ ! -f "$QCOUNT/qcount.c" ]; then
  echo "!! the qcount tool is not at $QCOUNT; set QCOUNT=path/to/qcount (shared/tools/qcount)" >&2
  exit 1
fi

missing=""
pkg-config --exists glib-2.0 2>/dev/null || missing="$missing libglib2.0-dev"
command -v pkg-config >/dev/null 2>&1 || missing="$missing pkg-config"
command -v make >/dev/null 2>&1 || missing="$missing make"
command -v gcc >/dev/null 2>&1 || missing="$missing gcc"
command -v python3 >/dev/null 2>&1 || missing="$missing python3"
command -v qemu-aarch64 >/dev/null 2>&1 || missing="$missing qemu-user"
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || missing="$missing gcc-aarch64-linux-gnu"
[ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] || missing="$missing libc6-dev-arm64-cross"
# shellcheck disable=SC2086 # word splitting of the list is intended
need_debian_pkgs $missing
need_rustup_targets aarch64-unknown-linux-gnu

build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
make -s -C "$QCOUNT" B="$build" >/dev/null
export QCOUNT_SO="$build/libqcount.so"
cd "$root"
