// End to end, faults injected for real: the network to the box goes silent (a local
// blackhole route: packets vanish, nobody sends a FIN or a reset), the agent is killed on the
// box, the link is cut in the middle of a write. Each time: outrun says so in one line with
// its documented status, the box ends up clean, and the local disk holds exactly what the
// command wrote (a prefix of it when cut off), never invented bytes.
//
// The first two are about a run that does not resume (-o ReconnectTimeout=0): a run that
// does survives the same cut, see resume.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { SSH_CONFIG, boxShell, startLongRun, waitBoxClean } from './harness';

const startRun = startLongRun;

const BOX_ADDR = /HostName\s+(\S+)/.exec(readFileSync(SSH_CONFIG, 'utf8'))![1]!;


/** Host pids whose command line mentions `marker` (the box's processes are visible from here). */
function hostProcesses(marker: string): number[] {
  const found: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'latin1').includes(marker)) found.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return found;
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 250));
  }
  return true;
}

/** The pid on the box of the agent's node process. */
function boxAgentPid(): string {
  return boxShell(
    // [x]: the searching shell's own command line holds the pattern, and must not match it.
    `for p in /proc/[0-9]*; do c=$(tr "\\0" " " < $p/cmdline 2>/dev/null); case "$c" in *outrun-helpe[r]*) ;; *ld-linu[x]*node*agent.js*) echo \${p#/proc/};; esac; done; true`,
  ).trim();
}

describe('faults injected on the link and the box', { timeout: 5 * 60_000 }, () => {
  test('without resume, the network goes silent: outrun exits 255 within its keepalive, the box cleans itself, a waiting read gets EIO', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'outrun-link-'));
    const f = path.join(work, 'data');
    spawnSync('sh', ['-c', `seq 1 1000 > '${f}'`]);
    boxShell('rm -f /dev/shm/outrun-link-err');
    // The command keeps reading a local file through the mount; when the link dies, one read
    // is left waiting on it.
    const script = `echo ready; while cat '${f}' >/dev/null 2>>/dev/shm/outrun-link-err; do :; done; exec sleep 1030`;
    const run = startRun(['-o', 'ReconnectTimeout=0', '-o', 'ServerAliveInterval=1', '-o', 'ServerAliveCountMax=2', 'box', 'sh', '-c', script]);
    await run.ready;
    const session = boxShell('ls /run/outrun').trim();
    assert.match(session, /^s-[0-9a-f]+$/);
    let routed = false;
    try {
      assert.equal(spawnSync('ip', ['route', 'add', 'blackhole', `${BOX_ADDR}/32`]).status, 0);
      routed = true;
      const code = await run.exited;
      assert.equal(code, 255, run.stderr());
      assert.match(run.stderr(), /^outrun: .*(lost|ended|timed out|keepalive)/i);
      assert.equal(run.stderr().trim().split('\n').length, 1, run.stderr());
      // Still no packet gets through: the box must notice by itself (agent pings) and end the
      // session: its helpers (which carry the session name) leave, and everything with them.
      assert.ok(await until(() => hostProcesses(session).length === 0, 60_000), `session ${session} still on the box`);
    } finally {
      if (routed) spawnSync('ip', ['route', 'del', 'blackhole', `${BOX_ADDR}/32`]);
    }
    try {
      assert.equal(await waitBoxClean(30_000), '');
      const log = boxShell('cat /dev/shm/outrun-link-err 2>/dev/null; true');
      assert.match(log, /Input\/output error/, `the waiting read's error: ${JSON.stringify(log)} (${boxShell('ls -la /dev/shm; true').trim()})`);
    } finally {
      boxShell('rm -f /dev/shm/outrun-link-err');
      rmSync(work, { recursive: true, force: true });
    }
  });

  test('without resume, the agent hears nothing for 20 s while SSH stays up: it gives up with its figures, outrun exits 255 with one line', async () => {
    // Stopping outrun freezes everything it sends, while the kernel keeps the TCP connection
    // (and so sshd's session) alive: only the agent's own watch can notice.
    const run = startRun(['-o', 'ReconnectTimeout=0', '-o', 'ServerAliveInterval=0', 'box', 'sh', '-c', 'echo ready; exec sleep 1032']);
    await run.ready;
    // Frozen once the command waits (not while it still loads sleep through the mount).
    assert.ok(await until(() => boxShell('ps -eo args').includes('sleep 1032'), 10_000), 'sleep did not start');
    run.child.kill('SIGSTOP');
    try {
      // The agent gives up after LINK_SILENCE_MS (20 s) of silence, then its helper ends.
      assert.ok(await until(() => boxAgentPid() === '', 60_000), 'the agent is still running on the box');
    } finally {
      run.child.kill('SIGCONT');
    }
    const code = await run.exited;
    assert.equal(code, 255, run.stderr());
    const lines = run.stderr().trim().split('\n');
    assert.equal(lines.length, 1, run.stderr());
    assert.match(lines[0]!, /^outrun: the connection to the remote was lost during the run \(the agent: link lost: no byte from the local side for 2\d\.\d s .*requests unanswered\)/);
    assert.equal(await waitBoxClean(10_000), '');
  });

  test('the agent is killed on the box: outrun says so, exits 254, the mounts are released', async () => {
    const run = startRun(['box', 'sh', '-c', 'echo ready; exec sleep 1031']);
    await run.ready;
    const pid = boxAgentPid();
    assert.match(pid, /^\d+$/);
    boxShell(`kill -9 ${pid}`);
    const code = await run.exited;
    assert.equal(code, 254, run.stderr());
    assert.match(run.stderr(), /^outrun: .*agent/);
    assert.equal(run.stderr().trim().split('\n').length, 1, run.stderr());
    assert.equal(await waitBoxClean(10_000), '');
  });

  test('the link cut in the middle of a write leaves a prefix of what was written, no invented bytes', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'outrun-cut-'));
    try {
      const f = path.join(work, 'stream');
      // 16-byte lines, written for as long as the link lasts.
      const run = startRun(['box', 'sh', '-c', `(echo ready; yes abcdefghijklmno) > '${f}'`]);
      await new Promise((r) => setTimeout(r, 300));
      await until(() => {
        try {
          return readFileSync(f).length > 4 * 1024 * 1024;
        } catch {
          return false;
        }
      }, 60_000);
      const helpers = boxShell(
        `for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q '^/[^ ]*outrun-helper exe[c]' && echo $p; done; true`,
      ).trim().split('\n');
      assert.equal(helpers.length, 1, 'found the exec helper');
      boxShell(`kill -9 $(awk '/^PPid:/ {print $2}' ${helpers[0]}/status)`);
      const code = await run.exited;
      assert.equal(code, 255, run.stderr());
      assert.equal(await waitBoxClean(10_000), '');
      const got = readFileSync(f);
      const expected = Buffer.concat([Buffer.from('ready\n'), Buffer.from('abcdefghijklmno\n'.repeat(Math.ceil(got.length / 16)))]);
      assert.ok(got.length > 4 * 1024 * 1024, `${got.length} bytes written`);
      const firstBad = got.findIndex((b, i) => b !== expected[i]);
      assert.equal(firstBad, -1, `byte ${firstBad} of ${got.length} differs from what the command wrote`);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
