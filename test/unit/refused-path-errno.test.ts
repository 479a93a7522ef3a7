// The errno for a refused wire path: ENAMETOOLONG only for length, as the local kernel says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants } from 'node:os';
import { refusedPathErrno } from '../../src/fs/local/wire-path';

const { EINVAL, ENAMETOOLONG } = constants.errno;
const b = (s: string) => Buffer.from(s, 'latin1');

test('a name over 255 bytes or a path of 4096 bytes or more: ENAMETOOLONG', () => {
  assert.equal(refusedPathErrno(b(`/d/${'n'.repeat(256)}`)), ENAMETOOLONG);
  assert.equal(refusedPathErrno(b(`/${'d/'.repeat(2048)}x`)), ENAMETOOLONG);
  assert.equal(refusedPathErrno(b('x'.repeat(4096)), true), ENAMETOOLONG);
});

test('anything malformed: EINVAL', () => {
  assert.equal(refusedPathErrno(b('')), EINVAL);
  assert.equal(refusedPathErrno(undefined), EINVAL);
  assert.equal(refusedPathErrno(b('/a/../b')), EINVAL);
  assert.equal(refusedPathErrno(b('relative')), EINVAL);
  assert.equal(refusedPathErrno(b(`/a\0${'n'.repeat(300)}`)), EINVAL);
  assert.equal(refusedPathErrno(b('a\0b'), true), EINVAL);
});
