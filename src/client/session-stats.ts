// What --stats reports for a session: the RPCs the local side answered (by kind), the bytes
// each way on the agent's channel, and the agent's figures: round trips on the critical
// path and time spent waiting on the network (see RpcTiming), cache hits and misses, FUSE
// operations.
import type { Duplex } from 'node:stream';
import type { FsMethodName } from '../wire/services';

export class SessionStats {
  private readonly rpcs = new Map<string, number>();
  bytesToRemote = 0;
  bytesFromRemote = 0;
  agent: Record<string, number> = {};
  /** The SSH connection's own socket (after compression and encryption), if it has one. */
  private transport?: { bytesRead: number; bytesWritten: number };
  private transportAtStart = { read: 0, written: 0 };

  /**
   * Count what the SSH transport carries from now on. ssh2 keeps its socket in a private
   * field; through ProxyCommand or a jump host there is none, and the figure is left out.
   */
  watchTransport(conn: unknown): void {
    const sock = (conn as { _sock?: { bytesRead?: unknown; bytesWritten?: unknown } })._sock;
    if (sock && typeof sock.bytesRead === 'number' && typeof sock.bytesWritten === 'number') {
      this.transport = sock as { bytesRead: number; bytesWritten: number };
      this.transportAtStart = { read: sock.bytesRead, written: sock.bytesWritten };
    }
  }

  /** Count the bytes of the agent's channel, both ways. */
  watch(channel: Duplex): void {
    channel.on('data', (d: Buffer) => (this.bytesFromRemote += d.length));
    const write = channel.write.bind(channel) as (...args: unknown[]) => boolean;
    (channel as { write: (...args: unknown[]) => boolean }).write = (chunk: unknown, ...rest: unknown[]) => {
      if (chunk && typeof (chunk as Buffer).length === 'number') this.bytesToRemote += (chunk as Buffer).length;
      return write(chunk, ...rest);
    };
  }

  finished(method: FsMethodName): void {
    this.rpcs.set(method, (this.rpcs.get(method) ?? 0) + 1);
  }

  lines(): string[] {
    const total = [...this.rpcs.values()].reduce((a, b) => a + b, 0);
    const byKind = [...this.rpcs].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
    const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
    const { 'rpc.critical-round-trips': critical, 'rpc.waited-ms': waited, ...rest } = this.agent;
    const agent = Object.entries(rest)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    const timing =
      critical === undefined ? '' : `, ${critical} round trips on the critical path, ${((waited ?? 0) / 1000).toFixed(3)} s waiting on the network`;
    return [
      `stats: ${total} RPCs${timing}`,
      `stats: RPCs by kind: ${byKind || 'none'}`,
      `stats: bytes to the remote ${mb(this.bytesToRemote)}, from the remote ${mb(this.bytesFromRemote)} (the agent's channel, before compression)` +
        (this.transport
          ? `; on the wire ${mb(this.transport.bytesWritten - this.transportAtStart.written)} / ${mb(this.transport.bytesRead - this.transportAtStart.read)} (every channel, after compression and encryption)`
          : ''),
      `stats: agent: ${agent || 'no figures (the agent did not report)'}`,
    ];
  }
}
