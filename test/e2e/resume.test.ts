// End to end: a run survives a dropped link (issue 11 item 3). The network to the box is
// cut for real (a local blackhole route: packets vanish, no FIN, no reset) while the command
// streams incompressible output, writes and appends to local files and reads stdin; outrun
// reconnects and every byte arrives once. Past the limit, and when the local outrun is
// killed, the box must end up with nothing of the session (checked through a fresh ssh).
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CLI, ROOT, SSH_CONFIG, boxLeftovers, boxShell } from './harness';

const BOX_ADDR = /HostName\s+(\S+)/.exec(readFileSync(SSH_CONFIG, 'utf8'))![1]!;
const FAST_KEEPALIVE = ['-o', 'ServerAliveInterval=1', '-o', 'ServerAliveCountMax=2'];
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await sleep(250);
  }
  return true;
}

/** Host pids whose command line (NULs as spaces) holds `marker`. */
function hostPids(marker: string): number[] {
  const found: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'latin1').replace(/\0/g, ' ').includes(marker)) found.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return found;
}

/** outrun in the background, its stdout kept as bytes. */
function start(args: string[], cwd = ROOT) {
  const child = spawn(process.execPath, [CLI, '-F', SSH_CONFIG, ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d) => (err += d));
  child.stdin.on('error', () => undefined);
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const stdout = () => Buffer.concat(out);
  const ready = until(() => stdout().includes('ready'), 60_000);
  return { child, exited, stdout, stderr: () => err, ready };
}

/** The link cut for real; always removed again. */
async function withBlackhole<T>(during: () => Promise<T>): Promise<T> {
  assert.equal(spawnSync('ip', ['route', 'add', 'blackhole', `${BOX_ADDR}/32`]).status, 0, 'blackhole route added');
  try {
    return await during();
  } finally {
    spawnSync('ip', ['route', 'del', 'blackhole', `${BOX_ADDR}/32`]);
  }
}

/** Relay directories on the box. */
const relayDirs = () => boxShell('ls -d /tmp/outrun-relay-* 2>/dev/null; true').trim().split('\n').filter(Boolean);

/**
 * Everything a session could leave on the box: mounts, processes, session and relay dirs
 * (those of this test: a relay SIGKILLed by an earlier test leaves its directory until a
 * later relay sweeps it).
 */
function boxRemains(marker: string, relaysBefore: string[] = []): string {
  return [
    boxLeftovers(),
    relayDirs().filter((d) => !relaysBefore.includes(d)).join('\n'),
    boxShell(`ps -eo args | grep -v grep | grep -F '${marker}'; true`).trim(),
  ]
    .filter(Boolean)
    .join('\n');
}

let relaysBefore: string[] = [];

async function waitRemoteClean(marker: string, ms: number): Promise<string> {
  let left = boxRemains(marker, relaysBefore);
  const deadline = Date.now() + ms;
  while (left && Date.now() < deadline) {
    await sleep(1000);
    left = boxRemains(marker, relaysBefore);
  }
  return left;
}

