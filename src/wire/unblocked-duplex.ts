// A stream for an HTTP/2 session to run over, whose writes never wait for the transport.
//
// Why: Node's HTTP/2 stops reading its socket while one of its own writes is in progress
// (nghttp2 is paused so that a DATA chunk cannot trigger writes mid-write). When both ends
// of one connection write at full speed at once (a copy inside the mount: Read replies one
// way, Write requests the other), each end's write waits for the other end to read, and
// neither reads: the connection stalled for good after ~0.3 s, pings went unanswered and the
// link watch declared the link dead (issue 9). Taking every write at once breaks that cycle.
//
// The bytes queued here are bounded by HTTP/2 itself: DATA frames only go out within the
// peer's flow-control window (16 MiB, GRPC_CHANNEL_OPTIONS), which the peer reopens only as
// it consumes; the rest is headers and control frames of the requests in flight, which the
// request limits bound.
//
// The frames written in one turn of the event loop (a reply's HEADERS, DATA and trailers,
// the replies to a batch of requests) go to the transport as one write: over SSH each write
// is a packet to encrypt, send and wake the peer for (in a build, the local side's socket
// writes took 1.3 s of its 4.5 s busy on the JS thread: a CPU profile of make -j2).
import { Duplex } from 'node:stream';

/** Chunks smaller than this are joined into one write. */
const JOIN_BELOW = 32 * 1024;

/**
 * `cork`, if given, holds the socket under the transport for the length of one write and
 * returns what lets it go: an SSH channel cuts a write into packets of at most 32 KiB,
 * each a write(2) of its own otherwise (a 1 GiB read: 32,768 of them, a fifth of the local
 * side's CPU).
 */
export function unblockedDuplex(transport: Duplex, cork?: () => (() => void) | undefined): Duplex {
  let pending: Buffer[] = [];
  const flush = () => {
    const chunks = pending;
    pending = [];
    if (chunks.length === 0 || transport.destroyed) return;
    const uncork = cork?.();
    // Small frames are joined (one SSH packet for a whole reply); bulk data is not copied.
    let small: Buffer[] = [];
    let smallBytes = 0;
    const flushSmall = () => {
      if (small.length) transport.write(small.length === 1 ? small[0] : Buffer.concat(small, smallBytes));
      small = [];
      smallBytes = 0;
    };
    for (const c of chunks) {
      if (c.length >= JOIN_BELOW) {
        flushSmall();
        transport.write(c);
      } else {
        small.push(c);
        smallBytes += c.length;
        if (smallBytes >= JOIN_BELOW) flushSmall();
      }
    }
    flushSmall();
    if (uncork) process.nextTick(uncork);
  };
  const take = (chunk: Buffer) => {
    if (pending.push(chunk) === 1) setImmediate(flush);
  };
  const d = new Duplex({
    // HTTP/2 writes many small frames: let them through at once, not in 16 KiB steps.
    writableHighWaterMark: 1024 * 1024,
    read() {
      transport.resume();
    },
    write(chunk: Buffer, _enc, cb) {
      take(chunk);
      cb();
    },
    writev(chunks, cb) {
      for (const c of chunks) take(c.chunk);
      cb();
    },
    final(cb) {
      flush();
      transport.end();
      cb();
    },
    destroy(err, cb) {
      transport.destroy(err ?? undefined);
      cb(err);
    },
  });
  transport.on('data', (chunk: Buffer) => {
    // Reading may wait for the session (backpressure inward is harmless: the session
    // resumes as soon as its writes, which never wait, are done).
    if (!d.push(chunk)) transport.pause();
  });
  transport.once('end', () => d.push(null));
  transport.resume();
  transport.once('error', (err) => d.destroy(err));
  transport.once('close', () => d.destroy());
  return d;
}
