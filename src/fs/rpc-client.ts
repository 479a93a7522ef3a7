// The agent's side of the filesystem protocol: one typed function per method, each a
// single unary gRPC call carrying the session token.
import * as grpc from '@grpc/grpc-js';
import { fileSystemMethods, type FsCall, type FsMethodName, type Method } from '../wire/services';

export type FsClient = { [K in FsMethodName]: FsCall<K> };

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
  const out: Partial<Record<FsMethodName, unknown>> = {};
  for (const name of Object.keys(fileSystemMethods) as FsMethodName[]) {
    const m = fileSystemMethods[name] as Method<unknown, unknown, unknown, unknown>;
    out[name] = (req: unknown) =>
      new Promise((resolve, reject) => {
        const options: grpc.CallOptions = deadlineMs ? { deadline: Date.now() + deadlineMs } : {};
        client.makeUnaryRequest(
          m.path,
          m.encodeRequest,
          m.decodeResponse,
          req,
          metadata.clone(),
          options,
          (err, reply) => (err ? reject(new RpcError(name, err.code, err.details || err.message)) : resolve(reply)),
        );
      });
  }
  return out as FsClient;
}
