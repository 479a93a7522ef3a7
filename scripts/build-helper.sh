#!/usr/bin/env bash
# Builds the static outrun-helper (src/remote/helper/*.c) into dist/runtime-helper/outrun-helper
# (or into OUT, when given) and prints that path on stdout. Needs gcc and a static libc (Debian:
# gcc libc6-dev). CC may name another compiler (a cross gcc, for a remote of another
# architecture: CC=aarch64-linux-gnu-gcc scripts/build-helper.sh OUT); it gets the same flags.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src_dir="$root/src/remote/helper"
out="${1:-$root/dist/runtime-helper/outrun-helper}"
out_dir="$(dirname "$out")"
cc="${CC:-gcc}"

fail() { echo "build-helper: $*" >&2; exit 1; }

command -v "$cc" >/dev/null 2>&1 || fail "$cc not found: install gcc (Debian: apt-get install gcc libc6-dev)"
libc_a="$("$cc" -print-file-name=libc.a 2>/dev/null || true)"
[[ "$libc_a" == /* && -f "$libc_a" ]] ||
  fail "$cc has no static C library (libc.a): install it (Debian: apt-get install libc6-dev, or libc6-dev-arm64-cross for aarch64-linux-gnu-gcc)"

shopt -s nullglob
sources=("$src_dir"/*.c)
((${#sources[@]} > 0)) || fail "no C sources in $src_dir"

mkdir -p "$out_dir"
tmp="$(mktemp "$out_dir/.outrun-helper.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
# -s strips the symbol table: the binary is shipped to every remote.
"$cc" -static -O2 -Wall -Wextra -Werror -s -o "$tmp" "${sources[@]}" ||
  fail "compiling ${sources[*]#"$root"/} failed"
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "$out"
