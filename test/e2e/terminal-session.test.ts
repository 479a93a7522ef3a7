// End to end, in a real terminal (tmux): the remote pty has the local size and TERM, window
// resizes reach the command as SIGWINCH, Ctrl-C / Ctrl-\ / Ctrl-Z act on the remote
// foreground job, and the local terminal's mode is the same afterwards (stty -g) however
// the run ended: normally, with an error, or by a signal sent to outrun.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { boxShell, waitBoxClean } from './harness';
import { OUTRUN, TmuxPane, closeTmux, recordedRun, sleep } from './tmux';

/** Children of a local process (the pane's shell runs outrun as its child). */
function childPids(pid: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  return r.stdout.split('\n').map((s) => Number(s.trim())).filter((n) => n > 0);
}

describe('a terminal session through outrun', { timeout: 10 * 60_000 }, () => {
  let dir: string;
  const panes: TmuxPane[] = [];
  const pane = (script: string, cols?: number, rows?: number) => {
    const p = new TmuxPane(script, cols, rows);
    panes.push(p);
    return p;
  };
  const sttyUnchanged = () => assert.equal(readFileSync(`${dir}/stty-after`, 'utf8'), readFileSync(`${dir}/stty-before`, 'utf8'));

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'outrun-term-'));
  });
  after(async () => {
    for (const p of panes) p.kill();
    closeTmux();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(await waitBoxClean(), '');
  });

  test('the remote pty has the local size and TERM, and is a terminal on all three streams', async () => {
    const p = pane(
      `echo "local $TERM $(stty size)"; ${OUTRUN} sh -c 'echo "remote $TERM $(stty size)"; test -t 0 && test -t 1 && test -t 2 && echo all-ttys'; echo "EXIT=$?"; sleep 600`,
      97,
      31,
    );
    const screen = await p.waitFor(/EXIT=\d+/);
    const local = /^local (.*)$/m.exec(screen)?.[1];
    assert.match(local ?? '', / 31 97$/);
    assert.match(screen, new RegExp(`^remote ${local!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`, 'm'));
    assert.match(screen, /^all-ttys\s*$/m);
    assert.match(screen, /EXIT=0/);
  });

  test('a window resize reaches the command as SIGWINCH with the new size', async () => {
    const script = `trap 'echo "winch $(stty size)"' WINCH; echo ready; while :; do sleep 0.1; done`;
    const p = pane(recordedRun(dir, `${OUTRUN} bash -c '${script.replace(/'/g, `'\\''`)}'`), 80, 24);
    await p.waitFor(/^ready/m);
    p.resize(120, 40);
    await p.waitFor(/^winch 40 120/m);
    p.resize(90, 20);
    await p.waitFor(/^winch 20 90/m);
    p.keys('C-c');
    const screen = await p.waitFor(/DONE/);
    assert.match(screen, /EXIT=130/);
    sttyUnchanged();
  });

  test('Ctrl-C ends the remote command with SIGINT (130), the terminal is restored', async () => {
    const p = pane(recordedRun(dir, `${OUTRUN} sh -c 'echo ready; exec sleep 1000'`));
    await p.waitFor(/^ready/m);
    p.keys('C-c');
    const screen = await p.waitFor(/DONE/);
    assert.match(screen, /EXIT=130/);
    sttyUnchanged();
  });

  test('Ctrl-\\ ends the remote command with SIGQUIT (131)', async () => {
    const p = pane(recordedRun(dir, `${OUTRUN} sh -c 'echo ready; exec sleep 1000'`));
    await p.waitFor(/^ready/m);
    p.keys('C-\\');
    const screen = await p.waitFor(/DONE/);
    assert.match(screen, /EXIT=131/);
    sttyUnchanged();
  });

  test('Ctrl-Z stops the remote foreground job of an interactive shell; job control works', async () => {
    const p = pane(recordedRun(dir, `${OUTRUN} bash --norc --noprofile -i`));
    await p.waitFor(/[#$] ?$/m);
    p.keys('PS1="prompt> "', 'Enter');
    await p.waitFor(/^prompt>\s*$/m);
    p.keys('sleep 1000', 'Enter');
    await sleep(500);
    p.keys('C-z');
    await p.waitFor(/Stopped\s+sleep 1000/);
    p.keys('jobs; echo "jobs listed"', 'Enter');
    await p.waitFor(/^jobs listed\s*$/m);
    p.keys('fg', 'Enter'); // back in the foreground: the next key acts on it again
    await sleep(500);
    p.keys('C-\\');
    await p.waitFor(/Quit/);
    p.keys('echo "alive $?"; exit 4', 'Enter');
    const screen = await p.waitFor(/DONE/);
    assert.match(screen, /^\[1\]\+\s+Stopped\s+sleep 1000\s*$/m);
    assert.match(screen, /^alive 131\s*$/m, 'Ctrl-\\ ended the resumed sleep, not the shell');
    assert.match(screen, /EXIT=4/);
    sttyUnchanged();
  });

  test('the terminal is restored when the command fails to start (127)', async () => {
    const p = pane(recordedRun(dir, `${OUTRUN} no-such-command-in-a-terminal`));
    const screen = await p.waitFor(/DONE/);
    assert.match(screen, /EXIT=127/);
    sttyUnchanged();
  });

  test('the terminal is restored when the link dies mid-run (255)', async () => {
    const p = pane(recordedRun(dir, `${OUTRUN} sh -c 'echo ready; exec sleep 1004'`));
    await p.waitFor(/^ready/m);
    // The sshd process serving the command's channel is the exec helper's parent.
    boxShell(
      `for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q "^[^ ]*outrun-helper exec" && kill -9 $(awk '/^PPid:/ {print $2}' $p/status); done; true`,
    );
    const screen = await p.waitFor(/DONE/);
    assert.match(screen, /EXIT=255/);
    sttyUnchanged();
  });

  for (const sig of ['SIGTERM', 'SIGHUP', 'SIGINT', 'SIGUSR1'] as const) {
    test(`${sig} sent to outrun reaches the command, and the terminal is restored`, async () => {
      // The command handles the signal and exits 42: outrun passes it on instead of dying.
      const name = sig.slice(3);
      const p = pane(recordedRun(dir, `${OUTRUN} sh -c 'trap "echo got-${name}; exit 42" ${name}; echo ready; while :; do sleep 0.1; done'`));
      await p.waitFor(/^ready/m);
      const outrun = childPids(p.panePid());
      assert.equal(outrun.length, 1, "outrun runs as the pane shell's child");
      process.kill(outrun[0], sig);
      const screen = await p.waitFor(/DONE/);
      assert.match(screen, new RegExp(`^got-${name}\\s*$`, 'm'));
      assert.match(screen, /EXIT=42/);
      sttyUnchanged();
    });
  }
});
