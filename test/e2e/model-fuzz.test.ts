// Model-based fuzz of the mounted filesystem (issue 9): fast-check generates programs of
// open, read, pread, write, pwrite, lseek, truncate, ftruncate, rename, unlink, fsync,
// fdatasync, stat, fstat, close and listings (names, then each one's lstat, as ls -l) over
// a few files (a, b, c, the directory d and d/e), by two processes that keep their files
// open across steps. fixtures/fs-program.py runs a batch of them, steps in the program's
// order (so one process reads what the other wrote a step earlier, while that write may
// still be "behind" in the agent), once locally and once through outrun, in sibling
// directories; every step's result, the tree as the programs saw it at the end and the
// tree on the local disk after the run must be the same both ways. Timestamps, inode
// numbers, link counts, st_blocks, directory sizes and offsets are not compared.
//
// An outrun session costs about a second to start, so each fast-check run is one session
// with a batch of programs. On a difference the program that differed is run alone and
// fast-check shrinks it (one session per candidate); the failure prints the smallest
// program found, step by step and as JSON, with its first differing line.
//
// Environment:
//   OUTRUN_FUZZ_RUNS      outrun sessions (batches of programs) to try; default 24 (1-2 min)
//   OUTRUN_FUZZ_BATCH     programs per session, at most; default 12
//   OUTRUN_FUZZ_SEED      fast-check's seed (printed at the start: the same seed, the same batches)
//   OUTRUN_FUZZ_PROGRAM   a file with one program's JSON (as a failure prints it): run and shrink it
//   OUTRUN_FUZZ_SHRINK_MS time spent shrinking a failure, at most; default 5 min
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as fc from 'fast-check';
import { batchArb, describeProgram, programArb, type Program } from './fs-program';
import { REGRESSIONS } from './fs-program-regressions';
import { ROOT, onBox, waitBoxClean } from './harness';

const EXECUTOR = path.join(ROOT, 'test/e2e/fixtures/fs-program.py');
// The system's python (in the trees the agent keeps between runs), not a shim on PATH: the
// same interpreter both ways, and quick to start through outrun.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const RUNS = Number(process.env.OUTRUN_FUZZ_RUNS ?? 24);
const BATCH = Number(process.env.OUTRUN_FUZZ_BATCH ?? 12);
const SEED = Number(process.env.OUTRUN_FUZZ_SEED ?? Date.now() % 2 ** 31);
const REPLAY = process.env.OUTRUN_FUZZ_PROGRAM;
const SHRINK_MS = Number(process.env.OUTRUN_FUZZ_SHRINK_MS ?? 5 * 60_000);
const SESSION_TIMEOUT_MS = 180_000;
interface ProgramResult {
  log: string[];
  tree: string[];
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').slice(0, 16);

/** The tree under `top` on the local disk, one line per entry, in fs-program.py's terms. */
function diskTree(top: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(path.join(top, rel)).sort()) {
    const p = path.join(rel, name);
    const st = lstatSync(path.join(top, p));
    if (st.isDirectory()) {
      out.push(`${p} dir`, ...diskTree(top, p));
    } else {
      const data = st.isFile() ? readFileSync(path.join(top, p)) : Buffer.alloc(0);
      out.push(`${p} ${st.isFile() ? 'file' : 'other'} size=${st.size} mode=${(st.mode & 0o7777).toString(8)} ${data.length}:${sha(data)}`);
    }
  }
  return out;
}

function runLocally(cwd: string, input: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [EXECUTOR], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(input);
  });
}

/** The first line where two lists differ, or undefined. */
function firstDifference(a: string[], b: string[]): number | undefined {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if (a[i] !== b[i]) return i;
  return undefined;
}

/** A program of a batch gave another result through outrun. */
class ProgramDifference extends Error {
  constructor(
    readonly index: number,
    readonly program: Program,
    message: string,
  ) {
    super(message);
  }
}

function report(program: Program, index: number, what: string, local: string[], remote: string[], at: number): ProgramDifference {
  return new ProgramDifference(index, program, [
    `program ${index} differs (${what}, line ${at + 1}):`,
    `  local:  ${local[at] ?? '(nothing)'}`,
    `  outrun: ${remote[at] ?? '(nothing)'}`,
    'program:',
    ...describeProgram(program).map((l) => `  ${l}`),
    `${what}, locally:`,
    ...local.map((l) => `  ${l}`),
    `${what}, through outrun:`,
    ...remote.map((l) => `  ${l}`),
  ].join('\n'));
}

const stats = { sessions: 0, programs: 0, steps: 0, ok: 0 };

