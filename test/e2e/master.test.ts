// End to end: connection reuse through a master (-o ControlPersist, -S, -O check|exit).
// Runs through one master behave as local runs (differential: stdout, stderr, status), the
// later ones make no SSH handshake, concurrent runs keep their bytes and signals apart, and
// every way the master ends leaves the box clean.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CLI, ROOT, SSH_CONFIG, boxShell, outrun, waitBoxClean, type RunOptions } from './harness';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** A private directory for this test's sockets (0700, as the default one). */
function socketDir(): { dir: string; sock: string; done(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-master-'));
  chmodSync(dir, 0o700);
  return { dir, sock: path.join(dir, 'm.sock'), done: () => rmSync(dir, { recursive: true, force: true }) };
}

const through = (sock: string, extra: string[] = []) => (command: string[], opts: RunOptions = {}) =>
  outrun(['-F', SSH_CONFIG, '-S', sock, ...extra, 'box', ...command], opts);

function masterPid(sock: string): number | undefined {
  const r = spawnSync(process.execPath, [CLI, '-F', SSH_CONFIG, '-S', sock, '-O', 'check', 'box'], { encoding: 'utf8' });
  const m = /Master running \(pid=(\d+)\)/.exec(r.stderr);
  return r.status === 0 && m ? Number(m[1]) : undefined;
}

/** -O exit, then the box must be clean. */
async function endMasterCleanly(sock: string): Promise<void> {
  await exitMaster(sock);
  assert.equal(await waitBoxClean(), '');
}

/** Runs `fn` with a private socket directory, removed afterwards however `fn` ends. */
async function inSocketDir(fn: (s: ReturnType<typeof socketDir>) => Promise<void>): Promise<void> {
  const s = socketDir();
  try {
    await fn(s);
  } finally {
    s.done();
  }
}

async function exitMaster(sock: string): Promise<void> {
  const r = await outrun(['-F', SSH_CONFIG, '-S', sock, '-O', 'exit', 'box']);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /Exit request sent/);
}

