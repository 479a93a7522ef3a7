// End to end: rootless remotes. The same box logged in as non-root users: box-user (no subuid
// ranges: only the local uid and gid map) and box-subuid (newuidmap with /etc/subuid ranges:
// local root and other owners map). The core checks run as each, compared with the same
// command run locally; what differs from root mode is asserted exactly; nothing may be left
// on the box but the cache in ~/.cache/outrun.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CLI, SSH_CONFIG, boxShell, outrun, waitBoxClean } from './harness';
import { localUser, type LocalUser } from './local-user';
import { shellQuote } from '../../src/client/shell-quote';

const LOGINS = { 'box-user': { name: 'outrun-user', uid: 1001 }, 'box-subuid': { name: 'outrun-subuid', uid: 1002 } } as const;
type Login = keyof typeof LOGINS;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** A local owner that no remote id is: shows as itself only where ranges map it. */
const OTHER_UID = 1234;
/** The box's address (as outrun names the remote in its messages). */
const BOX_ADDR = () => /^\s*HostName\s+(\S+)/m.exec(readFileSync(SSH_CONFIG, 'utf8'))![1]!;

/** What a rootless session may leave on the box: processes of the login (its ids or its
 * subordinate range), FUSE mounts, session dirs, temp files outside ~/.cache/outrun. */
function leftovers(login: Login): string {
  const { name, uid } = LOGINS[login];
  return boxShell(
    [
      'for p in /proc/[0-9]*; do',
      '  [ "${p#/proc/}" = "$$" ] && continue',
      '  u=$(stat -c %u $p 2>/dev/null) || continue',
      `  if [ "$u" = ${uid} ] || { [ "$u" -ge 200000 ] && [ "$u" -lt 265536 ]; }; then echo "process ${'${p#/proc/}'} of uid $u: $(tr "\\0" " " < $p/cmdline)"; fi`,
      '  grep -Eqs " - fuse(\\.[^ ]*)? " $p/mountinfo && echo "fuse mount in the namespace of pid ${p#/proc/}"',
      'done',
      `ls -A /home/${name}/.cache/outrun/run 2>/dev/null | sed "s/^/session dir left: /"`,
      `ls -A /home/${name}/.cache/outrun/runtime 2>/dev/null | grep '^\\.tmp-' | sed "s/^/upload temp left: /"`,
      `find /tmp /var/tmp /dev/shm /run -user ${uid} 2>/dev/null | sed "s/^/file left: /"`,
      'true',
    ].join('\n'),
  ).trim();
}

async function clean(login: Login): Promise<string> {
  const deadline = Date.now() + 5000;
  let left = leftovers(login);
  while (left && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    left = leftovers(login);
  }
  return left;
}

