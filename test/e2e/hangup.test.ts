// End to end: a hang-up ends the run as it would locally, and SIGTERM always ends it.
// When the local terminal goes away (tmux kill-session) the remote command is hung up (it gets
// SIGHUP, its terminal reads end), and once it is gone outrun exits with its status and the box
// is clean. SIGTERM reaches the command, and outrun ends within seconds also when the command
// ignores it or the remote does not answer; SIGTERM or SIGHUP during the set-up ends outrun at
// once. Time bounds are generous: they only tell "ended" from "hangs".
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CLI, ROOT, SSH_CONFIG, boxShell, startLongRun, waitBoxClean } from './harness';
import { OUTRUN, TmuxPane, closeTmux, sleep } from './tmux';

const ENDS_WITHIN_MS = 15_000;

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Polls until `pid` is gone; false if it is still there after `ms`. */
async function endsWithin(pid: number, ms = ENDS_WITHIN_MS): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

/** Polls until `file` exists (bounded); its contents, or undefined. */
async function fileWithin(file: string, ms = ENDS_WITHIN_MS): Promise<string | undefined> {
  const deadline = Date.now() + ms;
  while (!existsSync(file)) {
    if (Date.now() > deadline) return undefined;
    await sleep(100);
  }
  await sleep(100); // the writer's echo may still be on its way
  return readFileSync(file, 'utf8');
}

/** Children of a local process (a pane's shell runs outrun as its child). */
function childPids(pid: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
}

/** Runs a shell line on the box against the exec helper of the one session running there. */
const onExecHelper = (what: string) =>
  boxShell(`for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q "^[^ ]*outrun-helper exec" && ${what} \${p#/proc/}; done; true`);

