// The programs of the model-based fuzz (model-fuzz.test.ts), as fixtures/fs-program.py
// runs them: their types, fast-check's arbitraries for them, and how a step is printed.
// The arbitraries use no map: fast-check can then shrink a program it did not generate
// itself (one found failing in a batch, or one given to replay).
import * as fc from 'fast-check';

const KiB = 1024;
const MiB = 1024 * KiB;

type Proc = 0 | 1;
type Name = 'a' | 'b' | 'c' | 'd' | 'd/e';
/** open(2)'s flags: the access mode and the O_ flags set. */
interface Flags {
  access: 'RDONLY' | 'WRONLY' | 'RDWR';
  creat: boolean;
  trunc: boolean;
  append: boolean;
  excl: boolean;
}
/** One step of a program, as fs-program.py reads it. */
export type Step = { p: Proc } & (
  | { op: 'open'; slot: number; name: Name; flags: Flags; mode: number }
  | { op: 'close' | 'fsync' | 'fdatasync' | 'fstat'; slot: number }
  | { op: 'read'; slot: number; size: number }
  | { op: 'pread'; slot: number; size: number; offset: number }
  | { op: 'write'; slot: number; size: number; seed: number }
  | { op: 'pwrite'; slot: number; size: number; offset: number; seed: number }
  | { op: 'seek'; slot: number; offset: number; whence: 'set' | 'cur' | 'end' }
  | { op: 'ftruncate'; slot: number; size: number }
  | { op: 'truncate'; name: Name; size: number }
  | { op: 'rename'; name: Name; to: Name }
  | { op: 'unlink' | 'stat'; name: Name }
  | { op: 'list'; dir: '.' | 'd' }
);
/** A file the program finds in place when it starts: `size` bytes from `seed`. */
interface InitialFile {
  size: number;
  seed: number;
}
export interface Program {
  files: Record<'a' | 'b' | 'c' | 'd/e', InitialFile | null>;
  steps: Step[];
}

// Sizes and offsets: small ones, ones around the page (4 KiB), FUSE's request size and the
// kernel's read size (128 KiB), the read-ahead's first window (256 KiB), anything up to
// 300 KiB, and rarely ones around the largest write-behind run and read-ahead window (4 MiB).
const around = (n: number) => fc.integer({ min: n - 2, max: n + 2 });
const sizeArb = fc.oneof(
  { weight: 6, arbitrary: fc.nat(64) },
  { weight: 6, arbitrary: around(4 * KiB) },
  { weight: 4, arbitrary: around(128 * KiB) },
  { weight: 2, arbitrary: around(256 * KiB) },
  { weight: 8, arbitrary: fc.nat(300 * KiB) },
  { weight: 1, arbitrary: around(4 * MiB) },
);
const offsetArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant(0) },
  { weight: 4, arbitrary: around(4 * KiB) },
  { weight: 3, arbitrary: around(128 * KiB) },
  { weight: 6, arbitrary: fc.nat(600 * KiB) },
  { weight: 1, arbitrary: around(4 * MiB) },
);
const procArb = fc.constantFrom<Proc>(0, 1);
const slotArb = fc.nat(2);
const nameArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant<Name>('a') },
  { weight: 3, arbitrary: fc.constant<Name>('b') },
  { weight: 2, arbitrary: fc.constant<Name>('c') },
  { weight: 2, arbitrary: fc.constant<Name>('d/e') },
  { weight: 1, arbitrary: fc.constant<Name>('d') },
);
const sometimes = (weightTrue: number, weightFalse: number) =>
  fc.oneof({ weight: weightTrue, arbitrary: fc.constant(true) }, { weight: weightFalse, arbitrary: fc.constant(false) });
const flagsArb: fc.Arbitrary<Flags> = fc.record({
  access: fc.constantFrom('RDONLY' as const, 'WRONLY' as const, 'RDWR' as const, 'RDWR' as const),
  creat: sometimes(2, 1),
  trunc: sometimes(1, 3),
  append: sometimes(1, 3),
  excl: sometimes(1, 8),
});
const seedArb = fc.nat(1_000_000);

