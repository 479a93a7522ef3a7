// The remote agent (its program; agent.ts is the bundle's entry). Started by `outrun-helper agent` inside fresh mount and PID namespaces,
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
import { makeFsClient } from '../fs/agent/rpc-client';
import { makePathOps, makeWriteBehind } from '../fs/agent/path-ops';
import { Counters } from '../fs/agent/counters';
import { CacheScope } from '../fs/shared/cache-scope';
import { PersistentCache } from '../fs/agent/persistent-cache';
import type { WriteBehind } from '../fs/agent/write-behind';
import { bridgeStdioToSocket } from './stdio-bridge';
import { bindSystemDirs, mountLocalTree } from './mount';
import type { MountedTree } from './mount';
import { LINK_LOST_GRACE_MS, LINK_WATCH_OPTIONS, watchLink } from './link-watch';
import { FuseOpsByRun } from './fuse-ops-by-run';
import { StaleAnswers } from './stale-answers';
import { inInitialUserNamespace } from './user-namespace';
import { RELAY_SILENCE_MS } from '../wire/relay-paths';
import { LINK_SILENCE_MS } from './link-watch';

const AGENT_VERSION = '0.1.0';
const HELPER = join(__dirname, 'outrun-helper');
/** Where the persistent caches live on the remote, one directory per client key: next to the
 * runtimes (<root>/runtime/<id>/agent.js), so /var/cache/outrun/fs for root and
 * ~/.cache/outrun/fs for a rootless login. */
const CACHE_ROOT = join(__dirname, '..', '..', 'fs');
/** A rootless session (a user namespace of the login's). */
const ROOTLESS = !inInitialUserNamespace();

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

/** What must happen before the agent exits, however it ends (saving the cache). */
let beforeExit: (() => Promise<void>) | undefined;
/** Resolves when the client is done with us: it ended the control stream or closed the channel. */
let channelEnded!: () => void;
const channelGone = new Promise<void>((r) => (channelEnded = r));
let shuttingDown = false;
/** Ends the session once beforeExit has run (bounded: a stuck disk must not keep us). */
function finish(status: number): void {
  const work = beforeExit?.() ?? Promise.resolve();
  beforeExit = undefined;
  setTimeout(() => end(status), 2000).unref();
  void work.catch(() => undefined).then(() => end(status));
}

