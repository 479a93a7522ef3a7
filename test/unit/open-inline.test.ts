import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { constants as FS, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { INLINE_MAX, LocalFileServer } from '../../src/fs/local/local-server';
import { pb } from '../../src/wire/schema';

const dir = mkdtempSync(path.join(tmpdir(), 'outrun-inline-'));
const server = new LocalFileServer();
after(async () => {
  await server.closeAll();
  rmSync(dir, { recursive: true, force: true });
});

const open = (file: string, flags: number) =>
  server.handlers.Open(pb.OpenRequest.decode(pb.OpenRequest.encode({ path: Buffer.from(file), flags }).finish())) as Promise<
    pb.OpenReply.$Properties
  >;

test('a small file comes whole with its open', async () => {
  const f = path.join(dir, 'small');
  const content = randomBytes(INLINE_MAX);
  writeFileSync(f, content);
  const r = await open(f, FS.O_RDONLY);
  assert.equal(r.errno, 0);
  assert.equal(r.wholeFile, true);
  assert.ok(Buffer.from(r.data!).equals(content));
});

test('an empty file is whole and empty', async () => {
  const f = path.join(dir, 'empty');
  writeFileSync(f, '');
  const r = await open(f, FS.O_RDONLY);
  assert.equal(r.wholeFile, true);
  assert.equal(r.data!.length, 0);
});

test('a file one byte over the limit, or opened write-only, comes without data', async () => {
  const big = path.join(dir, 'big');
  writeFileSync(big, randomBytes(INLINE_MAX + 1));
  const r = await open(big, FS.O_RDONLY);
  assert.equal(r.errno, 0);
  assert.ok(!r.wholeFile);
  assert.ok(!r.data || r.data.length === 0);
  const small = path.join(dir, 'small-wo');
  writeFileSync(small, 'abc');
  const w = await open(small, FS.O_WRONLY);
  assert.equal(w.errno, 0);
  assert.ok(!w.wholeFile);
});
