# Sourced by the scripts in scripts/ (POSIX sh, so both the bash and the sh scripts can use it):
# install what a script needs, or stop with the command that would install it.
#
#   need_debian_pkgs PKG...        apt-get install the listed Debian packages (as root, or with
#                                  sudo); the caller passes only the ones it found missing
#   need_rustup_targets TARGET...  rustup target add those not installed yet
#   need_nightly [COMPONENT...]    the nightly toolchain (minimal profile) and the components

# Runs a command as root: directly when root, else through sudo; stops (printing the command)
# when neither is possible.
prereq_as_root() {
  if [ "$(id -u)" = 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "!! not root and no sudo; run as root: $*" >&2
    exit 1
  fi
}

need_debian_pkgs() {
  [ $# -gt 0 ] || return 0
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "!! missing: $* (Debian package names); install them, on Debian/Ubuntu with:" >&2
    echo "   sudo apt-get install $*" >&2
    exit 1
  fi
  echo "== installing $*" >&2
  if ! { prereq_as_root apt-get update -qq &&
         prereq_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null; }; then
    echo "!! could not install $*; run: sudo apt-get update && sudo apt-get install $*" >&2
    exit 1
  fi
}

need_rustup_targets() {
  _installed=$(rustup target list --installed 2>/dev/null) || {
    echo "!! rustup not found; install it (https://rustup.rs), then: rustup target add $*" >&2
    exit 1
  }
  for _t in "$@"; do
    printf '%s\n' "$_installed" | grep -qx "$_t" || rustup target add "$_t" ||
      { echo "!! run: rustup target add $_t" >&2; exit 1; }
  done
}

need_nightly() {
  command -v rustup >/dev/null 2>&1 || {
    echo "!! rustup not found; install it (https://rustup.rs), then: rustup toolchain install nightly --profile minimal" >&2
    exit 1
  }
  if ! rustup run nightly rustc -V >/dev/null 2>&1; then
    echo "== installing the nightly toolchain" >&2
    rustup toolchain install nightly --profile minimal ||
      { echo "!! run: rustup toolchain install nightly --profile minimal" >&2; exit 1; }
  fi
  [ $# -gt 0 ] || return 0
  rustup +nightly component add "$@" >/dev/null ||
    { echo "!! run: rustup +nightly component add $*" >&2; exit 1; }
}
