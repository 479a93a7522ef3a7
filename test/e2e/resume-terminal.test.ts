// End to end: a run on a pseudo-terminal survives a dropped link (issue 11 item 3). tmux
// drives a real local terminal; the link is cut with a local blackhole route (as in
// resume.test.ts). The command's pty is the remote helper's, so it outlives the connection:
// its output, keys typed meanwhile, a resize and Ctrl-C all arrive once the link is back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { SSH_CONFIG, boxShell, waitEmpty, boxLeftovers } from './harness';
import { OUTRUN, TmuxPane, closeTmux, recordedRun, sleep, tmux } from './tmux';

const BOX_ADDR = /HostName\s+(\S+)/.exec(readFileSync(SSH_CONFIG, 'utf8'))![1]!;
const FAST = '-o ServerAliveInterval=1 -o ServerAliveCountMax=2';
/** outrun with `opts` (before the host) and fast keepalives, so that a cut is noticed in ~3 s. */
const out = (opts = '') => OUTRUN.replace(/ box$/, ` ${FAST} ${opts} box`);

async function withBlackhole<T>(during: () => Promise<T>): Promise<T> {
  assert.equal(spawnSync('ip', ['route', 'add', 'blackhole', `${BOX_ADDR}/32`]).status, 0, 'blackhole route added');
  try {
    return await during();
  } finally {
    spawnSync('ip', ['route', 'del', 'blackhole', `${BOX_ADDR}/32`]);
  }
}

const relayDirs = () => boxShell('ls -d /tmp/outrun-relay-* 2>/dev/null; true').trim().split('\n').filter(Boolean);
let relaysBefore: string[] = [];
const remains = (marker: string) =>
  [boxLeftovers(), relayDirs().filter((d) => !relaysBefore.includes(d)).join('\n'), boxShell(`ps -eo args | grep -v grep | grep -F '${marker}'; true`).trim()]
    .filter(Boolean)
    .join('\n');

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

describe('a pty run survives a dropped link', { timeout: 8 * 60_000 }, () => {
  let dir = '';
  const panes: TmuxPane[] = [];
  const pane = (script: string, cols = 80, rows = 24) => {
    const p = new TmuxPane(script, cols, rows);
    panes.push(p);
    return p;
  };
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'outrun-resume-pty-'));
    relaysBefore = relayDirs();
  });
  after(() => {
    for (const p of panes) p.kill();
    closeTmux();
    rmSync(dir, { recursive: true, force: true });
  });

  test('cut for 20 s while streaming: exactly the output of an uncut run, keys typed meanwhile once and in order, status 0', async () => {
    // stdout into a file (tee) keeps every byte the pty gave; -t keeps the terminal on stdin.
    const cmd = `stty -echo; i=0; while [ $i -lt 150 ]; do echo "line $i"; i=$((i+1)); sleep 0.1; done; read -r a; read -r b; echo "got <$a> <$b>"`;
    const p = pane(`{ ${out('-t')} sh -c ${q(cmd)}; echo "EXIT=$?" > ${dir}/status; } | tee ${dir}/out; echo DONE; sleep 600`);
    await p.waitFor(/^line 20\s*$/m, 60_000);
    await withBlackhole(async () => {
      await p.waitFor(/the connection is lost; reconnecting/, 15_000);
      p.type('hello');
      p.keys('Enter');
      p.type('world');
      p.keys('Enter');
      await sleep(17_000);
    });
    await p.waitFor(/^DONE/m, 90_000);
    const expected = Array.from({ length: 150 }, (_, i) => `line ${i}\r\n`).join('') + 'got <hello> <world>\r\n';
    assert.equal(readFileSync(`${dir}/status`, 'utf8').trim(), 'EXIT=0', p.screen());
    assert.equal(readFileSync(`${dir}/out`, 'utf8'), expected);
    // The whole scrollback: the line scrolled off the screen since.
    assert.match(tmux('capture-pane', '-p', '-S', '-', '-t', p.name).stdout, /the connection is back after/);
    assert.equal(await waitEmpty(() => remains('line $i'), 20_000, 500), '');
  });

  test('a resize during the outage is seen after resume; Ctrl-C during an outage gives 130 once the link is back', async () => {
    const script = `trap 'echo "winch $(stty size)"' WINCH; echo ready; while :; do sleep 0.1; done`;
    const p = pane(recordedRun(dir, `${out()} bash -c ${q(script)}`), 80, 24);
    await p.waitFor(/^ready/m, 60_000);
    await withBlackhole(async () => {
      await p.waitFor(/the connection is lost; reconnecting/, 15_000);
      p.resize(120, 40);
      await sleep(3000);
      assert.doesNotMatch(p.screen(), /winch/, 'nothing can arrive during the outage');
    });
    await p.waitFor(/^winch 40 120\s*$/m, 60_000);
    assert.doesNotMatch(p.screen(), /winch 24 80/);
    await withBlackhole(async () => {
      await p.waitFor(/the connection is lost; reconnecting[\s\S]*the connection is lost; reconnecting/, 15_000);
      p.keys('C-c');
      await sleep(3000);
      assert.doesNotMatch(p.screen(), /EXIT=/, 'the command still runs during the outage');
    });
    const screen = await p.waitFor(/EXIT=\d+/, 60_000);
    assert.match(screen, /EXIT=130/);
    assert.equal(readFileSync(`${dir}/stty-after`, 'utf8'), readFileSync(`${dir}/stty-before`, 'utf8'), 'terminal restored');
  });

  test('an outage past -o ReconnectTimeout: 255, the command hung up, the box clean', async () => {
    const p = pane(recordedRun(dir, `${out('-o ReconnectTimeout=5')} sh -c ${q('echo ready; exec sleep 1042')}`), 80, 24);
    await p.waitFor(/^ready/m, 60_000);
    await withBlackhole(() => p.waitFor(/EXIT=\d+/, 60_000));
    assert.match(p.screen(), /EXIT=255/);
    assert.match(p.screen(), /did not come back within 5 s/);
    assert.equal(readFileSync(`${dir}/stty-after`, 'utf8'), readFileSync(`${dir}/stty-before`, 'utf8'), 'terminal restored');
    assert.equal(await waitEmpty(() => remains('sleep 1042'), 60_000, 1000), '');
  });
});
