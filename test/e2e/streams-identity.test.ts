// End to end, without a terminal: signals sent to outrun reach the command, pipes behave as
// local pipes (SIGPIPE both ways, EOF, gigabytes with flat memory, order within a stream),
// and the command has the local identity, limits, environment (byte for byte), working
// directory and /tmp. Where it makes sense, the same shell line runs locally and through
// outrun and the outputs are compared.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CLI, ROOT, SSH_CONFIG, onBox, startLongRun, waitBoxClean } from './harness';
import { shellQuote } from '../../src/client/shell-quote';
import { localUser, type LocalUser } from './local-user';

const OUTRUN = `${shellQuote([process.execPath, CLI, '-F', SSH_CONFIG])} box`;
const bash = (script: string, opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}) =>
  spawnSync('bash', ['-c', script], { encoding: 'utf8', timeout: 120_000, cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env });

/** Starts outrun running `script`; resolves `ready` once the script printed "ready". */
const startRun = (script: string) => startLongRun(['box', 'sh', '-c', script]);

/** Peak resident memory (kB) of a process, sampled until it exits. */
function watchPeakRss(pid: number): () => number {
  let peak = 0;
  const timer = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]));
    } catch {
      clearInterval(timer);
    }
  }, 100);
  return () => {
    clearInterval(timer);
    return peak;
  };
}

