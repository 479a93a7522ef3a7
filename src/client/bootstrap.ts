// Make sure the outrun runtime (see runtime.ts) is installed on the remote, uploading it if needed.
//
// Remote layout: <root>/<id>/ holds one complete runtime, <root>/<id>/.complete marks it usable;
// <root> (default /var/cache/outrun/runtime) is 0700 and root-only. The warm path is one exec:
// a probe that checks the architecture, uid, /dev/fuse and the completion marker. The cold path
// uploads into <root>/.tmp-<id>-<random>, checks every file's sha256 with the uploaded node
// itself, writes .complete and renames the directory into place; a concurrent session that wins
// the rename race is simply used.

import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client, ClientChannel, SFTPWrapper } from 'ssh2';
import { OutrunError } from './errors';
import { LocalRuntime, MANIFEST_VERSION, nodeArgv, runtimeFacts, runtimeSetOf, type RuntimeSet } from './runtime';
import { shellQuote } from './shell-quote';
import { assess, cacheBaseOf, emulatorFor, normalizeMachine, parseProbe, probeScript, ROOT_CACHE, type RunMode } from './remote-probe';

export const DEFAULT_CACHE_ROOT = `${ROOT_CACHE}/runtime`;

export interface EnsureRuntimeOptions {
  /** Name of the remote for messages ("remote HOST is aarch64 ..."). */
  host?: string;
  /** Remote cache root; default /var/cache/outrun/runtime for root, ~/.cache/outrun/runtime otherwise. */
  cacheRoot?: string;
  /** How many other runtime ids to keep in the cache; older ones are removed. Default 3. */
  keep?: number;
  /** Transfer method: SFTP (default; falls back to exec if the SFTP subsystem is refused) or
   * `cat` over exec channels. */
  transfer?: 'sftp' | 'exec';
  /** How the runs use the remote (default chroot): decides what another architecture needs. */
  mode?: RunMode;
}

export interface EnsuredRuntime {
  /** Absolute remote directory of the runtime, e.g. /var/cache/outrun/runtime/<id>. */
  remoteDir: string;
  /** True if this call uploaded it. */
  uploaded: boolean;
  /** The login is not root: sessions run in a user namespace and live under sessionParent. */
  rootless?: { sessionParent: string };
  /** The runtime installed there: the one built for the remote's architecture. */
  runtime: LocalRuntime;
  /** How a chroot run's (local) programs run there: natively, through a binfmt_misc handler
   * (its name and interpreter: emulated), or not at all (another architecture, no handler). */
  chroot: { native: true } | { native: false; handler: string; interpreter: string; machine: string } | undefined;
  /** Its load, as the probe read it (a pool's placement). */
  load?: { load1: number; cpus: number };
  /** Why a chroot run cannot run there (set exactly when chroot is undefined): the refusal a
   * direct chroot run gives, for a master to give its chroot runs. */
  chrootRefusal?: OutrunError;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

const OUTPUT_LIMIT = 1 << 20;

/** Run one command on the remote, collecting its output. Rejects only if the channel cannot be
 * opened; a failing command resolves with its exit status. */
export function execCapture(conn: Client, command: string): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    conn.exec(command, (err, ch) => {
      if (err) return reject(err);
      let stdout = '';
      let stderr = '';
      let code: number | null = null;
      let signal: string | null = null;
      ch.on('data', (d: Buffer) => {
        if (stdout.length < OUTPUT_LIMIT) stdout += d.toString('utf8');
      });
      ch.stderr.on('data', (d: Buffer) => {
        if (stderr.length < OUTPUT_LIMIT) stderr += d.toString('utf8');
      });
      ch.on('exit', (c: number | null, sig?: string) => {
        code = c;
        signal = sig ?? null;
      });
      ch.on('error', () => undefined); // reported through the exit status
      ch.on('close', () => resolve({ code, signal, stdout, stderr }));
    });
  });
}

function firstLine(s: string): string {
  return s.trim().split('\n').filter(Boolean).pop()?.slice(0, 300) ?? '';
}

export function describeExit(r: ExecResult): string {
  const status = r.signal ? `killed by ${r.signal}` : r.code === null ? 'no exit status' : `exit ${r.code}`;
  const err = firstLine(r.stderr);
  return err ? `${err} (${status})` : status;
}

const DISK_FULL_RE = /No space left on device|ENOSPC|Disk quota exceeded|EDQUOT/i;

