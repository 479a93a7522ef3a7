// The remote agent. Started by `outrun-helper agent` inside fresh mount and PID namespaces,
// with its stdin/stdout being the SSH channel to the local client. It reads the session
// preamble, dials the local file server through that channel, mounts the local tree with
// FUSE, binds the remote's /proc, /sys and /dev, reports that the root is ready and then
// serves FUSE requests until the client orders a shutdown or the channel closes. The
// command itself is started by `outrun-helper exec` on a second channel.
import * as grpc from '@grpc/grpc-js';
import { machine, release } from 'node:os';
import { join } from 'node:path';
import { readPreamble } from '../wire/preamble';
import { PROTOCOL_VERSION, TOKEN_METADATA_KEY, pb } from '../wire/schema';
import { GRPC_CHANNEL_OPTIONS, sessionMethods } from '../wire/services';
import { makeFsClient } from '../fs/rpc-client';
import { makeFuseOps } from '../fs/fuse-ops';
import { Counters } from '../fs/counters';
import { bridgeStdioToSocket } from './stdio-bridge';
import { bindSystemDirs, mountLocalTree } from './mount';
import { LINK_LOST_GRACE_MS, LINK_WATCH_OPTIONS } from './link-watch';

const AGENT_VERSION = '0.1.0';
const HELPER = join(__dirname, 'outrun-helper');

/** Exit statuses of the agent, read by the client when the agent channel closes. */
const EXIT = { OK: 0, PREAMBLE: 10, HELLO: 11, PROTOCOL: 12, MOUNT: 13, LOST: 14 } as const;

let verbose = false;
const log = (msg: string) => {
  if (verbose) process.stderr.write(`agent: ${msg}\n`);
};
const fatal = (status: number, msg: string): never => {
  process.stderr.write(`agent: ${msg}\n`);
  end(status);
};

/**
 * Ends the session. The helper's init (PID 1 of our namespace) sees us exit and kills
 * everything left in the namespace, the command tree included; the mount namespace and
 * every mount in it go with the last process.
 */
function end(status: number): never {
  process.exit(status);
}

async function main(): Promise<void> {
  process.stdin.on('error', () => end(EXIT.LOST));
  process.stdout.on('error', () => end(EXIT.LOST));

  const { preamble, rest } = await readPreamble(process.stdin).catch((err) => fatal(EXIT.PREAMBLE, err.message));
  if (preamble.protocol !== PROTOCOL_VERSION) {
    fatal(EXIT.PROTOCOL, `protocol mismatch: client speaks ${preamble.protocol}, agent speaks ${PROTOCOL_VERSION}`);
  }
  // The channel closing (local outrun gone, link lost) ends the session.
  process.stdin.on('end', () => {
    log('channel closed; ending the session');
    end(EXIT.LOST);
  });

  const socketPath = join(preamble.sessionDir, 'rpc.sock');
  await bridgeStdioToSocket(socketPath, process.stdin, process.stdout, rest);
  const client = new grpc.Client(`unix:${socketPath}`, grpc.credentials.createInsecure(), {
    ...GRPC_CHANNEL_OPTIONS,
    ...LINK_WATCH_OPTIONS,
  });
  const metadata = new grpc.Metadata();
  metadata.set(TOKEN_METADATA_KEY, preamble.token);

  const hello = await new Promise<pb.HelloReply>((resolve, reject) =>
    client.makeUnaryRequest(
      sessionMethods.Hello.path,
      sessionMethods.Hello.encodeRequest,
      sessionMethods.Hello.decodeResponse,
      { protocolVersion: PROTOCOL_VERSION, agentVersion: AGENT_VERSION, machine: machine(), kernel: release() },
      metadata.clone(),
      (err, reply) => (err ? reject(err) : resolve(reply!)),
    ),
  ).catch((err) => fatal(EXIT.HELLO, `session handshake failed: ${err.details || err.message}`));
  if (hello.protocolVersion !== PROTOCOL_VERSION) {
    fatal(EXIT.PROTOCOL, `protocol mismatch: client speaks ${hello.protocolVersion}, agent speaks ${PROTOCOL_VERSION}`);
  }
  const m = hello.mount ?? {};
  const mountOptions = {
    attrTimeoutS: m.attrTimeoutS ?? 1,
    entryTimeoutS: m.entryTimeoutS ?? 1,
    negativeTimeoutS: m.negativeTimeoutS ?? 1,
  };
  verbose = !!m.debug;
  log(`hello from client ${hello.clientVersion}`);

  const control = client.makeBidiStreamRequest(
    sessionMethods.Control.path,
    sessionMethods.Control.encodeRequest,
    sessionMethods.Control.decodeResponse,
    metadata.clone(),
  );
  const counters = new Counters();
  let shuttingDown = false;
  control.on('data', (order: pb.ClientOrder) => {
    if (order.shutdown) {
      log(`shutdown: ${order.shutdown.reason}`);
      shuttingDown = true;
      // Our figures go out first; the client closes the stream once it has them.
      control.write({ stats: { counters: { ...counters.snapshot(), ...fs.timing.snapshot() } } });
      setTimeout(() => end(EXIT.OK), 1000).unref();
    }
  });
  control.on('error', (err) => {
    log(`control stream failed: ${err.message}`);
    // The pending filesystem calls failed with it: let their EIO replies reach the commands.
    setTimeout(() => end(EXIT.LOST), LINK_LOST_GRACE_MS);
  });
  control.on('end', () => (shuttingDown ? end(EXIT.OK) : setTimeout(() => end(EXIT.LOST), LINK_LOST_GRACE_MS)));

  const fs = makeFsClient(client, metadata);
  const ops = makeFuseOps(fs, {
    // The agent's own cache lives at least a second even when the kernel keeps nothing.
    attrTimeoutMs: Math.max(mountOptions.attrTimeoutS, 1) * 1000,
    negativeTimeoutMs: mountOptions.negativeTimeoutS * 1000,
    onRpcError: (op, err) => log(`${op} failed: ${(err as Error).message}`),
    counters,
  });

  const root = join(preamble.sessionDir, 'root');
  try {
    await mountLocalTree(root, ops, { ...mountOptions, debug: false });
    log(`mounted the local tree at ${root}`);
    await bindSystemDirs(HELPER, root);
    log('bound /proc, /sys, /dev');
  } catch (err) {
    const message = `mounting the local tree failed: ${(err as Error).message}`;
    control.write({ failure: { code: 'MOUNT_FAILED', message } });
    setTimeout(() => fatal(EXIT.MOUNT, message), 200);
    return;
  }
  control.write({ mounted: { root } });
}

main().catch((err) => fatal(1, `internal error: ${err?.stack ?? err}`));
