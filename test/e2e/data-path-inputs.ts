// The inputs of the data-path suite, made once per run: random (incompressible) files of
// every size the design has a bound at, a tree of mixed sizes, and sparse files whose data
// sits across the 2 GiB and 4 GiB offsets.
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, ftruncateSync, linkSync, mkdirSync, openSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import * as path from 'node:path';

const K = 1024;
const M = 1024 * K;
const G = 1024 * M;

/**
 * Sizes of input/sized/<name>: 0, 1, a page, the 64 KiB a file comes whole with its open,
 * the kernel's 128 KiB requests, the first 256 KiB read-ahead window, the 4 MiB write runs
 * and read-ahead windows, the 8 MiB whole-file cache, the 16 MiB per request, the 64 MiB of
 * writes waiting, and 100 MiB; each bound also one byte either side.
 */
export const SIZES: [string, number][] = [
  ['0B', 0],
  ['1B', 1],
  ['4095B', 4095],
  ['4096B', 4096],
  ['4097B', 4097],
  ['64K-1', 64 * K - 1],
  ['64K+1', 64 * K + 1],
  ['128K-1', 128 * K - 1],
  ['128K', 128 * K],
  ['128K+1', 128 * K + 1],
  ['256K+1', 256 * K + 1],
  ['4M-1', 4 * M - 1],
  ['4M', 4 * M],
  ['4M+1', 4 * M + 1],
  ['8M', 8 * M],
  ['8M+1', 8 * M + 1],
  ['16M+1', 16 * M + 1],
  ['64M-1', 64 * M - 1],
  ['64M', 64 * M],
  ['64M+1', 64 * M + 1],
  ['100M', 100 * M],
];

/** Modes of the sized inputs, in turn: cp and friends carry them over (less the umask). */
const MODES = [0o644, 0o755, 0o600, 0o640, 0o444];

/** input/sparse-2G: apparent size just past 2^31; data at the start, across 2^31, at the end. */
export const SPARSE_2G = { size: 2 * G + 128 * K + 1, blocks: [[0, 4095], [G - 100, 200], [2 * G - 32 * K, 64 * K], [2 * G + 64 * K, 4 * K], [2 * G + 128 * K - 3000, 3001]] };
/** input/sparse-4G: past 2^32, data across 2^31 and 2^32 and at the end; only ever read in parts. */
export const SPARSE_4G = { size: 4 * G + 4097, blocks: [[2 * G - 32 * K, 64 * K], [4 * G - 32 * K, 36 * K], [4 * G + 4097 - 100, 100]] };

function sparseFile(file: string, spec: { size: number; blocks: number[][] }) {
  const fd = openSync(file, 'w', 0o644);
  try {
    ftruncateSync(fd, spec.size);
    for (const [offset, length] of spec.blocks) writeSync(fd, randomBytes(length), 0, length, offset);
  } finally {
    closeSync(fd);
  }
}

/** A small deterministic generator, so the tree's shape is the same every run (its bytes are random). */
function prng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/**
 * input/tree: ~330 files in nested directories, mostly small, some of 100 KiB to 1 MiB, a few of 2 to 5 MiB, with
 * varied modes, an empty directory, symlinks (relative, absolute, dangling), a hard link
 * pair and names with spaces and non-ASCII (UTF-8) characters.
 */
function tree(root: string) {
  const rand = prng(9);
  mkdirSync(root);
  const dirs = [''];
  for (let i = 0; i < 24; i++) {
    const parent = dirs[Math.floor(rand() * dirs.length)];
    const d = path.join(parent, `dir-${i}`);
    mkdirSync(path.join(root, d));
    dirs.push(d);
  }
  for (let i = 0; i < 330; i++) {
    const r = rand();
    const size = r < 0.02 ? 0 : r < 0.9 ? Math.floor(rand() * 12 * K) : r < 0.99 ? 100 * K + Math.floor(rand() * M) : 2 * M + Math.floor(rand() * 3 * M);
    const file = path.join(root, dirs[i % dirs.length], `file-${i}${i % 7 === 0 ? '.bin' : '.txt'}`);
    writeFileSync(file, randomBytes(size));
    chmodSync(file, i % 11 === 0 ? 0o755 : i % 13 === 0 ? 0o600 : i % 17 === 0 ? 0o444 : 0o644);
  }
  writeFileSync(path.join(root, 'name with spaces'), randomBytes(1000));
  writeFileSync(path.join(root, dirs[2], 'café-ünïcödé-名前'), randomBytes(3000));
  mkdirSync(path.join(root, 'empty'));
  symlinkSync('dir-0/file-1.txt', path.join(root, 'link-relative'));
  symlinkSync(path.join(root, 'name with spaces'), path.join(root, 'link-absolute'));
  symlinkSync('does-not-exist', path.join(root, 'link-dangling'));
  linkSync(path.join(root, 'file-0.bin'), path.join(root, dirs[5], 'hard-link-to-file-0'));
  chmodSync(path.join(root, dirs[3]), 0o700);
  chmodSync(path.join(root, dirs[4]), 0o750);
}

/** Writes all the inputs into `dir` (which must exist). */
export function makeInputs(dir: string) {
  mkdirSync(path.join(dir, 'sized'));
  SIZES.forEach(([name, size], i) => {
    const file = path.join(dir, 'sized', name);
    writeFileSync(file, randomBytes(size));
    chmodSync(file, MODES[i % MODES.length]);
  });
  sparseFile(path.join(dir, 'sparse-2G'), SPARSE_2G);
  sparseFile(path.join(dir, 'sparse-4G'), SPARSE_4G);
  tree(path.join(dir, 'tree'));
}
