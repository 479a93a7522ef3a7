// End to end: the built outrun, a real sshd in the test box (which has no python3, no
// ffmpeg, no node), a real FUSE mount, a real chroot and real programs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync, chmodSync, copyFileSync, mkdirSync, chownSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { boxLeftovers, boxShell, hasTestbox, onBox, outrun, ROOT, SSH_CONFIG } from './harness';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('outrun against the test box', { timeout: 15 * 60_000 }, () => {
  let work: string;

  before(() => {
    assert.ok(hasTestbox(), 'the test box is not up (scripts/testbox up)');
    work = mkdtempSync(path.join(tmpdir(), 'outrun-e2e-'));
    chmodSync(work, 0o755);
    // The box really lacks what we are about to run.
    assert.equal(boxShell('command -v python3 ffmpeg node || echo none').trim(), 'none');
  });

  after(() => rmSync(work, { recursive: true, force: true }));

  test('python3, absent on the box, sees the local cwd, environment, uid and umask', async () => {
    const script = 'import os; print(os.getcwd()); print(os.environ["E2E_MARKER"]); print(os.getuid()); m = os.umask(0); print(oct(m))';
    const r = await onBox(['python3', '-c', script], {
      cwd: work,
      env: { ...process.env, E2E_MARKER: 'marker with spaces and "quotes"', PWD: work },
    });
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    const local = spawnSync('sh', ['-c', 'umask'], { encoding: 'utf8' }).stdout.trim();
    assert.equal(
      r.stdout.toString(),
      `${work}\nmarker with spaces and "quotes"\n${process.getuid!()}\n0o${parseInt(local, 8).toString(8)}\n`,
    );
    assert.equal(boxLeftovers(), '');
  });

  test('10 MiB of random bytes through stdin come back on stdout unchanged', async () => {
    const data = randomBytes(10 * 1024 * 1024);
    const r = await onBox(['cat'], { input: data });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.length, data.length);
    assert.equal(sha256(r.stdout), sha256(data));
  });

  test('stdout and stderr stay separate', async () => {
    const r = await onBox(['sh', '-c', 'echo to-out; echo to-err >&2']);
    assert.equal(r.status, 0);
    assert.equal(r.stdout.toString(), 'to-out\n');
    assert.equal(r.stderr, 'to-err\n');
  });

  test('argv passes exactly, with no shell re-parsing', async () => {
    const args = ['a b', "it's", '"q"', '$HOME', '*', 'semi;colon', 'new\nline', ''];
    const r = await onBox(['printf', '[%s]\\n', ...args]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.toString(), args.map((a) => `[${a}]\n`).join(''));
  });

  test('the exit status is the command\'s own', async () => {
    const r = await onBox(['sh', '-c', 'exit 7']);
    assert.equal(r.status, 7);
  });

  test('death by signal N gives 128+N', async () => {
    const r = await onBox(['sh', '-c', 'kill -9 $$']);
    assert.equal(r.status, 137);
    assert.equal(boxLeftovers(), '');
  });

  test('a missing command gives 127 and says so', async () => {
    const r = await onBox(['no-such-command-e2e']);
    assert.equal(r.status, 127);
    assert.match(r.stderr, /no-such-command-e2e: command not found/);
    assert.equal(r.stderr.trim().split('\n').length, 1);
  });

  test('a file that is not executable gives 126', async () => {
    const f = path.join(work, 'not-exec.sh');
    writeFileSync(f, '#!/bin/sh\necho hi\n', { mode: 0o644 });
    const r = await onBox([f]);
    assert.equal(r.status, 126);
    assert.match(r.stderr, /Permission denied/);
  });

  test('a file written remotely is on the local disk when outrun returns', async () => {
    const f = path.join(work, 'written-remotely.txt');
    const r = await onBox(['sh', '-c', `for i in $(seq 1 2000); do echo "line $i"; done > '${f}'; mkdir '${f}.d'; ln -s ../x '${f}.d/link'`]);
    assert.equal(r.status, 0, r.stderr);
    const want = Array.from({ length: 2000 }, (_, i) => `line ${i + 1}\n`).join('');
    assert.equal(readFileSync(f, 'utf8'), want);
    assert.ok(statSync(`${f}.d`).isDirectory());
    assert.equal(spawnSync('readlink', [`${f}.d/link`], { encoding: 'utf8' }).stdout, '../x\n');
  });

  test('ffmpeg transcodes a generated clip and the local ffprobe reads the result', async () => {
    const src = path.join(work, 'in.mp4');
    const out = path.join(work, 'out.mkv');
    const gen = spawnSync(
      'ffmpeg',
      ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc=duration=2:size=320x240:rate=25', '-pix_fmt', 'yuv420p', '-c:v', 'mpeg4', src],
      { encoding: 'utf8' },
    );
    assert.equal(gen.status, 0, gen.stderr);
    const r = await onBox(['ffmpeg', '-v', 'error', '-i', src, '-vf', 'scale=160:120', '-c:v', 'mpeg4', out], { cwd: work });
    assert.equal(r.status, 0, r.stderr);
    const probe = spawnSync(
      'ffprobe',
      ['-v', 'error', '-select_streams', 'v:0', '-count_frames', '-show_entries', 'stream=width,height,nb_read_frames', '-of', 'csv=p=0', out],
      { encoding: 'utf8' },
    );
    assert.equal(probe.status, 0, probe.stderr);
    assert.equal(probe.stdout.trim(), '160,120,50');
    assert.equal(boxLeftovers(), '');
  });

  test('with -t the command gets a remote pty, without it none', async () => {
    const t = await outrun(['-t', '-F', SSH_CONFIG, 'box', 'tty']);
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stdout.toString(), /^\/dev\/pts\/\d+\r?\n$/);
    const r = await onBox(['tty']);
    assert.equal(r.status, 1);
    assert.equal(r.stdout.toString(), 'not a tty\n');
  });

  describe('as a local user who is not root', () => {
    const user = 'outrun-e2e';
    let home: string;
    let uid: number;

    before(() => {
      if (spawnSync('id', ['-u', user]).status !== 0) {
        const add = spawnSync('useradd', ['--create-home', '--shell', '/bin/sh', user], { encoding: 'utf8' });
        assert.equal(add.status, 0, add.stderr);
      }
      uid = Number(spawnSync('id', ['-u', user], { encoding: 'utf8' }).stdout.trim());
      home = spawnSync('sh', ['-c', `getent passwd ${user} | cut -d: -f6`], { encoding: 'utf8' }).stdout.trim();
      // The user's own copy of the box key and config (ssh refuses keys others can read).
      mkdirSync(path.join(home, '.ssh'), { recursive: true, mode: 0o700 });
      const key = path.join(home, '.ssh/id_box');
      copyFileSync(path.join(ROOT, '.testbox/keys/id_ed25519'), key);
      copyFileSync(path.join(ROOT, '.testbox/known_hosts'), path.join(home, '.ssh/known_hosts_box'));
      const cfg = readFileSync(SSH_CONFIG, 'utf8')
        .replace(/IdentityFile .*/, `IdentityFile ${key}`)
        .replace(/UserKnownHostsFile .*/, `UserKnownHostsFile ${path.join(home, '.ssh/known_hosts_box')}`);
      writeFileSync(path.join(home, '.ssh/config'), cfg);
      for (const f of ['', 'id_box', 'known_hosts_box', 'config']) chownSync(path.join(home, '.ssh', f), uid, uid);
      chmodSync(key, 0o600);
    });

    test('runs with that uid and can write only where that user can, exactly as locally', async () => {
      const script = `id -u; id -g; echo ok > '${work}/by-user'; echo "status $?"; echo no > /root/outrun-e2e-forbidden; echo "status $?"`;
      const env = { PATH: process.env.PATH, HOME: home, LANG: 'C' };
      const r = await outrun(['-F', path.join(home, '.ssh/config'), 'box', 'sh', '-c', script], { user, cwd: '/', env });
      const local = spawnSync('runuser', ['-u', user, '--', 'sh', '-c', script], { cwd: '/', env, encoding: 'utf8' });
      assert.equal(r.stdout.toString().split('\n')[0], String(uid));
      assert.equal(r.stdout.toString(), local.stdout);
      assert.equal(r.stderr, local.stderr);
      assert.match(r.stderr, /Permission denied/);
      assert.equal(r.status, local.status);
      assert.equal(existsSync('/root/outrun-e2e-forbidden'), false);
      assert.equal(existsSync(`${work}/by-user`), false);
    });

    test('a file the user may write is written and owned by the user', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'outrun-e2e-user-'));
      chownSync(dir, uid, uid);
      const f = path.join(dir, 'mine.txt');
      const r = await outrun(['-F', path.join(home, '.ssh/config'), 'box', 'sh', '-c', `echo hello > '${f}'`], {
        user,
        cwd: '/',
        env: { PATH: process.env.PATH, HOME: home, LANG: 'C' },
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(f, 'utf8'), 'hello\n');
      assert.equal(statSync(f).uid, uid);
      rmSync(dir, { recursive: true, force: true });
    });
  });

  describe('connection failures exit 255 with one line', () => {
    test('an unknown host key is refused', async () => {
      const empty = path.join(work, 'empty_known_hosts');
      writeFileSync(empty, '');
      const r = await outrun(['-F', SSH_CONFIG, '-o', `UserKnownHostsFile=${empty}`, 'box', 'true']);
      assert.equal(r.status, 255);
      assert.match(r.stderr, /host key/i);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    });

    test('a changed host key is refused', async () => {
      const keyFile = path.join(work, 'other_host_key');
      spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
      const pub = readFileSync(`${keyFile}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
      const kh = path.join(work, 'wrong_known_hosts');
      const addr = /HostName\s+(\S+)/.exec(readFileSync(SSH_CONFIG, 'utf8'))![1];
      writeFileSync(kh, `${addr} ${pub}\n`);
      const r = await outrun(['-F', SSH_CONFIG, '-o', `UserKnownHostsFile=${kh}`, 'box', 'true']);
      assert.equal(r.status, 255);
      assert.match(r.stderr, /changed/i);
    });

    test('a wrong client key is refused', async () => {
      const keyFile = path.join(work, 'wrong_client_key');
      if (!existsSync(keyFile)) spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
      const cfg = readFileSync(SSH_CONFIG, 'utf8').replace(/IdentityFile .*/, `IdentityFile ${keyFile}`);
      const cfgFile = path.join(work, 'wrong_key_config');
      writeFileSync(cfgFile, cfg);
      const r = await outrun(['-F', cfgFile, 'box', 'true'], { env: { ...process.env, SSH_AUTH_SOCK: '' } });
      assert.equal(r.status, 255);
      assert.match(r.stderr, /authentication/i);
    });

    test('a closed port on the box is refused', async () => {
      const r = await outrun(['-F', SSH_CONFIG, '-p', '2222', 'box', 'true']);
      assert.equal(r.status, 255);
      assert.match(r.stderr, /refused/i);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    });
  });

  test('the box is clean after all runs', () => {
    assert.equal(boxLeftovers(), '');
  });
});