/** sh -c '<script>': the login shell of the remote user may not be a POSIX shell. */
export function sh(script: string): string {
  return shellQuote(['sh', '-c', script]);
}

// Runs with the uploaded node: chmod each file to its manifest mode, fsync it, and report its
// sha256 and size. argv: dir, JSON { rel: mode }.
const VERIFY_JS = `
const fs = require('fs'), crypto = require('crypto'), path = require('path');
const dir = process.argv[1], want = JSON.parse(process.argv[2]), out = {};
const buf = Buffer.allocUnsafe(4 << 20);
for (const [rel, mode] of Object.entries(want)) {
  const f = path.join(dir, rel);
  try {
    fs.chmodSync(f, mode);
    const h = crypto.createHash('sha256'), fd = fs.openSync(f, 'r');
    let n, size = 0;
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) { h.update(buf.subarray(0, n)); size += n; }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    out[rel] = { sha256: h.digest('hex'), size };
  } catch (e) {
    out[rel] = { error: String(e.code || e.message) };
  }
}
process.stdout.write(JSON.stringify(out) + '\\n');
`;

// Runs with the uploaded node: mark the temp dir complete, rename it into place (or yield to a
// session that got there first), then drop old runtimes and stale temp dirs.
// argv: root, tmp name, id, keep, manifest.json text.
const PUBLISH_JS = `
const fs = require('fs'), path = require('path');
const [root, tmpName, id, keepStr, manifest] = process.argv.slice(1);
const tmp = path.join(root, tmpName), dst = path.join(root, id), keep = Number(keepStr);
fs.writeFileSync(path.join(tmp, 'manifest.json'), manifest, { mode: 0o644 });
const fd = fs.openSync(path.join(tmp, '.complete'), 'w'); fs.fsyncSync(fd); fs.closeSync(fd);
let result;
try {
  fs.renameSync(tmp, dst);
  result = 'published';
} catch (e) {
  if (e.code !== 'ENOTEMPTY' && e.code !== 'EEXIST') throw e;
  if (fs.existsSync(path.join(dst, '.complete'))) {
    fs.rmSync(tmp, { recursive: true, force: true });
    result = 'raced';
  } else {
    fs.rmSync(dst, { recursive: true, force: true });
    fs.renameSync(tmp, dst);
    result = 'replaced';
  }
}
try { const d = fs.openSync(root, 'r'); fs.fsyncSync(d); fs.closeSync(d); } catch {}
const removed = [], now = Date.now(), runtimes = [];
for (const name of fs.readdirSync(root)) {
  const p = path.join(root, name);
  try {
    if (/^[0-9a-f]{32}$/.test(name) && name !== id) {
      let t;
      try { t = fs.statSync(path.join(p, '.complete')).mtimeMs; } catch { t = fs.statSync(p).mtimeMs; }
      runtimes.push({ p, name, t });
    } else if (name.startsWith('.tmp-') && now - fs.statSync(p).mtimeMs > 6 * 3600e3) {
      fs.rmSync(p, { recursive: true, force: true }); removed.push(name);
    }
  } catch {}
}
runtimes.sort((a, b) => b.t - a.t);
for (const r of runtimes.slice(keep)) {
  try { fs.rmSync(r.p, { recursive: true, force: true }); removed.push(r.name); } catch {}
}
process.stdout.write(JSON.stringify({ result, removed }) + '\\n');
`;

