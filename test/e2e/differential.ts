// Differential runs for the end-to-end suite: the same shell cases run once locally and
// once through outrun, each case in its own directory of two sibling trees (local/ and
// remote/), on the same inputs; then everything they produced is compared: exit status,
// stdout, stderr and the resulting tree (type, size, mode, link count and sha256 of every
// file, the target of every symlink).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { lstat, opendir, readlink } from 'node:fs/promises';
import * as path from 'node:path';
import { RunResult, onBox } from './harness';

export interface Case {
  name: string;
  /**
   * sh script, run with the case's own directory as cwd; $IN names the shared inputs. A
   * step that fails prints a line with FAILED (background jobs cannot set the status).
   */
  script: string;
  /** Paths (relative to the case directory) left out of the tree comparison; say why where used. */
  ignore?: RegExp;
  /** Also compare modification times, in whole seconds (for tools that preserve them). */
  mtimes?: boolean;
}

export interface CaseResult {
  status: string;
  stdout: string;
  stderr: string;
  /** How long the case took (not compared: only to see where the time goes). */
  ms: number;
}

export interface DifferentialRun {
  base: string;
  local: Map<string, CaseResult>;
  remote: Map<string, CaseResult>;
  /** The local `sh` that ran the driver, and the outrun session that ran it. */
  localDriver: RunResult;
  session: RunResult;
}

const SIDES = ['local', 'remote'] as const;

// One driver for both sides: each case runs in a fresh directory below the side's tree;
// its stdout, stderr and status go to logs beside (not inside) that tree.
const DRIVER = `umask 022
side=$1; shift
for c in "$@"; do
  mkdir "$BASE/$side/$c"
  start=$(date +%s%N)
  (cd "$BASE/$side/$c" && exec sh "$BASE/cases/$c.sh") > "$BASE/logs-$side/$c.out" 2> "$BASE/logs-$side/$c.err"
  echo $? > "$BASE/logs-$side/$c.status"
  echo $(( ($(date +%s%N) - start) / 1000000 )) > "$BASE/logs-$side/$c.ms"
done
`;

