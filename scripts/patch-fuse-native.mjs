// fuse-native 2.2.6 passes a utimens call's atime twice to JavaScript (fuse-native.c, the
// utimens dispatcher converts `l->atime` for both argument pairs), so every utimensat(2)
// through the mount set mtime = atime: `cp -p`, `tar x`, `rsync -t` lost modification times.
// Its prebuilt linux-x64 addon is used as shipped; this makes a copy with that one load fixed
// (offset of `atime` in the request struct, 0x68, becomes that of `mtime`, 0x70).
// The exact instruction sequence must be found once, or nothing is patched and the caller is
// told: a different build of the addon is never patched blindly.
import * as fs from 'node:fs';
import * as path from 'node:path';

// x86-64, in the utimens dispatcher after the path argument:
//   mov 0x68(%r13),%r14 ; lea 0x18(%r12),%rdx ; mov %rbx,%rdi ; mov %r14d,%esi ; call napi_create_uint32
//   lea 0x20(%r12),%rdx ; mov %r14,%rsi ; mov %rbx,%rdi ; shr $0x20,%rsi ; call napi_create_uint32
//   mov 0x68(%r13),%r13 <- should read 0x70 ; lea 0x28(%r12),%rdx
const BEFORE = [
  [0x4d, 0x8b, 0x75, 0x68, 0x49, 0x8d, 0x54, 0x24, 0x18, 0x48, 0x89, 0xdf, 0x44, 0x89, 0xf6, 0xe8],
  [0x49, 0x8d, 0x54, 0x24, 0x20, 0x4c, 0x89, 0xf6, 0x48, 0x89, 0xdf, 0x48, 0xc1, 0xee, 0x20, 0xe8],
  [0x4d, 0x8b, 0x6d, 0x68, 0x49, 0x8d, 0x54, 0x24, 0x28],
];
const CALL_TARGET = 4; // the rel32 of each `call`
const PATCH_AT = BEFORE[0].length + CALL_TARGET + BEFORE[1].length + CALL_TARGET + 3;

function matchesAt(buf, i) {
  let at = i;
  for (const [k, part] of BEFORE.entries()) {
    for (let j = 0; j < part.length; j++) if (buf[at + j] !== part[j]) return false;
    at += part.length + (k < BEFORE.length - 1 ? CALL_TARGET : 0);
  }
  return true;
}

/**
 * Returns the path of a fixed copy of `addon` (written under `outDir`), or null when the
 * addon is not the build this fix knows (then it is used as it is).
 */
export function patchedFuseAddon(addon, outDir) {
  const buf = fs.readFileSync(addon);
  const hits = [];
  for (let i = buf.indexOf(BEFORE[0][0]); i >= 0 && i < buf.length; i = buf.indexOf(BEFORE[0][0], i + 1)) {
    if (matchesAt(buf, i)) hits.push(i);
  }
  if (hits.length !== 1) return null;
  buf[hits[0] + PATCH_AT] = 0x70;
  const out = path.join(outDir, 'fuse-native-utimens-fixed.node');
  fs.mkdirSync(outDir, { recursive: true });
  if (!fs.existsSync(out) || !fs.readFileSync(out).equals(buf)) fs.writeFileSync(out, buf);
  return out;
}
