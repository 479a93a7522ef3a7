// grpc-js service definitions built from the generated message codecs, so both ends share
// one description of every method and its types.
import type { MethodDefinition } from '@grpc/grpc-js';
import { pb } from './schema';

/** A generated message class: encodes its properties, decodes to an instance. */
interface MessageClass<P, C> {
  encode(message: P): { finish(): Uint8Array };
  decode(bytes: Uint8Array): C;
}

/**
 * One RPC method. `ReqP`/`ResP` are what a sender builds (plain properties), `ReqC`/`ResC`
 * what a receiver gets (decoded instances with every field defaulted).
 */
export interface Method<ReqP, ReqC, ResP, ResC> {
  readonly path: string;
  readonly name: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  encodeRequest(m: ReqP): Buffer;
  decodeRequest(b: Buffer): ReqC;
  encodeResponse(m: ResP): Buffer;
  decodeResponse(b: Buffer): ResC;
}

function method<ReqP, ReqC, ResP, ResC>(
  service: string,
  name: string,
  req: MessageClass<ReqP, ReqC>,
  res: MessageClass<ResP, ResC>,
  stream: { request?: boolean; response?: boolean } = {},
): Method<ReqP, ReqC, ResP, ResC> {
  return {
    path: `/outrun.v1.${service}/${name}`,
    name,
    requestStream: stream.request ?? false,
    responseStream: stream.response ?? false,
    encodeRequest: (m) => Buffer.from(req.encode(m).finish()),
    decodeRequest: (b) => req.decode(b),
    encodeResponse: (m) => Buffer.from(res.encode(m).finish()),
    decodeResponse: (b) => res.decode(b),
  };
}

/** The server-side grpc-js definition: requests decoded, responses given as properties. */
export function serverDefinition<ReqP, ReqC, ResP, ResC>(m: Method<ReqP, ReqC, ResP, ResC>): MethodDefinition<ReqC, ResP> {
  return {
    path: m.path,
    requestStream: m.requestStream,
    responseStream: m.responseStream,
    requestSerialize: m.encodeRequest as unknown as (v: ReqC) => Buffer,
    requestDeserialize: m.decodeRequest,
    responseSerialize: m.encodeResponse,
    responseDeserialize: m.decodeResponse as unknown as (b: Buffer) => ResP,
    originalName: m.name,
  };
}

const session = <ReqP, ReqC, ResP, ResC>(n: string, a: MessageClass<ReqP, ReqC>, b: MessageClass<ResP, ResC>) =>
  method('Session', n, a, b);
const fsm = <ReqP, ReqC, ResP, ResC>(n: string, a: MessageClass<ReqP, ReqC>, b: MessageClass<ResP, ResC>) =>
  method('FileSystem', n, a, b);

export const sessionMethods = {
  Hello: session('Hello', pb.HelloRequest, pb.HelloReply),
  Control: method('Session', 'Control', pb.AgentEvent, pb.ClientOrder, { request: true, response: true }),
};

export const fileSystemMethods = {
  Getattr: fsm('Getattr', pb.PathRequest, pb.AttrReply),
  Readdir: fsm('Readdir', pb.ReaddirRequest, pb.ReaddirReply),
  Readlink: fsm('Readlink', pb.PathRequest, pb.ReadlinkReply),
  Access: fsm('Access', pb.AccessRequest, pb.Errno),
  Statfs: fsm('Statfs', pb.PathRequest, pb.StatfsReply),
  Open: fsm('Open', pb.OpenRequest, pb.OpenReply),
  Create: fsm('Create', pb.CreateRequest, pb.OpenReply),
  Read: fsm('Read', pb.ReadRequest, pb.ReadReply),
  Write: fsm('Write', pb.WriteRequest, pb.WriteReply),
  Appends: fsm('Appends', pb.AppendsRequest, pb.AppendsReply),
  Fsync: fsm('Fsync', pb.FsyncRequest, pb.Errno),
  Release: fsm('Release', pb.HandleRequest, pb.Errno),
  Xattr: fsm('Xattr', pb.XattrRequest, pb.XattrReply),
  Truncate: fsm('Truncate', pb.TruncateRequest, pb.Errno),
  Mkdir: fsm('Mkdir', pb.ModeRequest, pb.Errno),
  Mknod: fsm('Mknod', pb.MknodRequest, pb.Errno),
  Rmdir: fsm('Rmdir', pb.PathRequest, pb.Errno),
  Unlink: fsm('Unlink', pb.PathRequest, pb.Errno),
  Rename: fsm('Rename', pb.RenameRequest, pb.Errno),
  Symlink: fsm('Symlink', pb.LinkRequest, pb.Errno),
  Link: fsm('Link', pb.LinkRequest, pb.Errno),
  Chmod: fsm('Chmod', pb.ModeRequest, pb.Errno),
  Chown: fsm('Chown', pb.ChownRequest, pb.Errno),
  Utimens: fsm('Utimens', pb.UtimensRequest, pb.Errno),
};

export type FsMethods = typeof fileSystemMethods;
export type FsMethodName = keyof FsMethods;
type ReqC<M> = M extends Method<any, infer R, any, any> ? R : never;
type ReqP<M> = M extends Method<infer R, any, any, any> ? R : never;
type ResP<M> = M extends Method<any, any, infer R, any> ? R : never;
type ResC<M> = M extends Method<any, any, any, infer R> ? R : never;
/** What a filesystem handler receives and returns, per method. */
export type FsHandler<K extends FsMethodName> = (req: ReqC<FsMethods[K]>) => Promise<ResP<FsMethods[K]>>;
/** What the agent sends and gets back, per method. */
export type FsCall<K extends FsMethodName> = (req: ReqP<FsMethods[K]>) => Promise<ResC<FsMethods[K]>>;

/** gRPC channel options for both ends: big windows for bulk data (field notes: 113 -> 202 MB/s). */
export const GRPC_CHANNEL_OPTIONS = {
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
  'grpc.max_receive_message_length': 64 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
} as const;
