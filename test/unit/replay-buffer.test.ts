// Unit: the sequence logic of resumable streams (src/wire/replay-buffer.ts) and their
// frames (src/wire/resume-frames.ts): what is sent again after a reconnect is exactly what
// the receiver lacks, what arrives twice is dropped, and a peer that asks for what cannot be
// is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ReceiveCursor, ReplayBuffer } from '../../src/wire/replay-buffer';
import {
  MAX_RESUME_FRAME,
  ResumeFrame,
  ResumeFrameReader,
  dataResumeFrames,
  offsetResumeFrame,
  payloadOffset,
} from '../../src/wire/resume-frames';
import { validRelaySocket } from '../../src/wire/relay-paths';

test('a replay buffer holds what is not acknowledged, and gives it again from any offset it holds', () => {
  const b = new ReplayBuffer();
  assert.equal(b.push(Buffer.from('hello ')), 0);
  assert.equal(b.push(Buffer.from('world')), 6);
  assert.equal(b.held, 11);
  assert.equal(b.ack(3), undefined);
  assert.equal(b.held, 8);
  assert.equal(Buffer.concat(b.from(4) as Buffer[]).toString(), 'o world');
  // from() acknowledges what the receiver said it has.
  assert.equal(b.held, 7);
  assert.equal(Buffer.concat(b.from(11) as Buffer[]).length, 0);
  assert.equal(b.held, 0);
  assert.equal(b.total, 11);
});

test('a replay buffer refuses offsets it cannot serve', () => {
  const b = new ReplayBuffer();
  b.push(Buffer.from('abcdef'));
  b.ack(4);
  assert.ok(b.from(2) instanceof Error, 'acknowledged bytes are gone');
  assert.ok(b.from(7) instanceof Error, 'bytes never sent');
  assert.ok(b.ack(9) instanceof Error, 'an ack beyond what was sent');
  assert.ok(b.from(Number.NaN) instanceof Error);
  assert.ok(b.ack(-1) === undefined || b.held === 2, 'a lower ack changes nothing');
  assert.equal(b.held, 2);
  b.finish();
  assert.throws(() => b.push(Buffer.from('x')));
});

test('a receive cursor drops what it has, keeps the rest, refuses a gap and repeated ends', () => {
  const c = new ReceiveCursor();
  assert.equal((c.take(0, Buffer.from('abc')) as Buffer).toString(), 'abc');
  // Sent again after a reconnect, overlapping what arrived.
  assert.equal((c.take(1, Buffer.from('bcde')) as Buffer).toString(), 'de');
  assert.equal((c.take(0, Buffer.from('ab')) as Buffer).length, 0);
  assert.ok(c.take(7, Buffer.from('x')) instanceof Error, 'a gap');
  assert.equal(c.got, 5);
  assert.ok(c.end(4) instanceof Error);
  assert.equal(c.end(5), true);
  assert.equal(c.end(5), false, 'an end heard twice counts once');
});

test('a stream cut at random points and resumed delivers every byte once, in order', () => {
  for (let round = 0; round < 50; round++) {
    const sender = new ReplayBuffer();
    const receiver = new ReceiveCursor();
    const sent: Buffer[] = [];
    const got: Buffer[] = [];
    // Frames on the wire that a cut loses.
    let inFlight: { at: number; data: Buffer }[] = [];
    for (let i = 0; i < 200; i++) {
      const d = randomBytes(1 + Math.floor(Math.random() * 300));
      sent.push(d);
      inFlight.push({ at: sender.push(d), data: d });
      if (Math.random() < 0.3) {
        // Some arrive; acknowledgements of some of those reach the sender.
        const n = Math.floor(Math.random() * (inFlight.length + 1));
        for (const f of inFlight.splice(0, n)) got.push(receiver.take(f.at, f.data) as Buffer);
        if (Math.random() < 0.5) sender.ack(receiver.got);
      }
      if (Math.random() < 0.05) {
        // The link drops: what is in flight is lost; on resuming the receiver says what it has.
        inFlight = [];
        const replay = sender.from(receiver.got) as Buffer[];
        let at = receiver.got;
        for (const c of replay) {
          inFlight.push({ at, data: c });
          at += c.length;
        }
        // Some frames are duplicated by the resend racing the old link.
        if (inFlight.length && Math.random() < 0.5) inFlight.unshift({ ...inFlight[0]! });
      }
    }
    for (const f of inFlight) got.push(receiver.take(f.at, f.data) as Buffer);
    assert.deepEqual(Buffer.concat(got), Buffer.concat(sent));
  }
});

test('resume frames: data cut below the bound with their offsets, read back across chunk boundaries', () => {
  const data = randomBytes(MAX_RESUME_FRAME * 2 + 123);
  const frames = dataResumeFrames(1, 1000, data);
  assert.equal(frames.length, 3);
  const seen: { type: number; stream: number; at: number; len: number }[] = [];
  const reader = new ResumeFrameReader((type, stream, payload) => {
    seen.push({ type, stream, at: payloadOffset(payload) as number, len: payload.length - 8 });
  });
  const wire = Buffer.concat([...frames, offsetResumeFrame(ResumeFrame.EOF, 1, 1000 + data.length)]);
  for (let i = 0; i < wire.length; i += 65_537) assert.equal(reader.push(wire.subarray(i, i + 65_537)), undefined);
  assert.deepEqual(
    seen.map((s) => s.at),
    [1000, 1000 + MAX_RESUME_FRAME - 8, 1000 + 2 * (MAX_RESUME_FRAME - 8), 1000 + data.length],
  );
  assert.equal(seen.slice(0, 3).reduce((n, s) => n + s.len, 0), data.length);
  assert.equal(seen[3]!.type, ResumeFrame.EOF);
  // An oversized frame is an error, not a huge allocation.
  const bad = Buffer.alloc(6);
  bad.writeUInt32BE(MAX_RESUME_FRAME + 1, 2);
  assert.ok(new ResumeFrameReader(() => undefined).push(bad) instanceof Error);
  assert.ok(payloadOffset(Buffer.alloc(3)) instanceof Error);
});

test('an attach goes only to a relay socket in the tmp directory', () => {
  assert.equal(validRelaySocket('/tmp/outrun-relay-AbC123/s', '/tmp'), true);
  assert.equal(validRelaySocket('/tmp/outrun-relay-AbC123/../../etc/s', '/tmp'), false);
  assert.equal(validRelaySocket('/tmp/outrun-relay-AbC123/x', '/tmp'), false);
  assert.equal(validRelaySocket('/var/run/outrun-relay-AbC123/s', '/tmp'), false);
  assert.equal(validRelaySocket('/tmp/outrun-relay-Ab/s', '/tmp'), false);
});
