// --no-chroot's exec spec: canonical paths (symlinks resolved locally), SendEnv filtering.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { hostViewSpec } from '../../src/client/host-view-spec';
import { matchPattern } from '../../src/client/ssh-config';
import type { ExecSpec } from '../../src/client/exec-spec';

const dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'outrun-hostview-')));
after(() => rmSync(dir, { recursive: true, force: true }));

const base = (env: (string | Buffer)[]): ExecSpec => ({ uid: 1, gid: 1, groups: [], umask: 0o22, cwd: '/x', rlimits: [], argv: ['true'], env });

test('SendEnv patterns (matchPattern, case-sensitive): * and ? as ssh, anchored, regex characters literal', () => {
  assert.ok(matchPattern('LC_*', 'LC_ALL', false));
  assert.ok(matchPattern('LANG', 'LANG', false));
  assert.ok(!matchPattern('LANG', 'LANGUAGE', false));
  assert.ok(matchPattern('A?C', 'ABC', false));
  assert.ok(!matchPattern('A?C', 'AC', false));
  assert.ok(!matchPattern('A.C', 'ABC', false));
  assert.ok(matchPattern('A.C', 'A.C', false));
  assert.ok(matchPattern('*', 'ANY', false));
  assert.ok(!matchPattern('lang', 'LANG', false));
});

test('the cwd and each mount canonical, once each; only SendEnv variables, never PWD', () => {
  mkdirSync(path.join(dir, 'real/sub'), { recursive: true });
  symlinkSync('real', path.join(dir, 'link'));
  writeFileSync(path.join(dir, 'f'), 'x');
  const s = hostViewSpec(
    base(['LANG=C', 'LC_ALL=C.UTF-8', 'SECRET=1', 'PWD=/elsewhere', Buffer.from([0x4c, 0x43, 0x5f, 0x58, 0x3d, 0xff])]),
    ['sub', path.join(dir, 'f'), path.join(dir, 'link/sub')],
    ['LANG', 'LC_*', 'PW?'],
    path.join(dir, 'link'),
  );
  assert.equal(s.cwd, path.join(dir, 'real'));
  assert.deepEqual(s.view, { kind: 'host', paths: [path.join(dir, 'real'), path.join(dir, 'real/sub'), path.join(dir, 'f')] });
  assert.deepEqual(s.env, ['LANG=C', 'LC_ALL=C.UTF-8', Buffer.from([0x4c, 0x43, 0x5f, 0x58, 0x3d, 0xff])]);
});

test('a missing path and / are usage errors (exit 2)', () => {
  assert.throws(() => hostViewSpec(base([]), ['nope'], [], dir), (e: Error & { exitStatus?: number }) => e.exitStatus === 2 && /--mount nope: no such local file or directory/.test(e.message));
  assert.throws(() => hostViewSpec(base([]), ['/'], [], dir), (e: Error & { exitStatus?: number }) => e.exitStatus === 2 && /the whole local tree/.test(e.message));
});