describe('hang-up and termination', { timeout: 10 * 60_000 }, () => {
  let dir: string;
  const panes: TmuxPane[] = [];
  const pane = (script: string) => {
    const p = new TmuxPane(script);
    panes.push(p);
    return p;
  };

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'outrun-hup-'));
  });
  after(async () => {
    for (const p of panes) p.kill();
    closeTmux();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(await waitBoxClean(), '');
  });

  test('tmux kill-session while `outrun box bash -i` runs in an interactive shell: the remote command gets SIGHUP, outrun ends, the box is clean', async () => {
    const marker = path.join(dir, 'remote-shell-hup');
    // As the bug was found: a local interactive shell in the pane, outrun started from it.
    const p = pane('exec bash --norc --noprofile -i');
    await p.waitFor(/[#$] ?$/m);
    p.type(`${OUTRUN} bash --norc --noprofile -i`);
    p.keys('Enter');
    await sleep(500);
    p.keys(`PS1='remote> '`, 'Enter');
    await p.waitFor(/^remote>\s*$/m);
    // A trap in the interactive shell itself would not run (a hung-up bash -i does not run
    // its HUP trap, locally either): the shell hands over to a command that records SIGHUP.
    p.type(`exec sh -c 'trap "echo got-hup > ${marker}; exit 3" HUP; echo trap-set; while :; do sleep 0.1; done'`);
    p.keys('Enter');
    await p.waitFor(/^trap-set\s*$/m);
    const outrun = childPids(p.panePid());
    assert.equal(outrun.length, 1, "outrun runs as the pane shell's child");
    p.kill();
    assert.ok(await endsWithin(outrun[0]!), `outrun (pid ${outrun[0]}) still runs ${ENDS_WITHIN_MS / 1000} s after its terminal went away`);
    assert.equal(readFileSync(marker, 'utf8'), 'got-hup\n', 'the remote shell got SIGHUP');
    assert.equal(await waitBoxClean(), '');
  });

  test('the terminal goes away without a SIGHUP to outrun: the remote bash -i dies of SIGHUP, outrun exits 129 as a local bash -i would', async () => {
    // The pane's shell ignores SIGHUP and outlives its terminal: the kernel signals only that
    // session leader, so outrun learns of the hang-up from its terminal alone (reads end,
    // writes fail), and the shell records outrun's status.
    const status = path.join(dir, 'status-129');
    const p = pane(`trap '' HUP; ${OUTRUN} bash --norc --noprofile -i; echo $? > ${status}`);
    await p.waitFor(/[#$] ?$/m);
    p.keys(`PS1='remote> '`, 'Enter');
    await p.waitFor(/^remote>\s*$/m);
    p.kill();
    assert.equal(await fileWithin(status), '129\n');
    assert.equal(await waitBoxClean(), '');
  });

  test('the terminal goes away while the command writes to it: what was on its way is dropped, outrun ends with the status', async () => {
    // Output still in flight when the terminal died fails to be written locally (EIO): it must
    // not stall the command's channel (outrun would never see the command end).
    const status = path.join(dir, 'status-ticking');
    const p = pane(`trap '' HUP; ${OUTRUN} sh -c 'trap "exit 3" HUP; while :; do echo tick; sleep 0.01; done'; echo $? > ${status}`);
    await p.waitFor(/^tick/m);
    await sleep(300);
    p.kill();
    assert.equal(await fileWithin(status), '3\n');
    assert.equal(await waitBoxClean(), '');
  });

  test('tmux kill-session with outrun as the pane itself (it gets SIGHUP from the kernel): the command handles SIGHUP, outrun ends', async () => {
    const marker = path.join(dir, 'handled-hup');
    const p = pane(`exec ${OUTRUN} sh -c 'trap "echo got-hup > ${marker}; exit 3" HUP; echo ready; while :; do sleep 0.1; done'`);
    await p.waitFor(/^ready/m);
    const outrun = p.panePid();
    p.kill();
    assert.ok(await endsWithin(outrun), `outrun (pid ${outrun}) still runs ${ENDS_WITHIN_MS / 1000} s after its terminal went away`);
    assert.equal(readFileSync(marker, 'utf8'), 'got-hup\n');
    assert.equal(await waitBoxClean(), '');
  });

  test('SIGTERM to outrun running sleep: exits 143 (the command died of SIGTERM)', async () => {
    const run = startLongRun(['box', 'sh', '-c', 'echo ready; exec sleep 1000']);
    await run.ready;
    run.child.kill('SIGTERM');
    const end = await run.ended;
    assert.equal(end.code, 143, run.stderr());
    assert.ok(end.ms < 60_000);
    assert.equal(await waitBoxClean(), '');
  });

  test('SIGTERM when the command ignores it: outrun kills it after the grace period and ends (137)', async () => {
    const run = startLongRun(['box', 'sh', '-c', "trap '' TERM; echo ready; sleep 1000"]);
    await run.ready;
    const t0 = Date.now();
    run.child.kill('SIGTERM');
    await sleep(1000);
    assert.equal(run.child.exitCode, null, 'the command is given time to end by itself');
    const end = await run.ended;
    assert.equal(end.code, 137, run.stderr());
    assert.ok(Date.now() - t0 < ENDS_WITHIN_MS, `ended ${Date.now() - t0} ms after SIGTERM`);
    assert.equal(await waitBoxClean(), '');
  });

  test('SIGTERM when the remote does not answer (its exec helper stopped): outrun still ends (143)', async () => {
    const run = startLongRun(['box', 'sh', '-c', 'echo ready; exec sleep 1005']);
    await run.ready;
    onExecHelper('kill -STOP');
    try {
      const t0 = Date.now();
      run.child.kill('SIGTERM');
      const end = await run.ended;
      assert.equal(end.code, 143, run.stderr());
      assert.ok(Date.now() - t0 < ENDS_WITHIN_MS, `ended ${Date.now() - t0} ms after SIGTERM`);
    } finally {
      onExecHelper('kill -CONT');
    }
    assert.equal(await waitBoxClean(10_000), '');
  });

  test('SIGHUP to outrun without a terminal (pipes): the command gets SIGHUP', async () => {
    const handled = startLongRun(['box', 'sh', '-c', 'trap "echo got-hup; exit 7" HUP; echo ready; while :; do sleep 0.1; done']);
    await handled.ready;
    handled.child.kill('SIGHUP');
    const end = await handled.ended;
    assert.equal(end.code, 7, handled.stderr());
    assert.match(handled.out(), /^got-hup$/m);

    const plain = startLongRun(['box', 'sh', '-c', 'echo ready; exec sleep 1006']);
    await plain.ready;
    plain.child.kill('SIGHUP');
    assert.equal((await plain.ended).code, 129, plain.stderr());
    assert.equal(await waitBoxClean(), '');
  });

  test('known difference: `nohup outrun` does not keep the command from SIGHUP (Node resets the inherited SIG_IGN)', async () => {
    const child = spawn('nohup', [process.execPath, CLI, '-F', SSH_CONFIG, 'box', 'sh', '-c', 'echo ready; exec sleep 1008'], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const ended = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    await new Promise<void>((resolve) => child.stdout.on('data', (d) => String(d).includes('ready') && resolve()));
    child.kill('SIGHUP');
    // Locally the command would run on; through outrun it dies of the SIGHUP passed on.
    assert.equal(await ended, 129);
    assert.equal(await waitBoxClean(), '');
  });

  for (const sig of ['SIGTERM', 'SIGHUP'] as const) {
    test(`${sig} during the set-up (before the command started) ends outrun at once; the box is clean`, async () => {
      // From the connection to the mount: a run takes about a second to start its command.
      for (const delayMs of [150, 400, 700, 1000]) {
        const run = startLongRun(['box', 'sh', '-c', 'echo ready; exec sleep 1007']);
        await sleep(delayMs);
        const t0 = Date.now();
        run.child.kill(sig);
        const end = await run.ended;
        assert.ok(Date.now() - t0 < ENDS_WITHIN_MS, `${delayMs} ms: ended ${Date.now() - t0} ms after ${sig}`);
        // Before the command runs, the signal's own action ends outrun; once it runs, the
        // command's end is outrun's status (128+N for both).
        const n = sig === 'SIGTERM' ? 15 : 1;
        assert.ok(end.signal === sig || end.code === 128 + n, `${delayMs} ms: ${JSON.stringify(end)} ${run.stderr()}`);
        assert.equal(await waitBoxClean(10_000), '', `${delayMs} ms`);
      }
    });
  }
});
