// End to end: however a run ends (Ctrl-C, SIGTERM, local outrun killed outright), the
// remote command tree, the mounts and the session directory are gone afterwards, and what
// the command wrote before is on the local disk.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CLI, ROOT, SSH_CONFIG, boxShell, startLongRun, waitBoxClean } from './harness';

/** Starts outrun running `script` on the box; resolves once the script printed `ready`. */
const startRun = (script: string, opts: string[] = []) => startLongRun([...opts, 'box', 'sh', '-c', script]);
/** Today's way out when the link goes: a run that resumes waits for it (resume.test.ts). */
const NO_RESUME = ['-o', 'ReconnectTimeout=0'];

/**
 * Processes on the box whose command line contains the marker. The pattern brackets its
 * last character so that the searching shell and grep (whose own command lines hold the
 * pattern) do not match it.
 */
function boxProcesses(marker: string): string[] {
  const pattern = `${marker.slice(0, -1)}[${marker.slice(-1)}]`;
  return boxShell(`for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q -- '${pattern}' && echo $p; done; true`)
    .split('\n')
    .filter(Boolean);
}

describe('interrupted runs leave nothing behind', { timeout: 5 * 60_000 }, () => {
  test('SIGINT reaches the command: outrun exits 130 and the box is clean', async () => {
    const work = mkdtempSync(path.join(tmpdir(), 'outrun-int-'));
    try {
      const f = path.join(work, 'before-interrupt');
      const run = startRun(`echo written > '${f}'; echo ready; exec sleep 1000 # int-marker`);
      await run.ready;
      assert.ok(boxProcesses('sleep 1000').length > 0, 'the command is running on the box');
      run.child.kill('SIGINT');
      const end = await run.ended;
      assert.equal(end.code, 130, run.stderr());
      assert.equal(readFileSync(f, 'utf8'), 'written\n');
      assert.equal(await waitBoxClean(), '');
      assert.deepEqual(boxProcesses('sleep 1000'), []);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test('SIGTERM reaches the command: outrun exits 143', async () => {
    const run = startRun('echo ready; exec sleep 1001');
    await run.ready;
    run.child.kill('SIGTERM');
    const end = await run.ended;
    assert.equal(end.code, 143, run.stderr());
    assert.equal(await waitBoxClean(), '');
  });

  test('a command that ignores SIGINT is ended by a second SIGINT', async () => {
    const run = startRun("trap '' INT; echo ready; while :; do sleep 1; done");
    await run.ready;
    run.child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(run.child.exitCode, null, 'still running after the first SIGINT');
    run.child.kill('SIGINT');
    const end = await run.ended;
    assert.equal(end.code, 137, run.stderr());
    assert.equal(await waitBoxClean(), '');
  });

  test('local outrun killed with SIGKILL, without resume: the agent notices and cleans the box at once', async () => {
    const run = startRun('echo ready; exec sleep 1002', NO_RESUME);
    await run.ready;
    run.child.kill('SIGKILL');
    await run.ended;
    assert.equal(await waitBoxClean(10_000), '');
    assert.deepEqual(boxProcesses('sleep 1002'), []);
  });

  test('the link dies mid-run (the box kills our sshd session), without resume: outrun exits 255, the box is clean', async () => {
    const run = startRun('echo ready; exec sleep 1003', NO_RESUME);
    await run.ready;
    const helpers = boxProcesses('outrun-helper exec');
    assert.equal(helpers.length, 1);
    // The sshd process that serves our connection is the exec helper's parent.
    boxShell(`kill -9 $(awk '/^PPid:/ {print $2}' ${helpers[0]}/status)`);
    const end = await run.ended;
    assert.equal(end.code, 255, run.stderr());
    assert.match(run.stderr(), /^outrun: .*(lost|ended)/);
    assert.equal(run.stderr().trim().split('\n').length, 1);
    assert.equal(await waitBoxClean(10_000), '');
  });

  test('stdin closed early: the command sees EOF and ends', async () => {
    const child = spawn(process.execPath, [CLI, '-F', SSH_CONFIG, 'box', 'wc', '-c'], { cwd: ROOT });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stdin.end('12345');
    const code = await new Promise((r) => child.on('exit', r));
    assert.equal(code, 0);
    assert.equal(out.trim(), '5');
    assert.ok(!existsSync('/nonexistent'));
  });
});