const local = (script: string, input: string | Buffer, cwd: string, env: NodeJS.ProcessEnv) => {
  const r = spawnSync('sh', ['-c', script], { input, cwd, env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr.toString() };
};

test('-O check without a master: status 255, as ssh', () =>
  inSocketDir(async (s) => {
    const r = await outrun(['-F', SSH_CONFIG, '-S', s.sock, '-O', 'check', 'box']);
    assert.equal(r.status, 255);
    assert.match(r.stderr, /Control socket connect\(.*m\.sock\)/);
  }));

test('runs through one master: as local, no second handshake, each with its own cwd, env and status', { timeout: 120_000 }, () =>
  inSocketDir(async (s) => {
    const run = through(s.sock, ['-o', 'ControlPersist=60']);
    const script = 'echo "in $(pwd) as $(id -u):$(id -g) with X=$X"; echo to-stderr >&2; cat; exit 3';
    const env1 = { ...process.env, X: 'one' };
    const first = await run(['sh', '-c', script], { input: 'first input\n', env: env1 });
    const want1 = local(script, 'first input\n', ROOT, env1);
    assert.equal(first.status, 3, first.stderr);
    assert.equal(first.stdout.toString(), want1.stdout.toString());
    assert.equal(first.stderr, want1.stderr);
    const pid = masterPid(s.sock);
    assert.ok(pid, 'a master runs after the first run');
    // The socket and its key are the user's alone.
    assert.equal(statSync(s.sock).mode & 0o777, 0o600);
    assert.equal(statSync(`${s.sock}.key`).mode & 0o777, 0o600);

    const other = mkdtempSync(path.join(tmpdir(), 'outrun-master-cwd-'));
    try {
      const env2 = { ...process.env, X: 'two' };
      const second = await run(['sh', '-c', script], { input: 'second\n', cwd: other, env: env2 });
      const want2 = local(script, 'second\n', other, env2);
      assert.equal(second.status, 3, second.stderr);
      assert.equal(second.stdout.toString(), want2.stdout.toString());
      assert.equal(second.stderr, want2.stderr);
      const verbose = await outrun(['-F', SSH_CONFIG, '-S', s.sock, '-v', 'box', 'true']);
      assert.equal(verbose.status, 0, verbose.stderr);
      assert.doesNotMatch(verbose.stderr, /connecting to|authenticated/, 'an attached run makes no SSH handshake');
      assert.equal(masterPid(s.sock), pid, 'the same master served every run');
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
    await exitMaster(s.sock);
    assert.equal(masterPid(s.sock), undefined);
    assert.ok(!existsSync(s.sock) && !existsSync(`${s.sock}.key`), 'the socket and key are removed');
    assert.equal(await waitBoxClean(), '');
  }));

test('16 concurrent runs through one master: every byte of stdin, stdout and stderr right', { timeout: 180_000 }, () =>
  inSocketDir(async (s) => {
    const warm = await outrun(['-F', SSH_CONFIG, '-S', s.sock, '-o', 'ControlPersist=60', 'box', 'true']);
    assert.equal(warm.status, 0, warm.stderr);
    const inputs = Array.from({ length: 16 }, (_, i) => randomBytes(200_000 + i * 1000));
    const results = await Promise.all(
      inputs.map((input, i) =>
        outrun(['-F', SSH_CONFIG, '-S', s.sock, 'box', 'sh', '-c', `cat; sha256sum >&2 < /dev/null; echo run-${i} >&2; exit ${i}`], { input }),
      ),
    );
    results.forEach((r, i) => {
      assert.equal(r.status, i, r.stderr);
      assert.equal(sha(r.stdout), sha(inputs[i]!), `run ${i}: stdout is its own stdin`);
      assert.match(r.stderr, new RegExp(`^[0-9a-f]{64}  -\\nrun-${i}\\n$`));
    });
    await endMasterCleanly(s.sock);
  }));

test('a signal reaches its own run only; a run killed locally is hung up on the remote', { timeout: 120_000 }, () =>
  inSocketDir(async (s) => {
    const start = (tag: string) => {
      const child = spawn(process.execPath, [CLI, '-F', SSH_CONFIG, '-S', s.sock, '-o', 'ControlPersist=60', 'box', 'sh', '-c', `trap "echo ${tag}-int; exit 130" INT; echo ready; while :; do sleep 0.1; done`], {
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      let out = '';
      const ready = new Promise<void>((r) => child.stdout.on('data', (d) => ((out += d), out.includes('ready') && r())));
      const exited = new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      return { child, ready, exited, out: () => out };
    };
    const a = start('a');
    await a.ready; // a's run started the master
    const b = start('b');
    await b.ready;
    a.child.kill('SIGINT');
    assert.equal(await a.exited, 130);
    assert.match(a.out(), /a-int/);
    assert.doesNotMatch(b.out(), /b-int/);
    // b is still running; killing its outrun hard hangs up its command on the remote.
    b.child.kill('SIGKILL');
    await b.exited;
    const deadline = Date.now() + 10_000;
    let left = '';
    while (Date.now() < deadline) {
      left = boxShell('ps -eo args | grep -c "[w]hile :; do sleep" || true').trim();
      if (left === '0') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(left, '0', 'the hung-up command ended on the remote');
    assert.ok(masterPid(s.sock), 'the master outlives its runs');
    await endMasterCleanly(s.sock);
  }));

test('the master ends after its idle time, and when killed, leaving the box clean', { timeout: 120_000 }, () =>
  inSocketDir(async (s) => {
    const r = await outrun(['-F', SSH_CONFIG, '-S', s.sock, '-o', 'ControlPersist=2', 'box', 'true']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(masterPid(s.sock));
    await new Promise((res) => setTimeout(res, 3500));
    assert.equal(masterPid(s.sock), undefined, 'idle for 2 s: gone');
    assert.equal(await waitBoxClean(), '');

    const again = await outrun(['-F', SSH_CONFIG, '-S', s.sock, '-o', 'ControlPersist=yes', 'box', 'true']);
    assert.equal(again.status, 0, again.stderr);
    const pid = masterPid(s.sock)!;
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    assert.equal(await waitBoxClean(25_000), '', 'a master killed hard leaves nothing on the box');
    // Its stale socket is replaced by the next run's master; the run does not hang.
    const after = await outrun(['-F', SSH_CONFIG, '-S', s.sock, '-o', 'ControlPersist=yes', 'box', 'echo', 'ok'], { timeoutMs: 30_000 });
    assert.equal(after.status, 0, after.stderr);
    assert.equal(after.stdout.toString(), 'ok\n');
    const pid2 = masterPid(s.sock);
    assert.ok(pid2 && pid2 !== pid, 'a new master');
    await endMasterCleanly(s.sock);
  }));

test('a master whose remote agent went away is replaced; the run does not hang', { timeout: 120_000 }, () =>
  inSocketDir(async (s) => {
    const r = await outrun(['-F', SSH_CONFIG, '-S', s.sock, '-o', 'ControlPersist=60', 'box', 'true']);
    assert.equal(r.status, 0, r.stderr);
    const pid = masterPid(s.sock)!;
    boxShell('for p in /proc/[0-9]*; do [ "${p#/proc/}" = "$$" ] && continue; case "$(cat $p/cmdline 2>/dev/null | tr "\\0" " ")" in *node*[a]gent.js*) kill -9 ${p#/proc/};; esac; done; true');
    const after = await outrun(['-F', SSH_CONFIG, '-S', s.sock, '-o', 'ControlPersist=60', 'box', 'echo', 'still'], { timeoutMs: 30_000 });
    assert.equal(after.status, 0, after.stderr);
    assert.equal(after.stdout.toString(), 'still\n');
    assert.notEqual(masterPid(s.sock), pid);
    await endMasterCleanly(s.sock);
  }));

test('a socket directory others can enter is refused; the run goes direct', { timeout: 60_000 }, () =>
  inSocketDir(async (s) => {
    chmodSync(s.dir, 0o755);
    const r = await outrun(['-F', SSH_CONFIG, '-S', s.sock, '-o', 'ControlPersist=60', '-v', 'box', 'echo', 'direct']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.toString(), 'direct\n');
    assert.match(r.stderr, /open to others/);
    assert.ok(!existsSync(s.sock));
    assert.equal(await waitBoxClean(), '');
  }));