describe('a run survives a dropped link', { timeout: 8 * 60_000 }, () => {
  before(() => {
    relaysBefore = relayDirs();
  });

  test('cut for 20 s while streaming: stdout, stdin, files and appends exactly as an uncut run, status 0', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'outrun-resume-'));
    const CHUNK = 131072;
    const ROUNDS = 40;
    // stdin is copied to a local file in the background (fd 3: an async list's stdin would
    // be /dev/null); output is random, so only the bytes themselves can match.
    writeFileSync(
      path.join(work, 'cmd.sh'),
      [
        'exec 3<&0',
        'cat <&3 > stdin-copy &',
        'i=0',
        `while [ $i -lt ${ROUNDS} ]; do`,
        `  head -c ${CHUNK} /dev/urandom | tee -a data`,
        '  echo "line $i" >> log',
        '  i=$((i+1))',
        '  sleep 0.5',
        'done',
        'wait',
        'echo done >> log',
      ].join('\n'),
    );
    try {
      const run = start(['-v', ...FAST_KEEPALIVE, 'box', 'sh', 'cmd.sh'], work);
      const fed: Buffer[] = [];
      let feeding = true;
      const feeder = (async () => {
        while (feeding) {
          const b = randomBytes(4096 + Math.floor(Math.random() * 8192));
          fed.push(b);
          run.child.stdin.write(b);
          await sleep(200);
        }
        run.child.stdin.end();
      })();
      assert.ok(await until(() => existsSync(path.join(work, 'data')) && statSync(path.join(work, 'data')).size >= 3 * CHUNK, 60_000), 'the command streams');
      await withBlackhole(() => sleep(20_000));
      await sleep(3000);
      feeding = false;
      await feeder;
      const code = await run.exited;
      const err = run.stderr();
      assert.equal(code, 0, err.split('\n').filter((l) => !/ rpc /.test(l)).slice(-15).join('\n'));
      assert.match(err, /the connection is lost; reconnecting/);
      assert.match(err, /the connection is back after/);
      const out = run.stdout();
      const data = readFileSync(path.join(work, 'data'));
      assert.equal(out.length, ROUNDS * CHUNK, 'stdout length');
      assert.equal(data.length, ROUNDS * CHUNK, 'file length');
      assert.equal(sha(out), sha(data), 'stdout is what was written to the file');
      const lines = Array.from({ length: ROUNDS }, (_, i) => `line ${i}\n`).join('') + 'done\n';
      assert.equal(readFileSync(path.join(work, 'log'), 'utf8'), lines, 'appends, each once');
      const copy = readFileSync(path.join(work, 'stdin-copy'));
      const sent = Buffer.concat(fed);
      assert.equal(copy.length, sent.length, 'stdin length');
      assert.equal(sha(copy), sha(sent), 'stdin bytes');
      assert.equal(await waitRemoteClean('cmd.sh', 20_000), '');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test('output during the outage is held up to the bound, then the command waits; all of it arrives once', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'outrun-resume-big-'));
    try {
      const big = randomBytes(96 * 1024 * 1024);
      writeFileSync(path.join(work, 'big'), big);
      // Read once so that the second read comes from the box's page cache, during the outage.
      const run = start([...FAST_KEEPALIVE, 'box', 'sh', '-c', 'cat big > /dev/null; echo ready; sleep 4; cat big'], work);
      assert.ok(await run.ready, run.stderr());
      const before = run.stdout().length;
      let peakRss = 0;
      await withBlackhole(async () => {
        for (let i = 0; i < 15; i++) {
          await sleep(1000);
          // The box's processes are visible from here: the relay in front of the command.
          for (const pid of hostPids('agent.js relay -- ')) {
            if (!readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('outrun-helper\0exec')) continue;
            const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
            peakRss = Math.max(peakRss, rss);
          }
        }
      });
      const code = await run.exited;
      assert.equal(code, 0, run.stderr());
      assert.equal(before, 'ready\n'.length);
      const out = run.stdout();
      assert.equal(out.length, 6 + big.length);
      assert.equal(sha(out.subarray(6)), sha(big));
      // Unbounded, the relay would have taken all 96 MiB while we were away.
      assert.ok(peakRss > 0 && peakRss < 160 * 1024 * 1024, `relay RSS ${(peakRss / 1048576).toFixed(0)} MiB`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test('the box kills our sshd session (the connection resets): the run goes on and ends as it would have', async () => {
    const run = start(['-v', 'box', 'sh', '-c', 'echo ready; sleep 3; echo after; exit 7']);
    assert.ok(await run.ready, run.stderr());
    // sshd's process for our connection is the parent of the relay in front of the exec helper.
    const relay = boxShell(
      `for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q 'agent.js relay -- [^ ]*outrun-helper exe[c]' && echo \${p#/proc/}; done; true`,
    ).trim();
    assert.match(relay, /^\d+$/);
    boxShell(`kill -9 $(awk '/^PPid:/ {print $2}' /proc/${relay}/status)`);
    const code = await run.exited;
    assert.equal(code, 7, run.stderr().split('\n').filter((l) => !/ rpc /.test(l)).slice(-15).join('\n'));
    assert.equal(run.stdout().toString(), 'ready\nafter\n');
    assert.match(run.stderr(), /the connection is back/);
    assert.equal(await waitRemoteClean('sleep 3', 20_000), '');
  });

  test('SIGINT sent during the outage reaches the command once the link is back', async () => {
    const run = start(['-v', ...FAST_KEEPALIVE, 'box', 'sh', '-c', `trap 'echo "got INT"; exit 42' INT; echo ready; while :; do sleep 0.2; done`]);
    assert.ok(await run.ready, run.stderr());
    await withBlackhole(async () => {
      assert.ok(await until(() => run.stderr().includes('the connection is lost'), 15_000), 'the loss was noticed');
      run.child.kill('SIGINT');
      await sleep(6000);
      assert.doesNotMatch(run.stdout().toString(), /got INT/, 'nothing can arrive during the outage');
    });
    const code = await run.exited;
    assert.equal(code, 42, run.stderr().split('\n').filter((l) => !/ rpc /.test(l)).slice(-15).join('\n'));
    assert.equal(run.stdout().toString(), 'ready\ngot INT\n');
    assert.match(run.stderr(), /the connection is back/);
  });

  test('an outage past -o ReconnectTimeout: 255 with one line, and the box cleans itself', async () => {
    const run = start(['-o', 'ReconnectTimeout=5', ...FAST_KEEPALIVE, 'box', 'sh', '-c', 'echo ready; exec sleep 1040']);
    assert.ok(await run.ready, run.stderr());
    const t0 = Date.now();
    const code = await withBlackhole(() => run.exited);
    assert.equal(code, 255, run.stderr());
    assert.ok(Date.now() - t0 < 20_000, `gave up after ${Date.now() - t0} ms`);
    const lines = run.stderr().trim().split('\n');
    assert.equal(lines.length, 1, run.stderr());
    assert.match(lines[0]!, /^outrun: the connection to \S+ was lost and did not come back within 5 s/);
    // The box waits as long for us (after it noticed), then ends the command and removes all.
    assert.equal(await waitRemoteClean('sleep 1040', 60_000), '');
  });

  test('the local outrun killed with SIGKILL: the box is clean after the limit', async () => {
    const run = start(['-o', 'ReconnectTimeout=5', 'box', 'sh', '-c', 'echo ready; exec sleep 1041']);
    assert.ok(await run.ready, run.stderr());
    assert.match(boxShell('ps -eo args'), /sleep 1041/);
    run.child.kill('SIGKILL');
    await run.exited;
    assert.equal(await waitRemoteClean('sleep 1041', 60_000), '');
  });
});
