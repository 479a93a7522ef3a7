import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, type Readable } from 'node:stream';
import { setImmediate as tick } from 'node:timers/promises';
import { encodePreamble, readPreamble } from '../../src/wire/preamble';
import { PROTOCOL_VERSION } from '../../src/wire/schema';

const MAGIC = Buffer.from('OUTRUN-PREAMBLE\n');
const TOKEN = '0123456789abcdef'.repeat(4);
const DIR = '/run/outrun/s-0123-é';

/** A frame with any body, for malformed inputs. */
function frame(body: Buffer | string, len?: number): Buffer {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const l = Buffer.alloc(4);
  l.writeUInt32BE(len ?? b.length);
  return Buffer.concat([MAGIC, l, b]);
}

/** Everything still buffered in (or still to come from) a paused stream. */
function drain(s: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
    s.resume();
  });
}

test('encodePreamble: magic, 4-byte big-endian body length, JSON body with the protocol', () => {
  const enc = encodePreamble({ token: TOKEN, sessionDir: DIR });
  assert.deepEqual(enc.subarray(0, 16), MAGIC);
  const len = enc.readUInt32BE(16);
  assert.equal(len, enc.length - 20);
  const body = enc.subarray(20).toString('utf8');
  assert.deepEqual(JSON.parse(body), { protocol: PROTOCOL_VERSION, token: TOKEN, sessionDir: DIR });
  assert.equal(len, Buffer.byteLength(body), 'the length counts bytes, not characters');
});

test('1-byte chunks arriving over time: the preamble, then exactly the trailing bytes', { timeout: 5000 }, async () => {
  const trailing = Buffer.from([0x50, 0x52, 0x49, 0x00, 0xff, 0x0a, 0x2a]);
  const all = Buffer.concat([encodePreamble({ token: TOKEN, sessionDir: DIR }), trailing]);
  const input = new PassThrough();
  const p = readPreamble(input);
  (async () => {
    for (const byte of all) {
      input.write(Buffer.from([byte]));
      await tick();
    }
    input.end();
  })();
  const { preamble, rest } = await p;
  assert.deepEqual(preamble, { protocol: PROTOCOL_VERSION, token: TOKEN, sessionDir: DIR });
  assert.ok(input.isPaused(), 'the stream is left paused');
  const after = await drain(input);
  assert.deepEqual([...Buffer.concat([rest, after])], [...trailing]);
});

test('1-byte chunks all buffered before reading: nothing is lost or duplicated', async () => {
  const trailing = Buffer.from('HTTP/2 preface...');
  const all = Buffer.concat([encodePreamble({ token: TOKEN, sessionDir: DIR }), trailing]);
  const input = new PassThrough();
  for (const byte of all) input.write(Buffer.from([byte]));
  input.end();
  const { preamble, rest } = await readPreamble(input);
  assert.equal(preamble.token, TOKEN);
  assert.equal(preamble.sessionDir, DIR);
  const after = await drain(input);
  assert.equal(Buffer.concat([rest, after]).toString(), 'HTTP/2 preface...');
});

test('one chunk with everything: rest is exactly the trailing bytes', async () => {
  const trailing = Buffer.from([1, 2, 3, 0, 255]);
  const input = new PassThrough();
  const p = readPreamble(input);
  input.write(Buffer.concat([encodePreamble({ token: 'ab', sessionDir: '/s' }), trailing]));
  const { preamble, rest } = await p;
  assert.deepEqual(preamble, { protocol: PROTOCOL_VERSION, token: 'ab', sessionDir: '/s' });
  assert.deepEqual([...rest], [1, 2, 3, 0, 255]);
  input.end();
  assert.equal((await drain(input)).length, 0);
});

test('no trailing bytes: rest is empty', async () => {
  const input = new PassThrough();
  const p = readPreamble(input);
  input.end(encodePreamble({ token: 'ab', sessionDir: '/s' }));
  const { rest } = await p;
  assert.equal(rest.length, 0);
});

test('a body of exactly 64 KiB is accepted', async () => {
  const base = encodePreamble({ token: 't', sessionDir: '/' }).length - 20;
  const sessionDir = '/' + 'd'.repeat(64 * 1024 - base);
  const enc = encodePreamble({ token: 't', sessionDir });
  assert.equal(enc.readUInt32BE(16), 64 * 1024);
  const input = new PassThrough();
  const p = readPreamble(input);
  input.end(enc);
  assert.equal((await p).preamble.sessionDir, sessionDir);
});

async function rejectsWith(chunks: Buffer[], message: string | RegExp, end = true): Promise<void> {
  const input = new PassThrough();
  // attach the expectation first: the promise may reject while chunks are still being fed
  const checked = assert.rejects(readPreamble(input), typeof message === 'string' ? { message } : message);
  for (const c of chunks) {
    input.write(c);
    await tick();
  }
  if (end) input.end();
  await checked;
}

test('bad magic is refused as soon as the header is in', { timeout: 5000 }, async () => {
  const good = encodePreamble({ token: 't', sessionDir: '/s' });
  const bad = Buffer.from(good);
  bad[0] = 0x6f; // 'o'
  await rejectsWith([bad], 'bad session preamble', false);
  await rejectsWith([Buffer.concat([Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'), good])], 'bad session preamble', false);
});

test('a declared length over 64 KiB is refused without waiting for the body', { timeout: 5000 }, async () => {
  await rejectsWith([frame('', 64 * 1024 + 1)], 'session preamble too large', false);
  await rejectsWith([frame('', 0xffffffff)], 'session preamble too large', false);
});

test('a stream that ends early is refused: inside the magic, the length, or the body', { timeout: 5000 }, async () => {
  const enc = encodePreamble({ token: TOKEN, sessionDir: DIR });
  const closed = 'channel closed before the session preamble arrived';
  await rejectsWith([], closed);
  await rejectsWith([enc.subarray(0, 5)], closed);
  await rejectsWith([enc.subarray(0, 18)], closed);
  await rejectsWith([enc.subarray(0, enc.length - 1)], closed);
});

test('a body that is not JSON, or lacks a field, is refused', { timeout: 5000 }, async () => {
  await rejectsWith([frame('{not json')], 'session preamble is not valid JSON', false);
  await rejectsWith([frame(JSON.stringify({ protocol: 1, token: 't' }))], 'session preamble is incomplete', false);
  await rejectsWith([frame(JSON.stringify({ protocol: '1', token: 't', sessionDir: '/s' }))], 'session preamble is incomplete', false);
  await rejectsWith([frame(JSON.stringify({ protocol: 1, token: 5, sessionDir: '/s' }))], 'session preamble is incomplete', false);
});

test('a JSON body of null is refused like any incomplete preamble', async () => {
  const input = new PassThrough();
  const p = readPreamble(input);
  p.catch(() => {});
  await tick(); // the stream is flowing now: the write runs the data handler synchronously
  let thrown: unknown;
  try {
    input.write(frame('null'));
  } catch (err) {
    thrown = err;
  }
  assert.equal(thrown, undefined, `the data handler threw: ${thrown}`);
  await assert.rejects(p, { message: 'session preamble is incomplete' });
});

test('a stream error rejects with that error', async () => {
  const input = new PassThrough();
  const p = readPreamble(input);
  input.write(MAGIC);
  const boom = new Error('link down');
  input.destroy(boom);
  await assert.rejects(p, (err) => err === boom);
});