describe('signals, streams and identity through outrun', { timeout: 15 * 60_000 }, () => {
  let work: string;

  before(() => {
    work = mkdtempSync(path.join(tmpdir(), 'outrun-streams-'));
    chmodSync(work, 0o755);
  });
  after(async () => {
    rmSync(work, { recursive: true, force: true });
    assert.equal(await waitBoxClean(), '');
  });

  for (const [sig, n] of [
    ['SIGHUP', 1],
    ['SIGQUIT', 3],
    ['SIGUSR1', 10],
    ['SIGUSR2', 12],
  ] as const) {
    test(`${sig} sent to outrun ends the command by ${sig}: status ${128 + n}`, async () => {
      const run = startRun('echo ready; exec sleep 1010');
      await run.ready;
      run.child.kill(sig);
      assert.equal(await run.exited, 128 + n, run.stderr());
    });
  }

  test('a signal the command handles is delivered as itself, and the command decides the status', async () => {
    const run = startRun('trap "echo got-USR2; exit 42" USR2; trap "echo got-HUP" HUP; echo ready; while :; do sleep 0.1; done');
    await run.ready;
    run.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 500));
    run.child.kill('SIGUSR2');
    assert.equal(await run.exited, 42, run.stderr());
    assert.equal(run.out(), 'ready\ngot-HUP\ngot-USR2\n');
  });

  test('yes | outrun box head -1 ends, with the statuses of the local pipeline', () => {
    const line = (cmd: string) => `yes | ${cmd} head -1; echo "status \${PIPESTATUS[*]}"`;
    const local = bash(line(''));
    const remote = bash(line(OUTRUN));
    assert.equal(local.stdout, 'y\nstatus 141 0\n');
    assert.equal(remote.stdout, local.stdout, remote.stderr);
  });

  test('outrun box yes | head -1: the command gets SIGPIPE (141) as locally', () => {
    const line = (cmd: string) => `${cmd} yes | head -1; echo "status \${PIPESTATUS[*]}"`;
    const local = bash(line(''));
    const remote = bash(line(OUTRUN));
    assert.equal(local.stdout, 'y\nstatus 141 0\n');
    assert.equal(remote.stdout, local.stdout);
    assert.equal(remote.stderr, '');
  });

  test('stdin: EOF after partial lines, and an empty stdin, as locally', () => {
    const script = `while read -r l; do echo "[$l]"; done; echo "last [$l]"; echo end`;
    const line = (cmd: string) => `printf 'a\\nb c\\nno newline' | ${cmd} sh -c '${script}'; ${cmd} cat < /dev/null; echo "cat $?"`;
    const local = bash(line(''));
    const remote = bash(line(OUTRUN));
    assert.equal(local.stdout, '[a]\n[b c]\nlast [no newline]\nend\ncat 0\n');
    assert.equal(remote.stdout, local.stdout, remote.stderr);
  });

  test('stdout and stderr each keep their order, all lines, under load', async () => {
    const r = await onBox(['sh', '-c', 'i=0; while [ $i -lt 5000 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done']);
    assert.equal(r.status, 0);
    const want = (s: string) => Array.from({ length: 5000 }, (_, i) => `${s} ${i}\n`).join('');
    assert.equal(r.stdout.toString(), want('out'));
    assert.equal(r.stderr, want('err'));
  });

  for (const way of ['in', 'out'] as const) {
    test(`1 GiB ${way === 'in' ? 'into the command through stdin' : 'out of the command through stdout'}: all bytes, local outrun's memory stays flat`, async () => {
      const GiB = 1 << 30;
      const producer =
        way === 'in' ? spawn('head', ['-c', String(GiB), '/dev/zero'], { stdio: ['ignore', 'pipe', 'inherit'] }) : undefined;
      const consumer = way === 'out' ? spawn('wc', ['-c'], { stdio: ['pipe', 'pipe', 'inherit'] }) : undefined;
      const consumed = consumer ? new Promise((r) => consumer.on('close', r)) : Promise.resolve();
      const command = way === 'in' ? ['wc', '-c'] : ['head', '-c', String(GiB), '/dev/zero'];
      const child = spawn(process.execPath, [CLI, '-F', SSH_CONFIG, 'box', ...command], {
        cwd: ROOT,
        stdio: [producer ? producer.stdout! : 'ignore', consumer ? consumer.stdin! : 'pipe', 'pipe'],
      });
      consumer?.stdin!.destroy(); // outrun has it now; wc sees EOF when outrun closes it
      const peak = watchPeakRss(child.pid!);
      let out = '';
      let err = '';
      child.stdout?.on('data', (d) => (out += d));
      child.stderr!.on('data', (d) => (err += d));
      consumer?.stdout!.on('data', (d) => (out += d));
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
      await consumed;
      const peakMb = peak() / 1024;
      console.log(`# 1 GiB ${way}: peak RSS of local outrun ${peakMb.toFixed(0)} MB`);
      assert.equal(code, 0, err);
      assert.equal(out.trim(), String(GiB));
      assert.ok(peakMb > 0 && peakMb < 300, `peak RSS ${peakMb.toFixed(0)} MB`);
    });
  }

  test('the environment arrives byte for byte: newlines, = in values, empty values, bytes that are not UTF-8', () => {
    // bash's $'...' makes the bytes (node could not pass them itself).
    const setup = `export NL=$'line one\\nline two\\n' EQ='a=b==c' EMPTY= BIN=$'\\xff\\xfe caf\\xe9' TAB=$'\\t'; export $'WEIRD_\\xc3\\xa9=name'`;
    const local = spawnSync('bash', ['-c', `${setup}; env -0`], { encoding: 'buffer' });
    const remote = spawnSync('bash', ['-c', `${setup}; ${OUTRUN} env -0`], { encoding: 'buffer', cwd: ROOT });
    assert.equal(remote.status, 0, remote.stderr.toString());
    const entries = (b: Buffer) =>
      b
        .toString('latin1')
        .split('\0')
        .filter((e) => e && !e.startsWith('_='))
        .sort();
    const want = entries(local.stdout);
    assert.ok(want.includes('BIN=\xff\xfe caf\xe9'));
    assert.ok(want.includes('NL=line one\nline two\n'));
    assert.deepEqual(entries(remote.stdout), want);
  });

  test('the working directory reached through a symlink: pwd, pwd -P and $PWD as locally', () => {
    const real = path.join(work, 'real dir');
    mkdirSync(real);
    const link = path.join(work, 'link to dir');
    symlinkSync(real, link);
    const env = { ...process.env, PWD: link };
    const script = `sh -c 'pwd; pwd -P; echo "$PWD"; ls -d ../"link to dir"'`;
    const local = bash(script, { cwd: link, env });
    const remote = bash(`${OUTRUN} ${script}`, { cwd: link, env });
    assert.equal(local.stdout, `${link}\n${real}\n${link}\n../link to dir\n`);
    assert.equal(remote.stdout, local.stdout, remote.stderr);
  });

  describe('as a local user who is not root, with supplementary groups', () => {
    let user: LocalUser;
    const rootFile = path.join(tmpdir(), `outrun-e2e-sticky-${process.pid}`);

    before(() => {
      user = localUser('outrun-e2e-id', ['outrun-e2e-g1', 'outrun-e2e-g2']);
      writeFileSync(rootFile, 'root owns this\n', { mode: 0o666 });
      chmodSync(rootFile, 0o666);
    });
    after(() => rmSync(rootFile, { force: true }));

    /** Runs `script` with bash as the user: locally, and with `cmd` prefixed (outrun). */
    const asUser = (script: string) =>
      spawnSync('runuser', ['-u', user.name, '--', 'bash', '-c', script], {
        encoding: 'utf8',
        cwd: '/',
        env: { PATH: process.env.PATH, HOME: user.home, LANG: 'C', USER: user.name },
        timeout: 120_000,
      });
    test('uid, gid, supplementary groups, umask and the rlimits a build cares about are the local ones', () => {
      const limits = 'umask 027; ulimit -n 700; ulimit -c 0; ulimit -S -s 4096; ulimit -S -f 4000000; ulimit -S -t 3600';
      const show = `bash -c 'id -u; id -g; id -G; umask; for o in n Hn s Hs c f t d v u; do printf "%s " $(ulimit -$o 2>&1 || echo -); done; echo'`;
      const local = asUser(`${limits}; ${show}`);
      const remote = asUser(`${limits}; ${shellQuote([process.execPath, CLI, '-F', user.sshConfig])} box ${show}`);
      assert.equal(local.status, 0, local.stderr);
      const lines = local.stdout.split('\n');
      assert.equal(lines[0], String(user.uid));
      assert.equal(lines[2].split(' ').length, 3, 'primary group and two supplementary groups');
      assert.equal(lines[3], '0027');
      assert.match(lines[4], /^700 /);
      assert.equal(remote.stdout, local.stdout, remote.stderr);
      assert.equal(remote.status, 0);
    });

    test('/tmp is the local /tmp with its sticky bit: gcc works there, files of others cannot be removed', () => {
      const script = [
        `stat -c '%a %U' /tmp`,
        `rm -f ${rootFile}; echo "rm of a root file: $?"`,
        `cat ${rootFile}`,
        `t=$(mktemp /tmp/outrun-e2e-XXXXXX) && echo mine > "$t" && cat "$t" && rm "$t" && echo "own temp file removed"`,
        `cd "$HOME" && printf '#include <stdio.h>\\nint main(void) { puts("compiled"); return 7; }\\n' > t.c`,
        `gcc -o t t.c && ./t; echo "status $?"; rm -f t t.c`,
      ].join('\n');
      const local = asUser(script);
      const remote = asUser(`${shellQuote([process.execPath, CLI, '-F', user.sshConfig])} box bash -c '${script.replace(/'/g, `'\\''`)}'`);
      assert.equal(
        local.stdout,
        `1777 root\nrm of a root file: 1\nroot owns this\nmine\nown temp file removed\ncompiled\nstatus 7\n`,
        local.stderr,
      );
      assert.match(local.stderr, /Operation not permitted/);
      assert.equal(remote.stdout, local.stdout, remote.stderr);
      assert.equal(remote.stderr, local.stderr);
    });
  });
});
