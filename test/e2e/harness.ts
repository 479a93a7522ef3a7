// Shared pieces of the end-to-end suite: run the built outrun against the project's test
// box (scripts/testbox, started by scripts/run-tests.mjs), and look at the box directly
// with the system's OpenSSH client.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';

export const ROOT = path.resolve(__dirname, '../../..');
export const CLI = path.join(ROOT, 'dist/src/client/cli.js');
export const SSH_CONFIG = path.join(ROOT, '.testbox/ssh_config');

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  input?: Buffer | string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Run outrun as this local user (via runuser), not as root. */
  user?: string;
  timeoutMs?: number;
}

/** Runs `outrun -F .testbox/ssh_config <args>` and collects everything it printed. */
export function outrun(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const argv = [CLI, ...args];
  const [cmd, cmdArgs] = opts.user
    ? ['runuser', ['-u', opts.user, '--', process.execPath, ...argv]]
    : [process.execPath, argv];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, cmdArgs as string[], {
      cwd: opts.cwd ?? ROOT,
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** `outrun -F .testbox/ssh_config box <command...>` */
export const onBox = (command: string[], opts: RunOptions = {}) => outrun(['-F', SSH_CONFIG, 'box', ...command], opts);

/** Runs a shell command on the box (or another test box's `host`) with the system's ssh (not through outrun). */
export function boxShell(script: string, host = 'box'): string {
  const r = spawnSync('ssh', ['-F', SSH_CONFIG, '-o', 'BatchMode=yes', host, script], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh ${host} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/**
 * What a finished session may have left on the box: FUSE mounts in any namespace,
 * processes of ours, session directories. Empty when the box is clean.
 */
export function boxLeftovers(host = 'box'): string {
  return boxShell(
    [
      'for p in /proc/[0-9]*; do',
      '  [ "${p#/proc/}" = "$$" ] && continue',
      '  grep -Eqs " - fuse(\\.[^ ]*)? " $p/mountinfo && echo "fuse mount in the namespace of pid ${p#/proc/}"',
      '  c=$(tr "\\0" " " < $p/cmdline 2>/dev/null)',
      '  case "$c" in *outrun-helper*|*agent.js*) echo "process ${p#/proc/}: $c";; esac',
      'done',
      'ls -A /run/outrun 2>/dev/null | sed "s/^/session dir left: /"',
      'true',
    ].join('\n'),
    host,
  ).trim();
}

/** Waits (bounded) until the box is clean: the agent ends just after outrun returns. */
/** Asks `what` (what is left: '' when nothing) every `stepMs` until it says '' or `ms` passed; its last answer. */
export async function waitEmpty(what: () => string, ms: number, stepMs = 200): Promise<string> {
  const deadline = Date.now() + ms;
  let left = what();
  while (left && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, stepMs));
    left = what();
  }
  return left;
}

export async function waitBoxClean(ms = 5000, host = 'box'): Promise<string> {
  let left = await waitEmpty(() => boxLeftovers(host), ms);
  // Why a relay stayed, in its own words (relay.ts keeps a log in its directory).
  if (left) left += `\n${boxShell('for f in /tmp/outrun-relay-*/log; do [ -f "$f" ] && sed "s|^|$f: |" "$f"; done; true', host).trim()}`;
  return left;
}

export const hasTestbox = () => existsSync(SSH_CONFIG);

/**
 * Starts `outrun -F .testbox/ssh_config <args>` in the background; `ready` resolves once the
 * command printed "ready" on stdout (rejects if outrun ends first). `exited` is outrun's exit
 * code, `ended` the code, the signal and the time since the start.
 */
export function startLongRun(args: string[]) {
  const child = spawn(process.execPath, [CLI, '-F', SSH_CONFIG, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const t0 = Date.now();
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, ms: Date.now() - t0 })),
  );
  const exited = ended.then((e) => e.code);
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('ready')) resolve();
    });
    child.on('exit', () => reject(new Error(`outrun ended before the command was ready: ${err}`)));
  });
  ready.catch(() => undefined);
  return { child, ready, exited, ended, out: () => out, stderr: () => err };
}