describe('rootless remotes', { timeout: 300_000 }, () => {
  let work: string;
  let rootFile: string;
  let otherFile: string;
  before(() => {
    work = mkdtempSync(path.join(tmpdir(), 'outrun-rootless-'));
    chmodSync(work, 0o755);
    rootFile = path.join(work, 'owned-by-root');
    writeFileSync(rootFile, 'root\n', { mode: 0o644 });
    otherFile = path.join(work, 'owned-by-1234');
    writeFileSync(otherFile, 'other\n', { mode: 0o644 });
    chownSync(otherFile, OTHER_UID, OTHER_UID);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  for (const login of Object.keys(LOGINS) as Login[]) {
    describe(`as ${login}`, () => {
      const run = (cmd: string[], input?: Buffer | string) => outrun(['-F', SSH_CONFIG, login, ...cmd], { cwd: work, input });

      test('the local uid and the local working directory', async () => {
        const script = 'id -u; id -g; pwd';
        const local = spawnSync('sh', ['-c', script], { cwd: work, encoding: 'utf8' });
        const r = await run(['sh', '-c', script]);
        assert.equal(local.stdout, `${process.getuid!()}\n${process.getgid!()}\n${work}\n`);
        assert.equal(r.stdout.toString(), local.stdout, r.stderr);
        assert.equal(r.status, 0);
        assert.equal(await clean(login), '');
      });

      test('exit statuses: the command\'s own, 127 for a missing command, 126 for a non-executable', async () => {
        assert.equal((await run(['sh', '-c', 'exit 42'])).status, 42);
        const missing = await run(['outrun-no-such-command']);
        assert.equal(missing.status, 127);
        assert.equal(missing.stderr, 'outrun: outrun-no-such-command: command not found\n');
        const notExec = await run([rootFile]);
        assert.equal(notExec.status, 126);
        assert.equal(notExec.stderr, `outrun: ${rootFile}: Permission denied\n`);
        assert.equal(await clean(login), '');
      });

      test('10 MiB of random data through stdin, checked by sha256', async () => {
        const data = randomBytes(10 << 20);
        const r = await run(['sha256sum'], data);
        assert.equal(r.stdout.toString(), `${sha256(data)}  -\n`, r.stderr);
        assert.equal(r.status, 0);
      });

      test('a written file lands locally with the right bytes', async () => {
        const data = randomBytes(3 << 20);
        const out = path.join(work, `written-by-${login}`);
        const r = await run(['sh', '-c', `cat > ${shellQuote([out])} && echo done`], data);
        assert.equal(r.stdout.toString(), 'done\n', r.stderr);
        assert.equal(r.status, 0);
        const got = readFileSync(out);
        assert.equal(got.length, data.length);
        assert.equal(sha256(got), sha256(data));
        assert.equal(await clean(login), '');
      });

      // Local root maps to the login in both modes; other local owners only with ranges.
      test('owners and groups: what differs from root mode', async () => {
        const r = await run(['sh', '-c', `stat -c %u ${shellQuote([rootFile])} ${shellQuote([otherFile])}; id -G; cat /proc/self/setgroups`]);
        assert.equal(r.status, 0, r.stderr);
        const expected =
          login === 'box-user'
            ? // Only uid 0 -> 1001 is mapped: uid 1234 is the overflow uid; the login's
              // supplementary group (fuse, 990) is unmapped and cannot be dropped.
              `0\n65534\n0 65534\ndeny\n`
            : // Ranges: 1234 maps, and the local groups (root's: just 0) are set.
              `0\n${OTHER_UID}\n0\nallow\n`;
        assert.equal(r.stdout.toString(), expected);
        assert.equal(await clean(login), '');
      });
    });
  }

  describe('as a local user who is not root', () => {
    let user: LocalUser;
    before(() => {
      user = localUser('outrun-e2e-rootless');
    });
    const asUser = (script: string) =>
      spawnSync('runuser', ['-u', user.name, '--', 'sh', '-c', script], {
        encoding: 'utf8',
        cwd: '/',
        env: { PATH: process.env.PATH, HOME: user.home, LANG: 'C', USER: user.name },
        timeout: 120_000,
      });

    for (const login of Object.keys(LOGINS) as Login[]) {
      test(`${login}: id -u is the local uid; a root-owned local file shows as ${login === 'box-user' ? '65534 (unmapped)' : '0'}`, async () => {
        const script = `id -u; stat -c %u ${shellQuote([rootFile])}`;
        const remote = asUser(`${shellQuote([process.execPath, CLI, '-F', user.sshConfig, login])} sh -c ${shellQuote([script])}`);
        assert.equal(remote.stdout, `${user.uid}\n${login === 'box-user' ? 65534 : 0}\n`, remote.stderr);
        assert.equal(remote.status, 0);
        assert.equal(await clean(login), '');
      });
    }
  });

  test('box-user through a master (-o ControlPersist): two runs, then -O exit leaves nothing', async () => {
    const sockDir = mkdtempSync(path.join(tmpdir(), 'outrun-rootless-master-')); // 0700: a master's directory must be
    const sock = path.join(sockDir, 'master.sock');
    const viaMaster = (cmd: string[]) => outrun(['-F', SSH_CONFIG, '-S', sock, '-o', 'ControlPersist=60', 'box-user', ...cmd], { cwd: work });
    try {
      const first = await viaMaster(['sh', '-c', 'id -u; pwd']);
      assert.equal(first.stdout.toString(), `${process.getuid!()}\n${work}\n`, first.stderr);
      assert.equal((await viaMaster(['sh', '-c', 'exit 5'])).status, 5);
    } finally {
      const exit = await outrun(['-S', sock, '-O', 'exit', 'box-user']);
      rmSync(sockDir, { recursive: true, force: true });
      assert.equal(exit.stderr, 'Exit request sent.\n');
      assert.equal(exit.status, 0);
    }
    assert.equal(await clean('box-user'), '');
  });

  test('root mode is unchanged: the root-owned file is 0, uid 1234 is itself', async () => {
    const r = await outrun(['-F', SSH_CONFIG, 'box', 'sh', '-c', `stat -c %u ${shellQuote([rootFile])} ${shellQuote([otherFile])}`], { cwd: work });
    assert.equal(r.stdout.toString(), `0\n${OTHER_UID}\n`, r.stderr);
    assert.equal(await waitBoxClean(), '');
  });

  test('box-nofuse: refused in one line naming /dev/fuse, exit 254, nothing uploaded', async () => {
    const r = await outrun(['-F', SSH_CONFIG, 'box-nofuse', 'true'], { cwd: work });
    assert.equal(r.status, 254);
    assert.equal(
      r.stderr,
      `outrun: /dev/fuse on ${BOX_ADDR()} is not readable and writable by outrun-nofuse (crw-rw---- root:fuse); have its admin make it 0666 ` +
        "(chmod 666 /dev/fuse; Debian's udev rule does) or add the login to its group, or log in as root\n",
    );
    assert.equal(boxShell('ls -A /home/outrun-nofuse/.cache 2>/dev/null; true'), '');
  });
});
