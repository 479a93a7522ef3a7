// End to end: --timeout and --kill-after, differentially against coreutils timeout(1). The
// same command runs locally under `timeout` and through outrun with --timeout (directly,
// through a master, with -t, in a real terminal); exit statuses and output must be equal, and
// nothing may be left on the box: no process of the command's group, no agent or mount (the
// master's own, while it lives, aside). Times are only checked against loose bounds.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CLI, ROOT, SSH_CONFIG, boxShell, outrun, waitBoxClean, waitEmpty } from './harness';
import { shellQuote } from '../../src/client/shell-quote';
import { closeTmux, tmux, waitForScreen } from './tmux';

after(closeTmux);

/** Processes on the box whose command line holds `sleep 987.` (each case sleeps its own 987.N). */
function boxSleepers(): string {
  // The pattern is split so that this script's own shell (and its subshells) do not match it.
  return boxShell(
    [
      'pat="sleep 98""7."',
      'for p in /proc/[0-9]*; do',
      '  c=$(tr "\\0" " " < $p/cmdline 2>/dev/null)',
      '  case "$c" in *"$pat"*) echo "process ${p#/proc/}: $c";; esac',
      'done',
      'true',
    ].join('\n'),
  ).trim();
}

const waitNoSleepers = (ms = 5000) => waitEmpty(boxSleepers, ms);

interface Case {
  name: string;
  /** timeout(1)'s options and DURATION, the same for outrun's --kill-after and --timeout. */
  killAfter?: string;
  duration: string;
  script: string;
  /** The status both must give. */
  status: number;
}

const CASES: Case[] = [
  { name: 'finishes in time and keeps its own status and output', duration: '30', script: 'echo out; echo err >&2; exit 3', status: 3 },
  { name: 'its own status is 124', duration: '30', script: 'echo out; exit 124', status: 124 },
  { name: 'ends on the TERM, its child too (the whole group)', duration: '5', script: 'echo start; sleep 987.1; echo after', status: 124 },
  { name: 'traps TERM and exits 3: still 124', duration: '4.5', script: 'trap "echo got TERM; exit 3" TERM; echo start; sleep 987.2 & wait', status: 124 },
  { name: 'ignores TERM: killed after --kill-after, 137', killAfter: '1.5', duration: '4', script: 'trap "" TERM; echo start; sleep 987.3; echo after', status: 137 },
];

/** The case under the local timeout(1) (async: it runs alongside outrun's run of it). */
function local(c: Case): Promise<{ status: number; stdout: string; stderr: string }> {
  const args = [...(c.killAfter ? ['-k', c.killAfter] : []), c.duration, 'sh', '-c', c.script];
  return new Promise((resolve, reject) => {
    const child = spawn('timeout', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    // timeout(1)'s own SIGKILL to its group ends it too: a shell says 137 then.
    child.on('close', (status, signal) => resolve({ status: status ?? 128 + (signal === 'SIGKILL' ? 9 : 0), stdout, stderr }));
  });
}

const outrunArgs = (c: Case, extra: string[]) => [
  '-F',
  SSH_CONFIG,
  ...extra,
  '--timeout',
  c.duration,
  ...(c.killAfter ? ['--kill-after', c.killAfter] : []),
  'box',
  'sh',
  '-c',
  c.script,
];

/** Runs every case both ways with `extra` options; `crlf`: outrun's output came through a pty. */
async function differential(extra: string[], crlf = false): Promise<void> {
  for (const c of CASES) {
    const t0 = Date.now();
    const [want, got] = await Promise.all([local(c), outrun(outrunArgs(c, extra))]);
    const ms = Date.now() - t0;
    assert.equal(want.status, c.status, `${c.name}: timeout(1) itself`);
    assert.equal(got.status, want.status, `${c.name}: ${got.stderr}`);
    // With a pty the command's stderr is the pty too (outrun's stdout), lines end in CRLF.
    if (crlf) assert.equal(got.stdout.toString().replace(/\r\n/g, '\n'), want.stdout + want.stderr, c.name);
    else {
      assert.equal(got.stdout.toString(), want.stdout, c.name);
      assert.equal(got.stderr, want.stderr, c.name);
    }
    // Loose: the limit plus the grace plus the run's own start and end.
    const bound = (Number(c.duration) + Number(c.killAfter ?? 0)) * 1000 + 15_000;
    assert.ok(ms < bound, `${c.name}: ${ms} ms`);
    assert.equal(await waitNoSleepers(), '', `${c.name}: the command's group is gone`);
  }
}

test('direct runs: as timeout(1), and nothing is left on the box', { timeout: 180_000 }, async () => {
  await differential(['-S', 'none']);
  assert.equal(await waitBoxClean(), '');
});

test('direct runs without resume (-o ReconnectTimeout=0): the same', { timeout: 180_000 }, async () => {
  await differential(['-S', 'none', '-o', 'ReconnectTimeout=0']);
  assert.equal(await waitBoxClean(), '');
});

test('with -t (a remote pty): as timeout(1), the output through the pty', { timeout: 180_000 }, async () => {
  await differential(['-S', 'none', '-t'], true);
  assert.equal(await waitBoxClean(), '');
});

test('through a master: as timeout(1); the command group is gone while the master lives; clean after -O exit', { timeout: 240_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-timeout-'));
  chmodSync(dir, 0o700);
  const sock = path.join(dir, 'm.sock');
  try {
    // The first run starts the master; every case then runs through it, -t ones too.
    const first = await outrun(['-F', SSH_CONFIG, '-S', sock, '-o', 'ControlPersist=120', 'box', 'true']);
    assert.equal(first.status, 0, first.stderr);
    await differential(['-S', sock]);
    await differential(['-S', sock, '-t'], true);
    const check = spawnSync(process.execPath, [CLI, '-F', SSH_CONFIG, '-S', sock, '-O', 'check', 'box'], { encoding: 'utf8' });
    assert.equal(check.status, 0, `the master outlived its timed-out runs: ${check.stderr}`);
  } finally {
    const r = await outrun(['-F', SSH_CONFIG, '-S', sock, '-O', 'exit', 'box']);
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.status, 0, r.stderr);
  }
  assert.equal(await waitBoxClean(), '');
});

