// grpc-js can only dial addresses, not an existing stream, so the agent offers its SSH
// channel (its own stdin/stdout) on a private unix socket and dials that. The socket lives
// in the root-only session directory and accepts exactly one connection, then disappears.
import { createServer, type Socket } from 'node:net';
import { chmodSync, unlinkSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';

export function bridgeStdioToSocket(
  socketPath: string,
  input: Readable,
  output: Writable,
  head: Buffer,
): Promise<{ connected: Promise<Socket> }> {
  return new Promise((resolve, reject) => {
    let resolveConnected!: (s: Socket) => void;
    const connected = new Promise<Socket>((r) => (resolveConnected = r));
    const server = createServer({ allowHalfOpen: false }, (sock) => {
      server.close();
      try {
        unlinkSync(socketPath);
      } catch {
        /* already gone */
      }
      if (head.length) sock.write(head);
      input.pipe(sock);
      sock.pipe(output);
      resolveConnected(sock);
    });
    server.once('error', reject);
    server.listen(socketPath, () => {
      chmodSync(socketPath, 0o600);
      resolve({ connected });
    });
  });
}
