// End to end, in a real terminal (tmux): full-screen and interactive programs of the local
// machine, none of which exists on the box, run through outrun as they would locally:
// a python3 REPL, less, vim (editing a local file) and top.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { boxShell, waitBoxClean } from './harness';
import { OUTRUN, TmuxPane, closeTmux, recordedRun, sleep } from './tmux';

describe('interactive programs in a terminal through outrun', { timeout: 10 * 60_000 }, () => {
  let dir: string;
  const panes: TmuxPane[] = [];
  const pane = (script: string) => {
    const p = new TmuxPane(script, 100, 30);
    panes.push(p);
    return p;
  };
  const sttyUnchanged = () => assert.equal(readFileSync(`${dir}/stty-after`, 'utf8'), readFileSync(`${dir}/stty-before`, 'utf8'));

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'outrun-tprog-'));
    chmodSync(dir, 0o755);
    assert.equal(boxShell('for p in python3 less vim; do command -v $p; done; echo checked').trim(), 'checked', 'the box lacks them');
  });
  after(async () => {
    for (const p of panes) p.kill();
    closeTmux();
    rmSync(dir, { recursive: true, force: true });
    assert.equal(await waitBoxClean(), '');
  });

  test('python3 REPL: expressions, the line editor, Ctrl-C (KeyboardInterrupt), sys.exit status', async () => {
    const p = pane(recordedRun(dir, `${OUTRUN} python3 -q`));
    await p.waitFor(/^>>>/m);
    p.type('6 * 7');
    p.keys('Enter');
    await p.waitFor(/^42\s*$/m);
    p.type('import os, sys; print("tty", os.isatty(0), sys.stdin.isatty())');
    p.keys('Enter');
    await p.waitFor(/^tty True True\s*$/m);
    // Line editing: type, go to the start of the line, insert there.
    p.type('10)');
    p.keys('Home');
    p.type('print(3 * ');
    p.keys('Enter');
    await p.waitFor(/^30\s*$/m);
    p.type('while True: pass');
    p.keys('Enter', 'Enter');
    await sleep(500);
    p.keys('C-c');
    await p.waitFor(/KeyboardInterrupt/);
    await p.waitFor(/KeyboardInterrupt\s*\n>>>/);
    p.type('import sys; sys.exit(5)');
    p.keys('Enter');
    const screen = await p.waitFor(/DONE/);
    assert.match(screen, /EXIT=5/);
    sttyUnchanged();
  });

  test('python3 REPL ends at Ctrl-D (end of input on the terminal)', async () => {
    const p = pane(recordedRun(dir, `${OUTRUN} python3 -q`));
    await p.waitFor(/^>>>/m);
    p.keys('C-d');
    const screen = await p.waitFor(/DONE/);
    assert.match(screen, /EXIT=0/);
    sttyUnchanged();
  });

  test('less pages a local file, searches, and quits', async () => {
    const f = path.join(dir, 'lines.txt');
    writeFileSync(f, Array.from({ length: 500 }, (_, i) => `line number ${i + 1}\n`).join(''));
    const p = pane(recordedRun(dir, `${OUTRUN} less ${f}`));
    let screen = await p.waitFor(/^line number 29\s*$/m);
    assert.match(screen, /^line number 1\s*$/m);
    assert.doesNotMatch(screen, /^line number 30\s*$/m, 'one screen of 30 rows: 29 lines and the prompt');
    p.keys('Space');
    screen = await p.waitFor(/^line number 58\s*$/m);
    assert.doesNotMatch(screen, /^line number 1\s*$/m);
    p.type('/number 321');
    p.keys('Enter');
    await p.waitFor(/^line number 321\s*$/m);
    p.keys('G');
    await p.waitFor(/^line number 500\s*$/m);
    p.keys('q');
    screen = await p.waitFor(/DONE/);
    assert.match(screen, /EXIT=0/);
    sttyUnchanged();
  });

  test('vim edits a local file: insert, save, quit; the file on the local disk has the change', async () => {
    const f = path.join(dir, 'edit-me.txt');
    writeFileSync(f, 'first line\nsecond line\n');
    const p = pane(recordedRun(dir, `${OUTRUN} vim -u NONE -i NONE -N -n ${f}`));
    await p.waitFor(/^second line\s*$/m);
    await p.waitFor(/edit-me\.txt/);
    p.keys('G', 'o');
    p.type('added through outrun');
    p.keys('Escape');
    p.type(':1s/first/FIRST/');
    p.keys('Enter');
    await p.waitFor(/^FIRST line\s*$/m);
    p.type(':wq');
    p.keys('Enter');
    const screen = await p.waitFor(/DONE/);
    assert.match(screen, /EXIT=0/);
    assert.equal(readFileSync(f, 'utf8'), 'FIRST line\nsecond line\nadded through outrun\n');
    sttyUnchanged();
  });

  test('top shows the box and quits on q', async () => {
    const p = pane(recordedRun(dir, `${OUTRUN} top -d 0.5`));
    let screen = await p.waitFor(/PID\s+USER/);
    assert.match(screen, /^Tasks:/m);
    assert.match(screen, /\btop\b/);
    p.keys('q');
    screen = await p.waitFor(/DONE/);
    assert.match(screen, /EXIT=0/);
    sttyUnchanged();
  });
});