function runLocal(argv: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    child.on('error', reject);
    child.on('close', (status, signal) => resolve({ status, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/**
 * Runs `cases` in `base` (which must exist): all locally with /bin/sh, and all in one outrun
 * session. The outputs name the side's own directory as <cwd> on both sides.
 */
export async function runDifferential(base: string, cases: Case[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<DifferentialRun> {
  mkdirSync(path.join(base, 'cases'));
  for (const c of cases) writeFileSync(path.join(base, 'cases', `${c.name}.sh`), c.script);
  writeFileSync(path.join(base, 'driver.sh'), DRIVER);
  for (const side of SIDES) {
    mkdirSync(path.join(base, side));
    mkdirSync(path.join(base, `logs-${side}`));
  }
  const names = cases.map((c) => c.name);
  const fullEnv = { ...env, BASE: base };
  const argv = (side: string) => ['/bin/sh', path.join(base, 'driver.sh'), side, ...names];
  // Both at once: the local run is short, and wall time is what the suite has least of.
  const [localDriver, session] = await Promise.all([
    runLocal(argv('local'), fullEnv, path.join(base, 'local')),
    onBox(argv('remote'), { cwd: path.join(base, 'remote'), env: fullEnv, timeoutMs }),
  ]);
  const logs = (side: string) => {
    const dir = path.join(base, `logs-${side}`);
    const cwdPath = path.join(base, side);
    const read = (c: string, ext: string) => {
      try {
        return readFileSync(path.join(dir, `${c}.${ext}`), 'utf8').split(cwdPath).join('<cwd>');
      } catch {
        return `(no ${ext}: the case did not run)`;
      }
    };
    const result = (c: string) => ({ status: read(c, 'status').trim(), stdout: read(c, 'out'), stderr: read(c, 'err'), ms: Number(read(c, 'ms')) });
    return new Map(names.map((c) => [c, result(c)]));
  };
  return { base, local: logs('local'), remote: logs('remote'), localDriver, session };
}

/** What the tree comparison records of one entry. */
export interface Entry {
  type: 'file' | 'dir' | 'symlink' | 'other';
  mode: string;
  size?: number;
  nlink?: number;
  sha256?: string;
  target?: string;
  mtime?: number;
}

/** Streams the file through sha256: some inputs are sparse files of several GiB. */
function sha256File(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file, { highWaterMark: 1 << 20 })
      .on('data', (d) => h.update(d))
      .on('error', reject)
      .on('end', () => resolve(h.digest('hex')));
  });
}

/** Every entry below `root`, by path relative to it ('' is root itself, not listed). */
export async function manifest(root: string, opts: { ignore?: RegExp; mtimes?: boolean } = {}): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const walk = async (rel: string): Promise<void> => {
    const dir = await opendir(path.join(root, rel));
    const names: string[] = [];
    for await (const d of dir) names.push(d.name);
    for (const name of names.sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (opts.ignore?.test(r)) continue;
      const abs = path.join(root, r);
      const st = await lstat(abs);
      const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
      const mtime = opts.mtimes ? Math.floor(st.mtimeMs / 1000) : undefined;
      if (st.isDirectory()) {
        out.set(r, { type: 'dir', mode, mtime });
        await walk(r);
      } else if (st.isFile()) {
        out.set(r, { type: 'file', mode, size: st.size, nlink: st.nlink, sha256: await sha256File(abs), mtime });
      } else if (st.isSymbolicLink()) {
        out.set(r, { type: 'symlink', mode, target: await readlink(abs) });
      } else {
        out.set(r, { type: 'other', mode, size: st.size });
      }
    }
  };
  await walk('');
  return out;
}

/** Each difference between two manifests as one line: which path, what differs. */
export function treeDifferences(local: Map<string, Entry>, remote: Map<string, Entry>): string[] {
  const lines: string[] = [];
  for (const [p, l] of local) {
    const r = remote.get(p);
    if (!r) {
      lines.push(`${p}: only locally (${l.type})`);
      continue;
    }
    const fields = Object.keys({ ...l, ...r }) as (keyof Entry)[];
    const diffs = fields.filter((f) => l[f] !== r[f]).map((f) => `${f} ${l[f]} locally, ${r[f]} through outrun`);
    if (diffs.length) lines.push(`${p}: ${diffs.join('; ')}`);
  }
  for (const [p, r] of remote) if (!local.has(p)) lines.push(`${p}: only through outrun (${r.type})`);
  return lines;
}

/** Asserts that the case did the same both ways: status, stdout, stderr and its tree. */
export async function assertSameCase(run: DifferentialRun, c: Case): Promise<void> {
  const l = run.local.get(c.name);
  const r = run.remote.get(c.name);
  assert.ok(l && r, `case ${c.name} ran`);
  const show = (x: CaseResult) => `status ${x.status}\nstdout:\n${x.stdout.slice(0, 4000)}\nstderr:\n${x.stderr.slice(0, 4000)}`;
  const wrongLocally = l.status !== '0' || l.stdout.includes('FAILED');
  assert.ok(!wrongLocally, `case ${c.name} failed locally (the case itself is wrong):\n${show(l)}`);
  assert.equal(r.status, l.status, `case ${c.name}: exit status\nthrough outrun: ${show(r)}`);
  assert.equal(r.stderr, l.stderr, `case ${c.name}: stderr`);
  assert.equal(r.stdout, l.stdout, `case ${c.name}: stdout`);
  const opts = { ignore: c.ignore, mtimes: c.mtimes };
  const [lt, rt] = await Promise.all(SIDES.map((s) => manifest(path.join(run.base, s, c.name), opts)));
  const diffs = treeDifferences(lt, rt);
  assert.deepEqual(diffs.slice(0, 50), [], `case ${c.name}: ${diffs.length} differences in the resulting tree`);
}
