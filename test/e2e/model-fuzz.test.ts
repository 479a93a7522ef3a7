// Model-based fuzz of the mounted filesystem (issue 9): fast-check generates programs of
// open, read, pread, write, pwrite, lseek, truncate, ftruncate, rename, unlink, fsync,
// fdatasync, stat, fstat and close over a few files (a, b, c, the directory d and d/e), by
// two processes that keep their files open across steps. fixtures/fs-program.py runs a
// batch of them, steps in the program's order (so one process reads what the other wrote a
// step earlier, while that write may still be "behind" in the agent), once locally and once
// through outrun, in sibling directories; every step's result, the tree as the programs saw
// it at the end and the tree on the local disk after the run must be the same both ways.
// Timestamps, inode numbers, link counts, st_blocks and directory sizes are not compared.
// On a difference fast-check shrinks the batch and the failure names the smallest program
// found, step by step, and its first differing line.
//
// Environment:
//   OUTRUN_FUZZ_RUNS  outrun sessions (batches of programs) to try; default 6 (~1 min)
//   OUTRUN_FUZZ_BATCH programs per session, at most; default 12
//   OUTRUN_FUZZ_SEED  fast-check's seed (printed at the start of every run)
//   OUTRUN_FUZZ_PATH  with the seed: replay the counterexample at this fast-check path
//   OUTRUN_FUZZ_SHRINK_MS time spent shrinking a failure, at most; default 5 min
import { test } from 'node:test';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as fc from 'fast-check';
import { batchArb, describeProgram, type Program } from './fs-program';
import { ROOT, onBox, waitBoxClean } from './harness';

const EXECUTOR = path.join(ROOT, 'test/e2e/fixtures/fs-program.py');
// The system's python (in the trees the agent keeps between runs), not a shim on PATH: the
// same interpreter both ways, and quick to start through outrun.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const RUNS = Number(process.env.OUTRUN_FUZZ_RUNS ?? 6);
const BATCH = Number(process.env.OUTRUN_FUZZ_BATCH ?? 12);
const SEED = Number(process.env.OUTRUN_FUZZ_SEED ?? Date.now() % 2 ** 31);
const REPLAY_PATH = process.env.OUTRUN_FUZZ_PATH;
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

function report(program: Program, index: number, what: string, local: string[], remote: string[], at: number): string {
  return [
    `program ${index} differs (${what}, line ${at + 1}):`,
    `  local:  ${local[at] ?? '(nothing)'}`,
    `  outrun: ${remote[at] ?? '(nothing)'}`,
    'program:',
    ...describeProgram(program).map((l) => `  ${l}`),
    `${what}, locally:`,
    ...local.map((l) => `  ${l}`),
    `${what}, through outrun:`,
    ...remote.map((l) => `  ${l}`),
  ].join('\n');
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
      if (logAt !== undefined) throw new Error(report(program, i, 'step results', l.log, r.log, logAt));
      const treeAt = firstDifference(l.tree, r.tree);
      if (treeAt !== undefined) throw new Error(report(program, i, 'tree seen at the end', l.tree, r.tree, treeAt));
      const [ld, rd] = [diskTree(path.join(localDir, `p${i}`)), diskTree(path.join(remoteDir, `p${i}`))];
      const diskAt = firstDifference(ld, rd);
      if (diskAt !== undefined) throw new Error(report(program, i, 'tree on the local disk after the run', ld, rd, diskAt));
      stats.programs++;
      stats.steps += program.steps.length;
      stats.ok += l.log.filter((line) => !/-> (.*; )?(E[A-Z]+|nofd)$/.test(line)).length;
    });
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

test('random programs of two processes give the same results and files through outrun as locally', { timeout: 60 * 60_000 }, async () => {
  console.log(`model fuzz: seed ${SEED}, ${RUNS} sessions of up to ${BATCH} programs (OUTRUN_FUZZ_SEED=${SEED} replays)`);
  // Shrinking runs one outrun session per candidate: past SHRINK_MS, later candidates are
  // taken as passing, so the smallest failure found by then is the one reported.
  let firstFailure: number | undefined;
  const property = fc.asyncProperty(batchArb(BATCH), async (batch) => {
    if (firstFailure !== undefined && Date.now() - firstFailure > SHRINK_MS) return;
    try {
      await checkBatch(batch);
    } catch (err) {
      firstFailure ??= Date.now();
      throw err;
    }
  });
  const t0 = Date.now();
  await fc.assert(property, {
    seed: SEED,
    numRuns: RUNS,
    ...(REPLAY_PATH ? { path: REPLAY_PATH } : {}),
    // Each run is an outrun session: the default report is enough, without verbose runs.
    verbose: fc.VerbosityLevel.None,
  });
  console.log(`model fuzz: ${JSON.stringify(stats)} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const left = await waitBoxClean();
  if (left) throw new Error(`left on the box: ${left}`);
});