async function main(): Promise<void> {
  const lost = () => {
    if (!shuttingDown) finish(EXIT.LOST);
  };
  process.stdin.on('error', lost);
  process.stdout.on('error', lost);
  // sshd hangs up the session when the client closes its channel (the helper forwards it):
  // the same as the channel closing, not a reason to drop what is being saved.
  process.on('SIGHUP', lost);
  process.on('SIGTERM', lost);

  const { preamble, rest } = await readPreamble(process.stdin).catch((err) => fatal(EXIT.PREAMBLE, err.message));
  if (preamble.protocol !== PROTOCOL_VERSION) {
    fatal(EXIT.PROTOCOL, `protocol mismatch: client speaks ${preamble.protocol}, agent speaks ${PROTOCOL_VERSION}`);
  }
  // The channel closing (local outrun gone, link lost) ends the session.
  // The channel closing (local outrun gone, link lost) ends the session. After a shutdown
  // order it is expected: the client does not wait for us to finish saving.
  process.stdin.on('end', () => {
    channelEnded();
    if (shuttingDown) return;
    log('channel closed; ending the session');
    finish(EXIT.LOST);
  });

  const socketPath = join(preamble.sessionDir, 'rpc.sock');
  const since = (t: number) => `${(performance.now() - t).toFixed(0)} ms`;
  const tStart = performance.now();
  const bridge = await bridgeStdioToSocket(socketPath, process.stdin, process.stdout, rest);
  const client = new grpc.Client(`unix:${socketPath}`, grpc.credentials.createInsecure(), {
    ...GRPC_CHANNEL_OPTIONS,
    ...LINK_WATCH_OPTIONS,
  });
  // Connect now (HTTP/2 set-up takes round trips), while the cache index is read.
  client.getChannel().getConnectivityState(true);
  const metadata = new grpc.Metadata();
  metadata.set(TOKEN_METADATA_KEY, preamble.token);

  // The persistent cache is an optimisation: if it cannot be opened, the session runs without.
  let persistent: PersistentCache | undefined;
  // A master's later runs reopen it (fuse-ops-by-run.ts): the newest is the one saved.
  let byRun: FuseOpsByRun | undefined;
  beforeExit = async () => {
    await (byRun?.persistent ?? persistent)?.save().catch((err) => log(`saving the persistent cache failed: ${err.message}`));
  };
  const cacheSpec = preamble.cache;
  const openPersistent =
    cacheSpec && validCache(cacheSpec) && cacheSpec.trees.length > 0
      ? () =>
          PersistentCache.open({
            dir: join(CACHE_ROOT, cacheSpec.key),
            scope: new CacheScope(cacheSpec.trees),
            maxBytes: cacheSpec.maxBytes,
            log,
          }).catch((err) => {
            log(`persistent cache unavailable: ${err.message}`);
            return undefined;
          })
      : undefined;
  persistent = await openPersistent?.();

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
  // The index's entries are decoded, a batch per turn, while the Hello is on its way.
  const loading = persistent?.load();
  const hello = await helloCall.catch((err) => fatal(EXIT.HELLO, `session handshake failed: ${err.details || err.message}`));
  if (hello.protocolVersion !== PROTOCOL_VERSION) {
    fatal(EXIT.PROTOCOL, `protocol mismatch: client speaks ${hello.protocolVersion}, agent speaks ${PROTOCOL_VERSION}`);
  }
  const m = hello.mount ?? {};
  // Seconds, checked: a timeout the kernel would take as years is not one the client meant.
  const timeout = (s: number | null | undefined) => (Number.isInteger(s) && s! >= 0 && s! <= 3600 ? s! : 1);
  const mountOptions = {
    attrTimeoutS: timeout(m.attrTimeoutS),
    entryTimeoutS: timeout(m.entryTimeoutS),
    negativeTimeoutS: timeout(m.negativeTimeoutS),
  };
  verbose = !!m.debug;
  log(`hello from client ${hello.clientVersion}`);
  if (persistent) {
    await loading;
    if (hello.cacheRejected) await persistent.dropAll();
    else await persistent.dropStale(hello.staleProbes);
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
  /** The kernel's view of the tree (its inode table), once mounted. */
  let kernelFs: MountedTree | undefined;
  let writeBehind: WriteBehind | undefined;
  const stale = new StaleAnswers();
  control.on('data', async (order: pb.ClientOrder) => {
    if (order.stale) stale.answer(order.stale);
    // A master's run starts: caches revalidated first (run-revalidation.ts), then RunReady.
    if (order.runStart && byRun && !shuttingDown) {
      const id = order.runStart.id ?? 0;
      const error = await byRun
        .runStarts((probes) => {
          const answer = stale.wait(id);
          control.write({ revalidate: { id, probes } });
          return answer;
        })
        .then(
          () => '',
          (err: Error) => err.message || 'revalidation failed',
        );
      if (error) log(`run ${id}: ${error}`);
      control.write({ runReady: { id, error } });
    }
    if (order.shutdown && !shuttingDown) {
      log(`shutdown: ${order.shutdown.reason}`);
      shuttingDown = true;
      setTimeout(() => end(EXIT.OK), 5000).unref();
      // Writes still on their way go out first (anything left running in the command's
      // tree may still write; the helper kills it when we exit).
      await writeBehind?.drainAll();
      // What this session learned is kept for the next.
      const save = beforeExit?.();
      beforeExit = undefined;
      await save;
      // Our figures, if the client waits for them (--stats); then we are done.
      const cacheCounters: Record<string, number> = persistent
        ? { 'persist.loaded': persistent.stats.loaded, 'persist.stale': persistent.stats.stale }
        : {};
      if (kernelFs) Object.assign(cacheCounters, kernelFs.counters(), { 'fuse.nodes': kernelFs.nodes.table.size });
      const latest = byRun?.persistent;
      if (latest && latest !== persistent) cacheCounters['persist.stale-at-run-starts'] = latest.stats.stale;
      // A client that waits for them (--stats) ends the stream once it has them; one that
      // does not has closed the channel already. Exiting sooner could cut them off on their
      // way out through the bridge.
      control.write({ stats: { counters: { ...counters.snapshot(), ...fs.timing.snapshot(), ...cacheCounters } } });
      await Promise.race([channelGone, new Promise((r) => setTimeout(r, 1000))]);
      end(EXIT.OK);
    }
  });
  control.on('error', (err) => {
    if (shuttingDown) return;
    log(`control stream failed: ${err.message}`);
    // The pending filesystem calls failed with it: let their EIO replies reach the commands.
    setTimeout(() => finish(EXIT.LOST), LINK_LOST_GRACE_MS);
  });
  control.on('end', () => {
    if (shuttingDown) channelEnded();
    else setTimeout(() => finish(EXIT.LOST), LINK_LOST_GRACE_MS);
  });

  const fs = makeFsClient(client, metadata);
  // A link that carries nothing for long is gone: the session ends (the helper then kills
  // the command and the mount goes) rather than leave the command a mount that answers
  // EIO; the client reports the lost connection (exit 255).
  watchLink(bridge.counters, { pendingCalls: () => fs.timing.pending }, (reason) => {
    if (shuttingDown) return;
    process.stderr.write(`agent: link lost: ${reason}\n`);
    // Pending calls fail (EIO to the commands waiting on them), then the session ends.
    fs.cancelAll();
    client.close();
    setTimeout(() => finish(EXIT.LOST), LINK_LOST_GRACE_MS);
  }, linkSilenceMs(preamble.resumeMs));
  writeBehind = makeWriteBehind(fs);
  let warm: typeof hello.warm | undefined = hello.warm;
  byRun = new FuseOpsByRun(
    (persistentNow, writeBehindNow) => {
      const ops = makePathOps(fs, {
        // The agent's own caches answer for a second what the kernel asks again (after an
        // invalidation, or a kernel that dropped its copy); the kernel keeps things longer.
        attrTimeoutMs: 1000,
        negativeTimeoutMs: 1000,
        onRpcError: (op, err) => log(`${op} failed: ${(err as Error).message}`),
        counters,
        persistent: persistentNow,
        // Listed at the session's start: for its first run only.
        warm,
        writeBehind: writeBehindNow,
      });
      warm = undefined;
      return ops;
    },
    writeBehind,
    persistent,
    async () => openPersistent?.(),
    // A run through a master starts with nothing the kernel kept from the runs before it.
    async () => kernelFs?.nodes.invalidateAll(),
  );
  const ops = byRun.ops;

  const root = join(preamble.sessionDir, 'root');
  try {
    const mounted = await mountLocalTree(
      root,
      ops,
      {
        ...mountOptions,
        // Passthrough needs CAP_SYS_ADMIN in the initial user namespace: the root agent has it,
        // a rootless one never does (the kernel would refuse each backing open).
        passthrough: !ROOTLESS,
        onError: (op, err) => log(`${op} failed: ${(err as Error).message}`),
      },
      counters,
    );
    kernelFs = mounted;
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

/**
 * Behind a relay that keeps the session through an outage (src/remote/relay.ts), silence is
 * the relay's to judge: it ends us (closing our stdin) when the client is not back in time.
 * Our own watch stays, as a backstop, beyond the relay's last moment.
 */
function linkSilenceMs(resumeMs: unknown): number {
  const ms = typeof resumeMs === 'number' && Number.isSafeInteger(resumeMs) && resumeMs > 0 ? Math.min(resumeMs, 86_400_000) : 0;
  return ms ? LINK_SILENCE_MS + RELAY_SILENCE_MS + ms : LINK_SILENCE_MS;
}

/** The agent's program (agent.ts loads this module only for it). */
export function runAgent(): void {
  main().catch((err) => fatal(1, `internal error: ${err?.stack ?? err}`));
}
