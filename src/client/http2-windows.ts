// grpc-js gives a server no option for HTTP/2 flow-control windows, so the local side
// advertised Node's default 64 KiB: everything the agent sends (writes) then crawled at one
// window per round trip (48 MB/s on loopback for 1 GiB). The agent's end already asks for
// 16 MiB through 'grpc-node.flow_control_window'. This gives the server's sessions the same,
// through the http2 server grpc-js made for our connection injector. It reaches into one
// private field (http2Servers); if a grpc-js upgrade renames it, `tuned` is false and the
// unit test that checks it fails, rather than throughput silently dropping.
import type * as grpc from '@grpc/grpc-js';
import type * as http2 from 'node:http2';

export const WINDOW_BYTES = 16 * 1024 * 1024;

/** Call right after createConnectionInjector: tunes the injector's (newest) http2 server. */
export function widenServerWindows(server: grpc.Server): boolean {
  const servers = (server as unknown as { http2Servers?: Map<http2.Http2Server, unknown> }).http2Servers;
  const h2 = servers ? [...servers.keys()].at(-1) : undefined;
  if (!h2 || typeof h2.on !== 'function') return false;
  h2.on('session', (session: http2.ServerHttp2Session) => {
    session.settings({ initialWindowSize: WINDOW_BYTES });
    // The connection-level window can only be set once the session is up.
    const widen = () => session.setLocalWindowSize(WINDOW_BYTES);
    if (session.connecting === false || (session as unknown as { encrypted?: boolean }).encrypted !== undefined) {
      try {
        widen();
        return;
      } catch {
        // not ready yet
      }
    }
    session.once('connect', widen);
  });
  return true;
}
