// Programs the model fuzz (model-fuzz.test.ts) once found differing, shrunk by hand: they
// run first in every fuzz run, as one batch, so that a fix that comes undone shows at once.
import type { Program, Step } from './fs-program';

const none = { a: null, b: null, c: null, 'd/e': null };
const flags = (access: 'RDONLY' | 'WRONLY' | 'RDWR', creat = false) => ({ access, creat, trunc: false, append: false, excl: false });
const open = (p: 0 | 1, slot: number, name: 'a' | 'b' | 'c' | 'd/e', access: 'RDONLY' | 'WRONLY' | 'RDWR', creat = false): Step => ({
  p,
  op: 'open',
  slot,
  name,
  flags: flags(access, creat),
  mode: 0o644,
});

export const REGRESSIONS: Program[] = [
  // Creating b lists the directory while a's write is still behind: fstat a gave size 0.
  {
    files: none,
    steps: [open(0, 0, 'a', 'WRONLY', true), { p: 0, op: 'write', slot: 0, size: 10, seed: 1 }, open(0, 1, 'b', 'WRONLY', true), { p: 0, op: 'fstat', slot: 0 }],
  },
  // The listing of . brings d's along, with d/e's size from before its write: fstat gave 0.
  {
    files: none,
    steps: [open(0, 0, 'd/e', 'WRONLY', true), { p: 0, op: 'write', slot: 0, size: 10, seed: 1 }, { p: 1, op: 'list', dir: '.' }, { p: 0, op: 'fstat', slot: 0 }],
  },
  // The second open comes from the content cache; after the unlink its read gave ENOENT.
  {
    files: { ...none, a: { size: 100, seed: 1 } },
    steps: [open(0, 0, 'a', 'RDONLY'), { p: 0, op: 'close', slot: 0 }, open(0, 0, 'a', 'RDONLY'), { p: 1, op: 'unlink', name: 'a' }, { p: 0, op: 'pread', slot: 0, size: 42, offset: 0 }],
  },
  // The same handle, its file renamed and then written: the read reopened the old name.
  {
    files: { ...none, a: { size: 100, seed: 1 } },
    steps: [
      open(0, 0, 'a', 'RDONLY'),
      { p: 0, op: 'close', slot: 0 },
      open(0, 0, 'a', 'RDONLY'),
      { p: 1, op: 'rename', name: 'a', to: 'c' },
      open(1, 0, 'c', 'WRONLY'),
      { p: 1, op: 'write', slot: 0, size: 10, seed: 5 },
      { p: 0, op: 'pread', slot: 0, size: 42, offset: 0 },
    ],
  },
  // p1's write was still gathering in the agent when p0 wrote over it; p0 closed first, its
  // run went first, and p1's landed on top of it at the end.
  {
    files: none,
    steps: [
      open(1, 0, 'a', 'RDWR', true),
      open(0, 0, 'a', 'RDWR'),
      { p: 1, op: 'write', slot: 0, size: 100, seed: 1 },
      { p: 0, op: 'pwrite', slot: 0, size: 50, offset: 0, seed: 2 },
    ],
  },
];
