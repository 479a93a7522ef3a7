// The agent's side of the filesystem protocol: one typed function per method, each a
// single unary gRPC call carrying the session token.
import * as grpc from '@grpc/grpc-js';
import { fileSystemMethods, type FsCall, type FsMethodName, type Method } from '../../wire/services';

export type FsClient = { [K in FsMethodName]: FsCall<K> } & {
  timing: RpcTiming;
  /** Fails every call in flight (the link is given up): their callers see an RpcError. */
  cancelAll(): void;
};

/**
 * How the agent waited on the local side: calls that started while none was in flight are
 * round trips on the critical path; the time with at least one call in flight is time spent
 * waiting on the network (and the local disk).
 */
export class RpcTiming {
  private inFlight = 0;
  private since = 0;
  private waitedMs = 0;
  private critical = 0;

  start(): void {
    if (this.inFlight++ === 0) {
      this.critical++;
      this.since = performance.now();
    }
  }

  end(): void {
    if (--this.inFlight === 0) this.waitedMs += performance.now() - this.since;
  }

  /** Calls sent and not yet answered. */
  get pending(): number {
    return this.inFlight;
  }

  snapshot(): Record<string, number> {
    return { 'rpc.critical-round-trips': this.critical, 'rpc.waited-ms': Math.round(this.waitedMs) };
  }
}

/** A failed RPC (link down, peer gone): the FUSE side turns it into EIO. */
export class RpcError extends Error {
  constructor(
    readonly method: string,
    readonly grpcCode: number,
    message: string,
  ) {
    super(`${method}: ${message}`);
  }
}

export function makeFsClient(client: grpc.Client, metadata: grpc.Metadata, deadlineMs?: number): FsClient {
  const timing = new RpcTiming();
  const calls = new Set<grpc.ClientUnaryCall>();
  const out: Partial<Record<FsMethodName, unknown>> & Pick<FsClient, 'timing' | 'cancelAll'> = {
    timing,
    cancelAll: () => [...calls].forEach((c) => c.cancel()),
  };
  for (const name of Object.keys(fileSystemMethods) as FsMethodName[]) {
    const m = fileSystemMethods[name] as Method<unknown, unknown, unknown, unknown>;
    out[name] = (req: unknown) =>
      new Promise((resolve, reject) => {
        const options: grpc.CallOptions = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
        timing.start();
        const call = client.makeUnaryRequest(
          m.path,
          m.encodeRequest,
          m.decodeResponse,
          req,
          metadata.clone(),
          options,
          (err, reply) => {
            calls.delete(call);
            timing.end();
            if (err) reject(new RpcError(name, err.code, err.details || err.message));
            else resolve(reply);
          },
        );
        calls.add(call);
      });
  }
  return out as FsClient;
}
