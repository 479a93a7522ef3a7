#!/usr/bin/env bash
# Builds the agent's FUSE addon (src/remote/fuse-addon/*.c) into
# dist/runtime-addon/fuse-kernel.node and prints that path. Needs gcc; the N-API headers come
# from the node-api-headers package (a dev dependency), so no node-gyp or Python is involved.
# CC may name another compiler (e.g. a cross gcc); it gets the same flags.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src_dir="$root/src/remote/fuse-addon"
out_dir="$root/dist/runtime-addon"
out="$out_dir/fuse-kernel.node"
cc="${CC:-gcc}"
headers="$root/node_modules/node-api-headers/include"

fail() { echo "build-addon: $*" >&2; exit 1; }
command -v "$cc" >/dev/null 2>&1 || fail "$cc not found: install gcc (Debian: apt-get install gcc libc6-dev)"
[[ -f "$headers/node_api.h" ]] || fail "N-API headers missing ($headers): run npm install"

mkdir -p "$out_dir"
tmp="$(mktemp "$out_dir/.fuse-kernel.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
# Symbols from node itself (napi_*) resolve when the addon is loaded. -s: it is shipped.
"$cc" -shared -fPIC -O2 -Wall -Wextra -Werror -s -pthread -DNAPI_VERSION=8 -I"$headers" \
  -o "$tmp" "$src_dir"/*.c || fail "compiling $src_dir failed"
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
trap - EXIT
echo "$out"
