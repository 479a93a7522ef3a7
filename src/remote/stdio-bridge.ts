// grpc-js can only dial addresses, not an existing stream, so the agent offers its SSH
// channel (its own stdin/stdout) on a private unix socket and dials that. The socket lives
// in the root-only session directory and accepts exactly one connection, then disappears.
//
// Bytes cross the bridge as they come, without waiting for the other side to drain: the
// HTTP/2 session behind the socket stops reading while a write of its own is pending, so
// a bridge that held its writes back would let both directions block each other (see
// src/wire/unblocked-duplex.ts; HTTP/2 flow control bounds what waits here).
import { createServer, type Socket } from 'node:net';
import { chmodSync, unlinkSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';

/** What crossed the bridge, for the link watch and the agent's log. */
export interface BridgeCounters {
  /** Bytes that arrived from the local side (the SSH channel). */
  bytesIn: number;
  /** Bytes sent towards the local side. */
  bytesOut: number;
  /** performance.now() of the last byte that arrived from the local side. */
  lastInAt: number;
  /** Bytes waiting to go out on the SSH channel. */
  readonly queuedOut: number;
}

export function bridgeStdioToSocket(
  socketPath: string,
  input: Readable,
  output: Writable,
  head: Buffer,
): Promise<{ connected: Promise<Socket>; counters: BridgeCounters }> {
  return new Promise((resolve, reject) => {
    let resolveConnected!: (s: Socket) => void;
    const connected = new Promise<Socket>((r) => (resolveConnected = r));
    const counters: BridgeCounters = {
      bytesIn: head.length,
      bytesOut: 0,
      lastInAt: performance.now(),
      get queuedOut() {
        return output.writableLength;
      },
    };
    const server = createServer({ allowHalfOpen: false }, (s) => {
      server.close();
      try {
        unlinkSync(socketPath);
      } catch {
        /* already gone */
      }
      if (head.length) s.write(head);
      input.on('data', (chunk: Buffer) => {
        counters.bytesIn += chunk.length;
        counters.lastInAt = performance.now();
        s.write(chunk);
      });
      input.once('end', () => s.end());
      // readPreamble paused it; a 'data' listener alone does not resume a paused stream.
      input.resume();
      s.on('data', (chunk: Buffer) => {
        counters.bytesOut += chunk.length;
        output.write(chunk);
      });
      s.once('end', () => output.end());
      s.on('error', () => undefined);
      resolveConnected(s);
    });
    server.once('error', reject);
    server.listen(socketPath, () => {
      chmodSync(socketPath, 0o600);
      resolve({ connected, counters });
    });
  });
}
