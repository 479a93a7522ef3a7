#!/usr/bin/env bash
# Builds the native addons and prints their paths: the agent's FUSE addon
# (src/remote/fuse-addon/*.c -> dist/runtime-addon/fuse-kernel.node, shipped to remotes) and
# the local file server's (src/client/local-addon/*.c -> dist/local-addon/local-fs.node). Needs gcc; the N-API headers come
# from the node-api-headers package (a dev dependency), so no node-gyp or Python is involved.
#
#   scripts/build-addon.sh                    both addons, for this machine
#   CC=aarch64-linux-gnu-gcc scripts/build-addon.sh --fuse-only OUT
#                                             only the FUSE addon, with CC (a cross gcc), into OUT:
#                                             the runtime for a remote of another architecture
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cc="${CC:-gcc}"
headers="$root/node_modules/node-api-headers/include"

fail() { echo "build-addon: $*" >&2; exit 1; }
command -v "$cc" >/dev/null 2>&1 || fail "$cc not found: install gcc (Debian: apt-get install gcc libc6-dev)"
[[ -f "$headers/node_api.h" ]] || fail "N-API headers missing ($headers): run npm install"

build() { # build SRC_DIR OUT
  local src_dir="$1" out="$2" tmp
  mkdir -p "$(dirname "$out")"
  tmp="$(mktemp "$(dirname "$out")/.addon.XXXXXX")"
  # Symbols from node itself (napi_*) resolve when the addon is loaded. -s: it is shipped.
  if ! "$cc" -shared -fPIC -O2 -Wall -Wextra -Werror -s -pthread -DNAPI_VERSION=8 -I"$headers" \
    -o "$tmp" "$src_dir"/*.c; then
    rm -f "$tmp"
    fail "compiling $src_dir failed"
  fi
  chmod 0644 "$tmp"
  mv -f "$tmp" "$out"
  echo "$out"
}

case "${1:-}" in
  --fuse-only)
    [[ $# -eq 2 ]] || fail "usage: CC=CROSS-gcc $0 --fuse-only OUT"
    build "$root/src/remote/fuse-addon" "$2"
    ;;
  '')
    build "$root/src/remote/fuse-addon" "$root/dist/runtime-addon/fuse-kernel.node"
    build "$root/src/client/local-addon" "$root/dist/local-addon/local-fs.node"
    ;;
  *) fail "usage: $0 [--fuse-only OUT]" ;;
esac
