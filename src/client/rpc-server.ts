// Serves the session and filesystem RPCs to the agent over one SSH channel: grpc-js speaks
// HTTP/2 straight over the channel (a connection injector), so no port is opened anywhere.
// Every call must carry the session token; a wrong or missing token is refused before any
// handler runs.
import * as grpc from '@grpc/grpc-js';
import { timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { TOKEN_METADATA_KEY, pb } from '../wire/schema';
import {
  GRPC_CHANNEL_OPTIONS,
  fileSystemMethods,
  serverDefinition,
  sessionMethods,
  type FsMethodName,
  type Method,
} from '../wire/services';
import type { LocalFileServer } from '../fs/local/local-server';
import { widenServerWindows } from './http2-windows';
import { SERVER_LIMIT_OPTIONS } from '../fs/local/request-limits';

export type ControlStream = grpc.ServerDuplexStream<pb.AgentEvent, pb.ClientOrder.$Properties>;

export interface SessionHandlers {
  hello(req: pb.HelloRequest): Promise<pb.HelloReply.$Properties>;
  control(stream: ControlStream): void;
}

export interface RpcObserver {
  /** Called when a filesystem call arrives. */
  onStart?(method: FsMethodName): void;
  /** Called after each filesystem call with its method and latency (for -v). */
  onCall?(method: FsMethodName, ms: number, errno: number, path: string | undefined): void;
}

export function tokenMatches(expected: Buffer, metadata: grpc.Metadata): boolean {
  const values = metadata.get(TOKEN_METADATA_KEY);
  if (values.length !== 1 || typeof values[0] !== 'string') return false;
  const got = Buffer.from(values[0], 'utf8');
  return got.length === expected.length && timingSafeEqual(got, expected);
}

const unauthenticated = { code: grpc.status.UNAUTHENTICATED, details: 'bad session token' };

export class RpcServer {
  // The request bounds (streams in flight, message size) hold whatever the peer sends.
  private readonly server = new grpc.Server({ ...GRPC_CHANNEL_OPTIONS, ...SERVER_LIMIT_OPTIONS });
  private readonly injector: grpc.ConnectionInjector;

  constructor(token: Buffer, fs: LocalFileServer, session: SessionHandlers, observer: RpcObserver = {}) {
    const fsImpl: grpc.UntypedServiceImplementation = {};
    const fsDef: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    for (const name of Object.keys(fileSystemMethods) as FsMethodName[]) {
      fsDef[name] = serverDefinition(fileSystemMethods[name] as Method<unknown, unknown, unknown, unknown>);
      const handler = fs.handlers[name] as (req: unknown) => Promise<{ errno?: number }>;
      fsImpl[name] = (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
        if (!tokenMatches(token, call.metadata)) return callback(unauthenticated);
        const started = performance.now();
        observer.onStart?.(name);
        handler(call.request).then(
          (reply) => {
            const path = (call.request as { path?: Uint8Array }).path;
            observer.onCall?.(name, performance.now() - started, reply.errno ?? 0, path?.length ? Buffer.from(path).toString() : undefined);
            callback(null, reply);
          },
          (err) => {
            observer.onCall?.(name, performance.now() - started, -1, undefined);
            callback({ code: grpc.status.INTERNAL, details: String(err?.message ?? err) });
          },
        );
      };
    }
    this.server.addService(fsDef, fsImpl);

    this.server.addService(
      { Hello: serverDefinition(sessionMethods.Hello), Control: serverDefinition(sessionMethods.Control) },
      {
        Hello: (call: grpc.ServerUnaryCall<pb.HelloRequest, unknown>, callback: grpc.sendUnaryData<unknown>) => {
          if (!tokenMatches(token, call.metadata)) return callback(unauthenticated);
          session.hello(call.request).then(
            (reply) => callback(null, reply),
            (err) => callback({ code: grpc.status.FAILED_PRECONDITION, details: String(err?.message ?? err) }),
          );
        },
        Control: (stream: ControlStream) => {
          if (!tokenMatches(token, stream.metadata)) {
            // emit, not destroy: grpc-js sends the status from its error handler.
            stream.emit('error', Object.assign(new Error('bad session token'), unauthenticated));
            return;
          }
          session.control(stream);
        },
      },
    );
    this.injector = this.server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
    this.windowsTuned = widenServerWindows(this.server);
  }

  /** Whether the HTTP/2 windows were widened (see http2-windows.ts). */
  readonly windowsTuned: boolean;

  /** Serve the agent's end of the HTTP/2 connection carried by this stream. */
  serve(connection: Duplex): void {
    this.injector.injectConnection(connection);
  }

  close(): void {
    this.injector.destroy();
    this.server.forceShutdown();
  }
}
