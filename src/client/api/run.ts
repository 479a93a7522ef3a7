// The library API: `run(options)` runs a command through outrun from a program (geto's use:
// offload work to a host or a pool) and resolves to how it ended. Each run is an outrun
// process of its own (cli.js), for the same reason a shell runs one: outrun serves the local
// files as its own process (the command's identity, working directory, environment, umask
// and limits are that process's) and owns its signals, so runs in one program must not
// share one. The CLI reports how the run ended on a pipe of its own (OUTRUN_REPORT_FD, see
// cli.ts), so the command's status (any number, 255 included) is never taken for outrun's
// failure. Only Node's own modules here (and pool-syntax.ts, likewise): the installed package ships these files as they are.
import { spawn, type ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { looksLikePool } from '../pool/pool-syntax';

export type StdioOption = 'inherit' | 'pipe' | 'ignore' | Readable | Writable;

export interface RunOptions {
  /** `host`, `user@host`, `ssh://user@host:port`, a pool (`2/box1,4/box2`, `:` for here) or `@NAME`. */
  destination: string;
  /** The command and its arguments. */
  argv: string[];
  /** The command's working directory (default this process's). */
  cwd?: string;
  /** The command's environment (default this process's). */
  env?: NodeJS.ProcessEnv;
  /** 'inherit' (default), 'pipe' (the handle's `stdin`), 'ignore' (empty), a stream, or the bytes themselves (a Buffer). */
  stdin?: 'inherit' | 'pipe' | 'ignore' | Readable | Buffer;
  /** 'inherit' (default), 'pipe' (collected into the result), 'ignore', or a stream to write to. */
  stdout?: 'inherit' | 'pipe' | 'ignore' | Writable;
  stderr?: 'inherit' | 'pipe' | 'ignore' | Writable;
  /** An ssh_config file, as -F. */
  configFile?: string;
  /** Milliseconds the whole run may take (--timeout: SIGTERM, then SIGKILL after killAfter). */
  timeout?: number;
  /** Milliseconds between the timeout's SIGTERM and its SIGKILL (--kill-after; default 10 s). */
  killAfter?: number;
  /** Aborting ends the command as SIGTERM to outrun does (the remote command gets it). */
  signal?: AbortSignal;
  /** More outrun options, before the destination (e.g. ['--no-chroot'], ['-o', 'ControlPersist=60']). */
  options?: string[];
}

export interface RunResult {
  /** The command's exit status as a shell shows it (128+N when it died of signal N). */
  status: number;
  /** The signal it died of, read from a status of 128+N (a shell's convention: a command that exits 130 itself reads as SIGINT too). */
  signal: NodeJS.Signals | null;
  /** The destination it ran on (for a pool: the login chosen; ':' is this machine). */
  host: string;
  /** Set when the run ended because the timeout ran out (status 124, or 137 when it had to be killed). */
  timedOut: boolean;
  /** Set when the run was ended through `signal`. */
  aborted: boolean;
  stdout?: Buffer;
  stderr?: Buffer;
}

/** outrun itself failed (could not connect, refused the remote, bad options...). */
export class OutrunRunError extends Error {
  override readonly name = 'OutrunRunError';
  constructor(
    message: string,
    /** A stable code, e.g. SSH_CONNECT, REMOTE_NO_FUSE, USAGE (README: Exit status). */
    readonly code: string,
    /** The exit status outrun gives for it (2, 254, 255...). */
    readonly exitStatus: number,
    readonly hint?: string,
    readonly stdout?: Buffer,
    readonly stderr?: Buffer,
  ) {
    super(message);
  }
}

export type RunHandle = Promise<RunResult> & {
  /** The command's stdin, when options.stdin is 'pipe'. */
  stdin?: Writable;
  /** The local outrun process. */
  pid?: number;
};

/** cli.js, next to this file's folder (dist/src/client/cli.js). */
const CLI = path.join(__dirname, '..', 'cli.js');
const REPORT_FD = 3;
const SIGNALS: Record<number, NodeJS.Signals> = Object.fromEntries(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/** The outrun command line for `o`: options, the destination, `--`-free command. */
export function outrunArgv(o: RunOptions): string[] {
  if (typeof o.destination !== 'string' || o.destination === '') throw new TypeError('run: destination must be a non-empty string');
  if (!Array.isArray(o.argv) || o.argv.length === 0 || !o.argv.every((a) => typeof a === 'string')) {
    throw new TypeError('run: argv must be a non-empty array of strings');
  }
  const ms = (v: number | undefined, what: string) => {
    if (v === undefined) return undefined;
    if (!Number.isFinite(v) || v < 0) throw new TypeError(`run: ${what} must be a number of milliseconds >= 0`);
    return `${v / 1000}s`;
  };
  const timeout = ms(o.timeout, 'timeout');
  const killAfter = ms(o.killAfter, 'killAfter');
  const args = [...(o.options ?? [])];
  if (o.configFile !== undefined) args.push('-F', o.configFile);
  if (timeout !== undefined && o.timeout! > 0) args.push('--timeout', timeout);
  if (killAfter !== undefined && o.timeout) args.push('--kill-after', killAfter);
  const d = o.destination;
  // A pool is -S (GNU parallel's sshlogins) or @NAME; anything else is one destination.
  if (looksLikePool(d)) args.push('-S', d, '--');
  else args.push('--', d);
  return [...args, ...o.argv];
}

function collect(stream: Readable | null): Promise<Buffer> | undefined {
  if (!stream) return undefined;
  const parts: Buffer[] = [];
  stream.on('data', (b: Buffer) => parts.push(b));
  return new Promise((resolve) => stream.on('end', () => resolve(Buffer.concat(parts))));
}

export function run(o: RunOptions): RunHandle {
  const argv = outrunArgv(o);
  const io = (v: unknown): 'inherit' | 'pipe' | 'ignore' => (v === undefined || v === 'inherit' ? 'inherit' : v === 'ignore' ? 'ignore' : 'pipe');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [CLI, ...argv], {
      cwd: o.cwd,
      env: { ...(o.env ?? process.env), OUTRUN_REPORT_FD: String(REPORT_FD) },
      stdio: [io(o.stdin), io(o.stdout), io(o.stderr), 'pipe'],
    });
  } catch (err) {
    return Object.assign(Promise.reject(err), {});
  }
  if (Buffer.isBuffer(o.stdin)) child.stdin!.end(o.stdin);
  else if (o.stdin !== undefined && typeof o.stdin === 'object') (o.stdin as Readable).pipe(child.stdin!);
  child.stdin?.on('error', () => undefined); // the command may not read all of it
  const outs = (['stdout', 'stderr'] as const).map((k) => {
    const want = o[k];
    const s = child[k];
    if (want !== undefined && typeof want === 'object') {
      s!.pipe(want as Writable, { end: false });
      return undefined;
    }
    return want === 'pipe' ? collect(s) : undefined;
  });
  const reported = collect(child.stdio[REPORT_FD] as Readable)!;
  let aborted = false;
  const onAbort = () => {
    aborted = true;
    child.kill('SIGTERM');
  };
  if (o.signal?.aborted) onAbort();
  else o.signal?.addEventListener('abort', onAbort, { once: true });

  const done = new Promise<RunResult>((resolve, reject) => {
    child.on('error', (err) => {
      o.signal?.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('close', async (code, sig) => {
      o.signal?.removeEventListener('abort', onAbort);
      const [stdout, stderr, text] = await Promise.all([outs[0], outs[1], reported]);
      let r: { status?: unknown; host?: unknown; timedOut?: unknown; failure?: { code?: unknown; message?: unknown; hint?: unknown } } = {};
      try {
        r = JSON.parse(text.toString('utf8').trim().split('\n').pop() || '{}');
      } catch {
        r = {};
      }
      const status = typeof r.status === 'number' ? r.status : (code ?? 128 + (sig ? constants.signals[sig] : 0));
      if (r.failure && typeof r.failure.message === 'string') {
        return reject(new OutrunRunError(r.failure.message, String(r.failure.code), status, typeof r.failure.hint === 'string' ? r.failure.hint : undefined, stdout, stderr));
      }
      // Aborted during the set-up: outrun ended by the SIGTERM itself, before it could say so.
      if (typeof r.status !== 'number' && aborted && sig === 'SIGTERM') {
        return resolve({ status, signal: 'SIGTERM', host: o.destination, timedOut: false, aborted, ...(stdout ? { stdout } : {}), ...(stderr ? { stderr } : {}) });
      }
      if (typeof r.status !== 'number') {
        return reject(new OutrunRunError(`outrun ended without saying how the run went (${sig ? `signal ${sig}` : `exit ${code}`})`, 'INTERNAL', status, undefined, stdout, stderr));
      }
      const timedOut = r.timedOut === true;
      resolve({
        status,
        signal: status > 128 && SIGNALS[status - 128] ? SIGNALS[status - 128]! : null,
        host: typeof r.host === 'string' ? r.host : o.destination,
        timedOut,
        aborted,
        ...(stdout ? { stdout } : {}),
        ...(stderr ? { stderr } : {}),
      });
    });
  });
  return Object.assign(done, { ...(io(o.stdin) === 'pipe' && o.stdin === 'pipe' ? { stdin: child.stdin! } : {}), pid: child.pid });
}
