#!/usr/bin/env bash
# Checks that a built Apple library holds every signpost string of the source in its
# `__TEXT,__oslogstring` section, as Apple's os_signpost macros place them (the log stores
# references into that section; Instruments resolves them from the binary).
#
#   scripts/check-oslogstring.sh LIB...   (rlibs or objects built with `--features signposts`)
#
# The expected strings are the `oslog_str!("...")` invocations in src/ (src/signpost.rs: the
# interval names and the format string), so a new name is checked as soon as it exists. Every
# `__oslogstring` section must be in segment `__TEXT` with type `S_CSTRING_LITERALS`, and each
# expected string must be one whole NUL-terminated entry of it. Uses llvm-readobj: the rustup
# component llvm-tools if installed, else the system's llvm-readobj, else it installs llvm-tools.
set -euo pipefail
cd "$(dirname "$0")/.."

[ $# -gt 0 ] || { echo "usage: $0 LIB..." >&2; exit 2; }

host=$(rustc -vV | sed -n 's/^host: //p')
rustup_readobj="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-readobj"
if [ -x "$rustup_readobj" ]; then
  readobj=$rustup_readobj
elif command -v llvm-readobj >/dev/null; then
  readobj=llvm-readobj
else
  rustup component add llvm-tools >/dev/null
  readobj=$rustup_readobj
fi

# The strings of the source: every non-comment `oslog_str!(` must have a plain literal argument.
code=$(grep -rh --include='*.rs' 'oslog_str!(' src/ | grep -vE '^\s*//' || true)
calls=$(grep -o 'oslog_str!(' <<<"$code" | wc -l)
mapfile -t expected < <(grep -oE 'oslog_str!\("[^"\\]*"\)' <<<"$code" | sed -E 's/^oslog_str!\("(.*)"\)$/\1/' | sort -u)
literal_calls=$(grep -oE 'oslog_str!\("[^"\\]*"\)' <<<"$code" | wc -l)
if [ "$calls" -eq 0 ] || [ "$calls" -ne "$literal_calls" ]; then
  echo "!! oslog_str!: $calls invocations in src/, $literal_calls with a plain string literal" >&2
  exit 1
fi

status=0
for lib in "$@"; do
  [ -f "$lib" ] || { echo "!! $lib: not found" >&2; exit 1; }
  # Segment and type of every __oslogstring section (one line per section).
  bad=$("$readobj" --sections "$lib" 2>/dev/null | awk '
    /^ *Name: / { name = $2 }
    /^ *Segment: / { seg = $2 }
    /^ *Type: / { if (name == "__oslogstring" && (seg != "__TEXT" || $2 != "CStringLiterals")) print seg "," name " type " $2 }')
  if [ -n "$bad" ]; then
    echo "!! $lib: __oslogstring sections outside __TEXT or not cstring_literals: $bad" >&2
    status=1
  fi
  found=$("$readobj" --string-dump=__oslogstring "$lib" 2>/dev/null | sed -nE 's/^\[ *[0-9a-f]+\] //p' | sort -u)
  missing=()
  for s in "${expected[@]}"; do
    grep -qxF -- "$s" <<<"$found" || missing+=("$s")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    printf '!! %s: __TEXT,__oslogstring lacks:' "$lib" >&2; printf ' "%s"' "${missing[@]}" >&2; echo >&2
    status=1
  else
    printf '%s: __TEXT,__oslogstring holds' "$lib"; printf ' "%s"' "${expected[@]}"; echo
  fi
done
exit $status
