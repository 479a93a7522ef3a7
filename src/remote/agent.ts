// The remote agent. Started by `outrun-helper agent` inside fresh mount and PID namespaces,
// with its stdin/stdout being the SSH channel to the local client. It reads the session
// preamble, dials the local file server through that channel, mounts the local tree with
// FUSE, binds the remote's /proc, /sys and /dev, reports that the root is ready and then
// serves FUSE requests until the client orders a shutdown or the channel closes. The
// command itself is started by `outrun-helper exec` on a second channel.
import * as grpc from '@grpc/grpc-js';
import { machine, release } from 'node:os';
import { join } from 'node:path';
import { readPreamble, validCache } from '../wire/preamble';
import { PROTOCOL_VERSION, TOKEN_METADATA_KEY, pb } from '../wire/schema';
import { GRPC_CHANNEL_OPTIONS, sessionMethods } from '../wire/services';
import { makeFsClient } from '../fs/rpc-client';
import { makeFuseOps, makeWriteBehind } from '../fs/fuse-ops';
import { Counters } from '../fs/counters';
import { CacheScope } from '../fs/cache-scope';
import { PersistentCache } from '../fs/persistent-cache';
import type { WriteBehind } from '../fs/write-behind';
import { bridgeStdioToSocket } from './stdio-bridge';
import { bindSystemDirs, mountLocalTree } from './mount';

const AGENT_VERSION = '0.1.0';
const HELPER = join(__dirname, 'outrun-helper');
/** Where the persistent caches live on the remote (root only), one directory per client key. */
const CACHE_ROOT = '/var/cache/outrun/fs';

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
  const since = (t: number) => `${(performance.now() - t).toFixed(0)} ms`;
  const tStart = performance.now();
  await bridgeStdioToSocket(socketPath, process.stdin, process.stdout, rest);
  const client = new grpc.Client(`unix:${socketPath}`, grpc.credentials.createInsecure(), GRPC_CHANNEL_OPTIONS);
  // Connect now (HTTP/2 set-up takes round trips), while the cache index is read.
  client.getChannel().getConnectivityState(true);
  const metadata = new grpc.Metadata();
  metadata.set(TOKEN_METADATA_KEY, preamble.token);

  // The persistent cache is an optimisation: if it cannot be opened, the session runs without.
  let persistent: PersistentCache | undefined;
  if (preamble.cache && validCache(preamble.cache) && preamble.cache.trees.length > 0) {
    persistent = await PersistentCache.open({
      dir: join(CACHE_ROOT, preamble.cache.key),
      scope: new CacheScope(preamble.cache.trees),
      maxBytes: preamble.cache.maxBytes,
      log,
    }).catch((err) => {
      log(`persistent cache unavailable: ${err.message}`);
      return undefined;
    });
  }

  const probes = persistent?.probes() ?? Buffer.alloc(0);
  const tHello = performance.now();
  const helloCall = new Promise<pb.HelloReply>((resolve, reject) =>
    client.makeUnaryRequest(
      sessionMethods.Hello.path,
      sessionMethods.Hello.encodeRequest,
      sessionMethods.Hello.decodeResponse,
      {
        protocolVersion: PROTOCOL_VERSION,
        agentVersion: AGENT_VERSION,
        machine: machine(),
        kernel: release(),
        cacheProbes: probes,
      },
      metadata.clone(),
      (err, reply) => (err ? reject(err) : resolve(reply!)),
    ),
  );
  // The index's entries are decoded while the Hello is on its way and being answered.
  if (persistent) {
    await new Promise((r) => setImmediate(r));
    persistent.load();
  }
  const hello = await helloCall.catch((err) => fatal(EXIT.HELLO, `session handshake failed: ${err.details || err.message}`));
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
  if (persistent) {
    if (hello.cacheRejected) persistent.dropAll();
    else persistent.dropStale(hello.staleProbes);
    log(
      `persistent cache: ${persistent.stats.loaded} entries, ${persistent.stats.stale} stale ` +
        `(agent code loaded in ${tStart.toFixed(0)} ms, index and probes ${(tHello - tStart).toFixed(0)} ms, Hello ${since(tHello)})`,
    );
  }

  const control = client.makeBidiStreamRequest(
    sessionMethods.Control.path,
    sessionMethods.Control.encodeRequest,
    sessionMethods.Control.decodeResponse,
    metadata.clone(),
  );
  const counters = new Counters();
  let writeBehind: WriteBehind | undefined;
  let shuttingDown = false;
  control.on('data', async (order: pb.ClientOrder) => {
    if (order.shutdown && !shuttingDown) {
      log(`shutdown: ${order.shutdown.reason}`);
      shuttingDown = true;
      setTimeout(() => end(EXIT.OK), 3000).unref();
      // Writes still on their way go out first (anything left running in the command's
      // tree may still write; the helper kills it when we exit).
      await writeBehind?.drainAll();
      // What this session learned is kept for the next.
      await persistent?.save().catch((err) => log(`saving the persistent cache failed: ${err.message}`));
      // Our figures go out first; the client closes the stream once it has them.
      const cacheCounters: Record<string, number> = persistent
        ? { 'persist.loaded': persistent.stats.loaded, 'persist.stale': persistent.stats.stale }
        : {};
      control.write({ stats: { counters: { ...counters.snapshot(), ...fs.timing.snapshot(), ...cacheCounters } } });
      setTimeout(() => end(EXIT.OK), 1000).unref();
    }
  });
  control.on('error', (err) => {
    log(`control stream failed: ${err.message}`);
    end(EXIT.LOST);
  });
  control.on('end', () => end(shuttingDown ? EXIT.OK : EXIT.LOST));

  const fs = makeFsClient(client, metadata);
  writeBehind = makeWriteBehind(fs);
  const ops = makeFuseOps(fs, {
    // The agent's own cache lives at least a second even when the kernel keeps nothing.
    attrTimeoutMs: Math.max(mountOptions.attrTimeoutS, 1) * 1000,
    negativeTimeoutMs: mountOptions.negativeTimeoutS * 1000,
    onRpcError: (op, err) => log(`${op} failed: ${(err as Error).message}`),
    counters,
    persistent,
    warm: hello.warm,
    writeBehind,
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