/** Runs the batch both ways; throws naming the first program that differs. */
async function checkBatch(batch: Program[]): Promise<void> {
  const base = mkdtempSync(path.join(tmpdir(), 'outrun-model-fuzz-'));
  try {
    const localDir = path.join(base, 'L');
    const remoteDir = path.join(base, 'R');
    mkdirSync(localDir);
    mkdirSync(remoteDir);
    const input = JSON.stringify({ programs: batch });
    const [local, remote] = await Promise.all([
      runLocally(localDir, input),
      onBox([PYTHON, EXECUTOR], { cwd: remoteDir, input, timeoutMs: SESSION_TIMEOUT_MS }),
    ]);
    if (local.status !== 0) throw new Error(`fs-program.py failed locally (${local.status}): ${local.stderr}`);
    if (remote.status !== 0) {
      throw new Error(`fs-program.py failed through outrun (status ${remote.status}, signal ${remote.signal}): ${remote.stderr}`);
    }
    const ours = (JSON.parse(local.stdout) as { programs: ProgramResult[] }).programs;
    const theirs = (JSON.parse(remote.stdout.toString('utf8')) as { programs: ProgramResult[] }).programs;
    stats.sessions++;
    batch.forEach((program, i) => {
      const [l, r] = [ours[i]!, theirs[i]!];
      const logAt = firstDifference(l.log, r.log);
      if (logAt !== undefined) throw (report(program, i, 'step results', l.log, r.log, logAt));
      const treeAt = firstDifference(l.tree, r.tree);
      if (treeAt !== undefined) throw (report(program, i, 'tree seen at the end', l.tree, r.tree, treeAt));
      const [ld, rd] = [diskTree(path.join(localDir, `p${i}`)), diskTree(path.join(remoteDir, `p${i}`))];
      const diskAt = firstDifference(ld, rd);
      if (diskAt !== undefined) throw (report(program, i, 'tree on the local disk after the run', ld, rd, diskAt));
      stats.programs++;
      stats.steps += program.steps.length;
      stats.ok += l.log.filter((line) => !/-> (.*; )?(E[A-Z]+|nofd)$/.test(line)).length;
    });
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

/**
 * Shrinks a program that differed: fast-check starts from it (it can, the arbitraries have
 * no map) and keeps the smallest that still differs. Each candidate is an outrun session:
 * past SHRINK_MS, later candidates are taken as passing and the smallest found is kept.
 */
async function shrink(program: Program): Promise<fc.RunDetails<[Program]>> {
  const t0 = Date.now();
  return fc.check(
    fc.asyncProperty(programArb, async (p) => {
      if (Date.now() - t0 > SHRINK_MS) return;
      await checkBatch([p]);
    }),
    { examples: [[program]], numRuns: 1 },
  );
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));
const replayHint = (program: Program) =>
  `as JSON (replay: put it in a file, OUTRUN_FUZZ_PROGRAM=<file>):\n${JSON.stringify(program)}`;

function failure(details: fc.RunDetails<[Program]>, context: string): Error {
  const [program] = details.counterexample!;
  return new Error([`model fuzz: ${context}; shrunk ${details.numShrinks} times to:`, messageOf(details.errorInstance), replayHint(program)].join('\n'));
}

/** Runs a program alone, up to `tries` times (a difference may need a timing): the first difference. */
async function failsAlone(program: Program, tries: number): Promise<unknown> {
  for (let i = 0; i < tries; i++) {
    try {
      await checkBatch([program]);
    } catch (err) {
      return err;
    }
  }
  return undefined;
}

/** Runs the regressions, then RUNS batches; a failure comes back as the program that differed. */
async function fuzzBatches(): Promise<{ program: Program; error: unknown } | undefined> {
  const details = await fc.check(fc.asyncProperty(batchArb(BATCH), checkBatch), {
    seed: SEED,
    numRuns: RUNS + 1,
    examples: [[REGRESSIONS]],
    endOnFailure: true,
  });
  if (!details.failed) return undefined;
  const err = details.errorInstance;
  if (err instanceof ProgramDifference) return { program: err.program, error: err };
  // The session as a whole failed (fs-program.py or outrun): find a program that fails alone.
  const [batch] = details.counterexample!;
  for (const program of batch) {
    const error = await failsAlone(program, 1);
    if (error !== undefined) return { program, error };
  }
  throw new Error(`model fuzz: seed ${SEED}: a batch failed, but none of its programs alone:\n${messageOf(err)}\n${JSON.stringify(batch)}`);
}

test('random programs of two processes give the same results and files through outrun as locally', { timeout: 60 * 60_000 }, async () => {
  const t0 = Date.now();
  let found: { program: Program; error: unknown } | undefined;
  if (REPLAY) {
    found = { program: JSON.parse(readFileSync(REPLAY, 'utf8')) as Program, error: undefined };
  } else {
    console.log(`model fuzz: seed ${SEED}, ${RUNS} sessions of up to ${BATCH} programs (OUTRUN_FUZZ_SEED=${SEED} replays)`);
    found = await fuzzBatches();
  }
  console.log(`model fuzz: ${JSON.stringify(stats)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  if (found) {
    const context = REPLAY ? `replay of ${REPLAY}` : `seed ${SEED}`;
    const alone = await failsAlone(found.program, 3);
    if (alone !== undefined) {
      const details = await shrink(found.program);
      if (details.failed) throw failure(details, context);
      // It differs only now and then: what it did when it differed.
      throw new Error(`model fuzz: ${context}; differs, but not on every run (not shrunk):\n${messageOf(alone)}\n${replayHint(found.program)}`);
    }
    if (!REPLAY) {
      throw new Error(`model fuzz: ${context}; a program differed in its batch but not in 3 runs alone:\n${messageOf(found.error)}\n${replayHint(found.program)}`);
    }
    console.log(`model fuzz: ${REPLAY} gave the same results in 3 runs`);
  }
  const left = await waitBoxClean();
  if (left) throw new Error(`left on the box: ${left}`);
});