const fdOp = <O extends 'close' | 'fsync' | 'fdatasync' | 'fstat'>(op: O) => fc.record({ p: procArb, op: fc.constant(op), slot: slotArb });
const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ p: procArb, op: fc.constant('open' as const), slot: slotArb, name: nameArb, flags: flagsArb, mode: fc.constantFrom(0o644, 0o600, 0o755, 0o444) }) },
  { weight: 1, arbitrary: fdOp('close') },
  { weight: 3, arbitrary: fc.record({ p: procArb, op: fc.constant('read' as const), slot: slotArb, size: sizeArb }) },
  { weight: 3, arbitrary: fc.record({ p: procArb, op: fc.constant('pread' as const), slot: slotArb, size: sizeArb, offset: offsetArb }) },
  { weight: 4, arbitrary: fc.record({ p: procArb, op: fc.constant('write' as const), slot: slotArb, size: sizeArb, seed: seedArb }) },
  { weight: 3, arbitrary: fc.record({ p: procArb, op: fc.constant('pwrite' as const), slot: slotArb, size: sizeArb, offset: offsetArb, seed: seedArb }) },
  { weight: 1, arbitrary: fc.record({ p: procArb, op: fc.constant('seek' as const), slot: slotArb, offset: fc.oneof(offsetArb, fc.integer({ min: -5000, max: 5000 })), whence: fc.constantFrom('set' as const, 'cur' as const, 'end' as const) }) },
  { weight: 2, arbitrary: fc.record({ p: procArb, op: fc.constant('ftruncate' as const), slot: slotArb, size: sizeArb }) },
  { weight: 1, arbitrary: fc.record({ p: procArb, op: fc.constant('truncate' as const), name: nameArb, size: sizeArb }) },
  { weight: 2, arbitrary: fc.record({ p: procArb, op: fc.constant('rename' as const), name: nameArb, to: nameArb }) },
  { weight: 2, arbitrary: fc.record({ p: procArb, op: fc.constant('unlink' as const), name: nameArb }) },
  { weight: 1, arbitrary: fdOp('fsync') },
  { weight: 1, arbitrary: fdOp('fdatasync') },
  { weight: 2, arbitrary: fc.record({ p: procArb, op: fc.constant('stat' as const), name: nameArb }) },
  { weight: 2, arbitrary: fdOp('fstat') },
  { weight: 2, arbitrary: fc.record({ p: procArb, op: fc.constant('list' as const), dir: fc.constantFrom('.' as const, 'd' as const) }) },
);
const initialFileArb = fc.option(fc.record({ size: sizeArb, seed: seedArb }), { freq: 2 });
export const programArb: fc.Arbitrary<Program> = fc.record({
  files: fc.record({ a: initialFileArb, b: initialFileArb, c: initialFileArb, 'd/e': initialFileArb }),
  steps: fc.array(stepArb, { minLength: 1, maxLength: 40, size: 'max' }),
});
/** Programs for one outrun session. */
export const batchArb = (maxPrograms: number) => fc.array(programArb, { minLength: 1, maxLength: maxPrograms, size: 'max' });

/** The program as lines: its initial files, then its steps, numbered as in the logs. */
export function describeProgram(program: Program): string[] {
  return [
    `files: ${Object.entries(program.files).flatMap(([name, f]) => (f ? [`${name} size=${f.size} seed=${f.seed}`] : [])).join(', ') || 'none'}`,
    ...program.steps.map((s, i) => `${i} ${describeStep(s)}`),
  ];
}

const flagNames = (f: Flags) =>
  [f.access, ...(['creat', 'trunc', 'append', 'excl'] as const).filter((k) => f[k]).map((k) => k.toUpperCase())].join('|');

/** A step as one readable line, e.g. `p1 pwrite slot=0 size=4096 offset=0 seed=17`. */
export function describeStep(s: Step): string {
  const args = Object.entries(s)
    .filter(([k]) => k !== 'p' && k !== 'op')
    .map(([k, v]) => `${k}=${k === 'flags' ? flagNames(v as Flags) : k === 'mode' ? (v as number).toString(8) : v}`);
  return [`p${s.p}`, s.op, ...args].join(' ');
}