function ms(t0: number): string {
  return `${Date.now() - t0} ms`;
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/** Ensure the runtime is installed on the remote; upload it if it is not. */
export async function ensureRemoteRuntime(
  conn: Client,
  runtimes: LocalRuntime | RuntimeSet,
  log: (s: string) => void,
  opts: EnsureRuntimeOptions = {},
): Promise<EnsuredRuntime> {
  const host = opts.host ?? 'the remote host';
  const keep = opts.keep ?? 3;
  const set = 'byMachine' in runtimes ? runtimes : runtimeSetOf(runtimes);
  const facts = runtimeFacts(set);
  const ids = Object.fromEntries(Object.entries(facts).map(([m, f]) => [m, f.id]));

  // a. One exec: architecture, uid, user namespaces, /dev/fuse, completion marker.
  let t0 = Date.now();
  let probeOut: ExecResult;
  try {
    probeOut = await execCapture(conn, sh(probeScript(ids, set.local.machine, opts.cacheRoot)));
  } catch (err) {
    throw new OutrunError('SSH_LOST', `cannot run a command on ${host}: ${(err as Error).message}`, { cause: err });
  }
  const probe = parseProbe(probeOut.stdout);
  if (!probe) {
    throw new OutrunError('UPLOAD_FAILED', `cannot inspect ${host}: its shell did not run the probe (${describeExit(probeOut)})`, {
      hint: 'check that the remote account has a working POSIX sh',
    });
  }

  // b. Refuse before uploading anything: the first item a run needs that is missing (the same
  // judgement as outrun --check). The upload's own failures (disk full) are reported below.
  // (Sizes 0: a run does not refuse for free space; the upload finds out, and says so, below.)
  const unsized = Object.fromEntries(Object.entries(facts).map(([m, f]) => [m, { ...f, bytes: 0 }]));
  const missing = assess({ probe, host, localMachine: set.local.machine, runtimes: unsized, mode: opts.mode }).find((i) => !i.ok);
  if (missing) throw new OutrunError(missing.code ?? 'UPLOAD_FAILED', missing.detail, { hint: missing.fix });
  const machine = normalizeMachine(probe.machine);
  const runtime = set.byMachine[machine]!;
  const handler = machine === set.local.machine ? undefined : emulatorFor(probe, set.local.machine).handler;
  const chroot: EnsuredRuntime['chroot'] =
    machine === set.local.machine
      ? { native: true }
      : handler
        ? { native: false, handler: handler.name, interpreter: handler.interpreter, machine }
        : undefined;
  log(
    `runtime: probe ${ms(t0)}: ${probe.os || '?'} ${probe.machine || '?'}, uid ${probe.uid || '?'}, ` +
      `/dev/fuse ${probe.fuse ? 'present' : 'missing'}, runtime ${runtime.id} ${probe.complete ? 'installed' : 'not installed'}` +
      (chroot?.native === false ? `, local programs through binfmt_misc ${chroot.handler}` : ''),
  );
  const base = cacheBaseOf(probe.uid, probe.home);
  const rootless = probe.uid === '0' ? undefined : { sessionParent: `${base}/run` };
  if (rootless && !probe.home.startsWith('/')) {
    throw new OutrunError('UPLOAD_FAILED', `the login on ${host} has no absolute HOME (${probe.home || 'unset'})`, {
      hint: 'a rootless run keeps its runtime in ~/.cache/outrun: give the account a home directory',
    });
  }
  const root = (opts.cacheRoot ?? `${base}/runtime`).replace(/\/+$/, '');
  const remoteDir = `${root}/${runtime.id}`;
  const refusal = chroot
    ? undefined
    : assess({ probe, host, localMachine: set.local.machine, runtimes: unsized, mode: 'chroot' }).find((i) => i.name === 'architecture' && !i.ok);
  const chrootRefusal = refusal && new OutrunError(refusal.code ?? 'ARCH_MISMATCH', refusal.detail, { hint: refusal.fix });
  const load = probe.load1 !== undefined && probe.cpus !== undefined ? { load1: probe.load1, cpus: probe.cpus } : undefined;
  const found = { remoteDir, runtime, chroot, ...(load ? { load } : {}), ...(chrootRefusal ? { chrootRefusal } : {}), ...(rootless ? { rootless } : {}) };

  // c. Warm path.
  if (probe.complete) return { ...found, uploaded: false };

  // d. Cold path.
  const tStart = Date.now();
  const tmpName = `.tmp-${runtime.id}-${randomBytes(6).toString('hex')}`;
  const tmp = `${root}/${tmpName}`;
  const total = Object.values(runtime.files).reduce((a, f) => a + f.size, 0);
  const fail = async (what: string, cause?: unknown): Promise<never> => {
    let full = DISK_FULL_RE.test(what) || DISK_FULL_RE.test(String((cause as Error)?.message ?? ''));
    if (!full && isSftpFailure(cause)) full = await remoteDiskFull(conn, root, total);
    await execCapture(conn, shellQuote(['rm', '-rf', '--', tmp])).catch(() => undefined);
    if (full) {
      throw new OutrunError('UPLOAD_FAILED', `cannot install the outrun runtime on ${host}: the remote disk is full`, {
        hint: `free space in ${root === DEFAULT_CACHE_ROOT ? '/var/cache' : root} on ${host} (the runtime needs ${mb(total)})`,
        cause,
      });
    }
    throw new OutrunError('UPLOAD_FAILED', `cannot install the outrun runtime on ${host}: ${what}`, { cause });
  };

  // Directories: root (0700) and the temp dir with its subdirectories.
  t0 = Date.now();
  const dirs = new Set<string>();
  for (const rel of Object.keys(runtime.files)) {
    for (let d = path.posix.dirname(rel); d !== '.'; d = path.posix.dirname(d)) dirs.add(`${tmp}/${d}`);
  }
  // A rootless login's ~/.cache/outrun is private too (runtime, caches, sessions).
  const privateBase = rootless && !opts.cacheRoot ? `chmod 700 ${shellQuote([base])} && ` : '';
  const mk = await execCapture(
    conn,
    sh(
      `umask 077 && mkdir -p ${shellQuote([root])} && ${privateBase}chmod 700 ${shellQuote([root])} && ` +
        `mkdir ${shellQuote([tmp])} && ${dirs.size ? `mkdir -p ${shellQuote([...dirs].sort())}` : 'true'}`,
    ),
  ).catch((err) => fail(`cannot run mkdir: ${(err as Error).message}`, err));
  if (mk.code !== 0) await fail(`cannot create ${tmp}: ${describeExit(mk)}`);
  log(`runtime: mkdir ${tmp} ${ms(t0)}`);

  // Upload.
  t0 = Date.now();
  let method = opts.transfer ?? 'sftp';
  try {
    if (method === 'sftp') {
      let sftp: SFTPWrapper | undefined;
      try {
        sftp = await openSftp(conn);
      } catch (err) {
        log(`runtime: SFTP unavailable (${(err as Error).message}), uploading over exec channels`);
        method = 'exec';
      }
      if (sftp) {
        try {
          await uploadAll(runtime, (rel, f) => sftpPut(sftp!, path.join(runtime.dir, rel), `${tmp}/${rel}`, f.mode));
        } finally {
          sftp.end();
        }
      }
    }
    if (method === 'exec') {
      await uploadAll(runtime, (rel, f) => execPut(conn, path.join(runtime.dir, rel), `${tmp}/${rel}`, f.mode));
    }
  } catch (err) {
    await fail(`upload failed: ${(err as Error).message}`, err);
  }
  const upMs = Date.now() - t0;
  log(`runtime: uploaded ${mb(total)} via ${method} in ${upMs} ms (${(total / 1e6 / Math.max(upMs / 1000, 0.001)).toFixed(0)} MB/s)`);

  // Verify with the uploaded node itself: it also proves the runtime starts on this remote.
  t0 = Date.now();
  const modes = Object.fromEntries(Object.entries(runtime.files).map(([rel, f]) => [rel, f.mode]));
  const node = nodeArgv(tmp, runtime.loader);
  const vr = await execCapture(conn, shellQuote([...node, '-e', VERIFY_JS, tmp, JSON.stringify(modes)])).catch((err) =>
    fail(`cannot run the uploaded node: ${(err as Error).message}`, err),
  );
  if (vr.code !== 0) await fail(`the uploaded node does not run on ${host}: ${describeExit(vr)}`);
  let got2: Record<string, { sha256?: string; size?: number; error?: string }>;
  try {
    got2 = JSON.parse(vr.stdout.trim().split('\n').pop() ?? '');
  } catch (err) {
    return fail(`cannot read the verification result: ${firstLine(vr.stdout) || describeExit(vr)}`, err);
  }
  for (const [rel, f] of Object.entries(runtime.files)) {
    const g = got2[rel];
    if (!g || g.error) await fail(`${rel} is unreadable after upload (${g?.error ?? 'missing'})`);
    else if (g.sha256 !== f.sha256 || g.size !== f.size) {
      await fail(`${rel} arrived corrupted (${g.size} of ${f.size} bytes, sha256 ${g.sha256?.slice(0, 12)} vs ${f.sha256.slice(0, 12)})`);
    }
  }
  log(`runtime: verified ${Object.keys(runtime.files).length} files ${ms(t0)}`);

  // Publish: .complete, then rename into place; collect old runtimes.
  t0 = Date.now();
  const manifest = JSON.stringify({ version: MANIFEST_VERSION, id: runtime.id, machine: runtime.machine, files: runtime.files }, null, 2);
  const pr = await execCapture(
    conn,
    shellQuote([...node, '-e', PUBLISH_JS, root, tmpName, runtime.id, String(keep), `${manifest}\n`]),
  ).catch((err) =>
    fail(`cannot publish: ${(err as Error).message}`, err),
  );
  if (pr.code !== 0) await fail(`cannot move ${tmp} into place: ${describeExit(pr)}`);
  let pub: { result?: string; removed?: string[] } = {};
  try {
    pub = JSON.parse(pr.stdout.trim().split('\n').pop() ?? '');
  } catch {
    // Published anyway (exit 0); only the report is lost.
  }
  log(
    `runtime: ${pub.result === 'raced' ? 'another session installed it first; using theirs' : `installed ${remoteDir}`} ${ms(t0)}` +
      (pub.removed?.length ? `; removed old ${pub.removed.join(', ')}` : ''),
  );
  log(`runtime: cold install total ${ms(tStart)}`);
  return { ...found, uploaded: pub.result !== 'raced' };
}

/** Largest files first, a few at a time: small files overlap their round trips. */
async function uploadAll(
  runtime: LocalRuntime,
  put: (rel: string, f: LocalRuntime['files'][string]) => Promise<void>,
  parallel = 4,
): Promise<void> {
  const queue = Object.entries(runtime.files).sort((a, b) => b[1].size - a[1].size);
  let failed: unknown;
  const worker = async (): Promise<void> => {
    for (;;) {
      const next = queue.shift();
      if (!next || failed !== undefined) return;
      try {
        await put(next[0], next[1]);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  if (failed !== undefined) throw failed;
}

function openSftp(conn: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => conn.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
}

/** ssh2 SFTP status codes: 4 = SSH_FX_FAILURE, which OpenSSH's server also uses for ENOSPC. */
function isSftpFailure(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 4;
}

export const SFTP_CHUNK = 128 * 1024;
export const SFTP_CONCURRENCY = 16;

function sftpPut(sftp: SFTPWrapper, local: string, remote: string, mode: number): Promise<void> {
  return new Promise((resolve, reject) =>
    sftp.fastPut(local, remote, { chunkSize: SFTP_CHUNK, concurrency: SFTP_CONCURRENCY, mode }, (err) =>
      // Keep the SFTP status code (err.code) for the disk-full diagnosis.
      err ? reject(Object.assign(new Error(`writing ${remote}: ${err.message}`), { code: (err as { code?: unknown }).code })) : resolve(),
    ),
  );
}

/** `cat > file` over an exec channel: for remotes without the SFTP subsystem. */
function execPut(conn: Client, local: string, remote: string, mode: number): Promise<void> {
  const q = shellQuote([remote]);
  return new Promise((resolve, reject) => {
    conn.exec(sh(`umask 077 && cat > ${q} && chmod ${(mode & 0o7777).toString(8)} ${q}`), (err, ch: ClientChannel) => {
      if (err) return reject(err);
      let stderr = '';
      let code: number | null = null;
      ch.stderr.on('data', (d: Buffer) => {
        if (stderr.length < 4096) stderr += d.toString('utf8');
      });
      ch.resume(); // cat prints nothing, but 'close' only comes once stdout has been consumed
      let chErr: Error | undefined;
      ch.on('error', (e: Error) => {
        chErr ??= e;
      });
      ch.on('exit', (c: number | null) => {
        code = c;
      });
      ch.on('close', () => {
        if (code === 0 && !chErr) resolve();
        else reject(new Error(`writing ${remote}: ${firstLine(stderr) || chErr?.message || `exit ${String(code)}`}`));
      });
      const rs = fs.createReadStream(local, { highWaterMark: 1 << 20 });
      rs.on('error', (e) => {
        ch.close();
        reject(e);
      });
      rs.pipe(ch);
    });
  });
}

/** After an SFTP "Failure": is the file system under `root` (nearly) full? */
async function remoteDiskFull(conn: Client, root: string, need: number): Promise<boolean> {
  try {
    const r = await execCapture(conn, shellQuote(['df', '-Pk', root]));
    const line = r.stdout.trim().split('\n')[1];
    const avail = Number(line?.split(/\s+/)[3]);
    return Number.isFinite(avail) && avail * 1024 < Math.min(need, 16 << 20);
  } catch {
    return false;
  }
}
