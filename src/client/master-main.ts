// The master's process (started detached by master-spawn.ts): reads what to connect to from
// stdin, claims the socket, tells its starter on stdout (one JSON line: claimed, taken, or
// error), then connects and serves the runs that attach (master.ts) until it ends.
import * as fs from 'node:fs';
import { parseArgs, toResolveOptions } from './cli-args';
import { asOutrunError } from './errors';
import { loadRuntimes } from './runtime';
import { resolveSshConfig } from './ssh-config';
import { Master, claimSocket } from './master';
import { DEFAULT_CACHED_TREES } from '../fs/shared/cache-scope';
import { DEFAULT_CACHE_BYTES } from './cache-key';
import type { MasterStart } from './master-spawn';

async function readStdin(): Promise<string> {
  const parts: Buffer[] = [];
  for await (const chunk of process.stdin) parts.push(chunk as Buffer);
  return Buffer.concat(parts).toString('utf8');
}

function tell(value: unknown): void {
  try {
    fs.writeSync(1, `${JSON.stringify(value)}\n`);
  } catch {
    // the starter went away: nobody to tell
  }
}

async function main(): Promise<void> {
  const cfg = JSON.parse(await readStdin()) as MasterStart;
  // Relative paths in the options (-F, -i) are the starter's; after connecting, the master
  // holds no directory.
  process.chdir(cfg.startDir);
  const log = (msg: string) => {
    if (cfg.logPath) fs.appendFileSync(cfg.logPath, `${new Date().toISOString()} master ${process.pid}: ${msg}\n`, { mode: 0o600 });
  };
  const claim = await claimSocket(cfg.socketPath);
  if (claim === 'taken') return tell({ taken: true });
  if (claim instanceof Error) return tell({ error: { code: claim.code, message: claim.message } });
  // Modes from the remote are already masked by the command's umask (see local-server.ts).
  process.umask(0);
  const master = new Master({ socketPath: cfg.socketPath, persist: cfg.persist, log }, claim);
  tell({ claimed: true, pid: process.pid });
  // Nothing more goes to the starter (its end of the pipe is closed once it has read this).
  const err = await master.start(async () => {
    const parsed = parseArgs(cfg.argv);
    if (parsed.action !== 'run') throw new Error('the master was given no destination');
    const { options } = parsed;
    const resolved = resolveSshConfig(toResolveOptions(parsed));
    // ssh2 only once the socket is claimed; the agent session's code while the probe runs.
    const { connectSsh } = await import('./ssh-connect');
    const conn = await connectSsh(resolved, { verbose: 0, log, interactive: false, warn: log });
    log(`connected to ${resolved.user}@${resolved.hostName}:${resolved.port}`);
    const { ensureRemoteRuntime } = await import('./bootstrap');
    // A master takes both kinds of run: on another architecture without emulation, it refuses
    // the chroot ones itself (master.ts).
    const ensuring = ensureRemoteRuntime(conn, loadRuntimes(), log, { host: resolved.hostName, mode: 'either' });
    ensuring.catch(() => undefined);
    await import('./agent-session');
    const { remoteDir, rootless, runtime, chrootRefusal, load } = await ensuring;
    // What a pool's placement reads of this host (pool/host-state.ts).
    if (load) {
      const { HostStates, poolKeyOf } = await import('./pool/host-state');
      new HostStates().probed(poolKeyOf(resolved), load.load1, load.cpus);
    }
    process.chdir('/');
    return {
      conn,
      remoteDir,
      chrootRefusal,
      agent: {
        loader: runtime.loader,
        rootless,
        commandEnv: cfg.commandEnv,
        cwd: cfg.cwd,
        verbose: 0,
        log,
        manyRuns: true,
        remoteId: `${resolved.user}@${resolved.hostKeyAlias ?? resolved.hostName}:${resolved.port}`,
        cache:
          options.cachePaths?.length === 0
            ? undefined
            : { trees: options.cachePaths ?? DEFAULT_CACHED_TREES, maxBytes: options.cacheBytes ?? DEFAULT_CACHE_BYTES },
        kernelCacheS: options.kernelCacheS,
      },
    };
  });
  if (err) log(`could not start: ${err.message}`);
}

main().catch((err) => {
  tell({ error: { code: 'INTERNAL', message: asOutrunError(err).message } });
  process.exit(1);
});