test('without --kill-after a command that ignores TERM is killed after 10 s: 137, as timeout -k 10', { timeout: 120_000 }, async () => {
  const c: Case = { name: 'default grace', killAfter: '10', duration: '4', script: 'trap "" TERM; echo start; sleep 987.4', status: 137 };
  const t0 = Date.now();
  const [want, got] = await Promise.all([local(c), outrun(['-F', SSH_CONFIG, '-S', 'none', '--timeout', c.duration, 'box', 'sh', '-c', c.script])]);
  const ms = Date.now() - t0;
  assert.equal(got.status, want.status, got.stderr);
  assert.equal(got.status, 137);
  assert.equal(got.stdout.toString(), want.stdout);
  assert.equal(got.stderr, '');
  assert.ok(ms >= 14_000 && ms < 35_000, `${ms} ms: the limit and then the grace of 10 s`);
  assert.equal(await waitNoSleepers(), '');
  assert.equal(await waitBoxClean(), '');
});

test('out of time before the command started: 124, one line, the command never ran, nothing left', { timeout: 60_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-timeout-'));
  try {
    const marker = path.join(dir, 'ran');
    for (const extra of [[], ['-o', 'ReconnectTimeout=0'], ['-t']]) {
      const r = await outrun(['-F', SSH_CONFIG, '-S', 'none', ...extra, '--timeout', '0.05', 'box', 'touch', marker]);
      assert.equal(r.status, 124, r.stderr);
      assert.equal(r.stdout.length, 0);
      assert.match(r.stderr, /^outrun: the --timeout of 0\.05 s ran out before the command started .*nothing was run\n$/);
      assert.equal(existsSync(marker), false, 'the command did not run');
      assert.equal(await waitBoxClean(), '', `${extra.join(' ')}: nothing left`);
    }
    // Later: in the middle of the set-up (connecting or mounting: where depends on the machine).
    for (const d of ['0.3', '0.6', '0.9']) {
      const r = await outrun(['-F', SSH_CONFIG, '-S', 'none', '--timeout', d, 'box', 'sh', '-c', `touch ${shellQuote([marker])}; sleep 987.5`]);
      assert.equal(r.status, 124, r.stderr);
      assert.equal(await waitNoSleepers(), '');
      assert.equal(await waitBoxClean(), '', `--timeout ${d}: nothing left`);
      rmSync(marker, { force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad DURATIONs: exit 2 with one line, as other bad options; 0 means no limit', async () => {
  for (const bad of ['1x', '-1', '', 'abc', '1.2.3', '0x10']) {
    const r = await outrun(['-F', SSH_CONFIG, '--timeout', bad, 'box', 'true']);
    assert.equal(r.status, 2, bad);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
    assert.match(r.stderr, /^outrun: --timeout '.*' is not a duration/);
  }
  const k = await outrun(['-F', SSH_CONFIG, '--kill-after', '1', 'box', 'true']);
  assert.equal(k.status, 2);
  assert.match(k.stderr, /^outrun: --kill-after needs --timeout/);
  const zero = await outrun(['-F', SSH_CONFIG, '-S', 'none', '--timeout', '0', 'box', 'sh', '-c', 'sleep 1; exit 5']);
  assert.equal(zero.status, 5, zero.stderr);
});

test('in a real terminal (tmux): 137 after the grace, and the terminal is restored', { timeout: 60_000 }, async () => {
  const session = `outrun-timeout-${process.pid}`;
  const outrunCmd = shellQuote([process.execPath, CLI, '-F', SSH_CONFIG, '-S', 'none', '--timeout', '5', '--kill-after', '1', 'box', 'sh', '-c', 'trap "" TERM; echo start; sleep 987.6']);
  const localCmd = shellQuote(['timeout', '-k', '1', '5', 'sh', '-c', 'trap "" TERM; echo start; sleep 987.6']);
  const script = `${localCmd}; echo "LOCAL=$?"; stty -g > /dev/null; a=$(stty -g); ${outrunCmd}; echo "OUTRUN=$?"; [ "$(stty -g)" = "$a" ] && echo SAME-MODE; sleep 60`;
  const started = tmux('new-session', '-d', '-s', session, '-x', '100', '-y', '30', 'sh', '-c', script);
  assert.equal(started.status, 0, started.stderr);
  try {
    const screen = await waitForScreen(session, /OUTRUN=\d+[\s\S]*(SAME-MODE|\$)/, 40_000);
    assert.match(screen, /LOCAL=137/);
    assert.match(screen, /OUTRUN=137/);
    assert.match(screen, /SAME-MODE/);
    assert.equal((screen.match(/^start$/gm) ?? []).length, 2, screen);
  } finally {
    tmux('kill-session', '-t', session);
  }
  assert.equal(await waitNoSleepers(), '');
  assert.equal(await waitBoxClean(), '');
});
