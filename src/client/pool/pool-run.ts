// A run on a pool (`-S 2/box1,4/box2`, `@NAME`): place it (placement.ts), hold the slot for the
// whole run, and run it on that host as a plain `outrun HOST cmd` would. A host whose connection
// fails is skipped for a while (one line says which and why) and the run goes to the next;
// when none is left: exit 255. `:` runs the command here, as GNU parallel does.
import { spawn } from 'node:child_process';
import { constants } from 'node:os';
import { OutrunError } from '../errors';
import { parseArgs, toResolveOptions, type PoolRef } from '../cli-args';
import { resolveSshConfig } from '../ssh-config';
import { HostStates, poolKeyOf } from './host-state';
import { place, type PoolHost } from './placement';
import { namedPool } from './pool-config';
import { HostSlots } from './slots';
import { mergeMembers, parseSshlogins, type PoolMember } from './sshlogins';
import { DEFAULT_KILL_AFTER_MS, TIMED_OUT_KILLED_STATUS, TIMED_OUT_STATUS } from '../run-timeout';

/** What a run on one host tells its pool. */
export interface PoolHooks {
  /** The probe's figures for this host. */
  probed(load1: number, cpus: number): void;
  /** For --stats: which host ran the command, and why it was chosen. */
  chosen: string;
}

/** The connection to the chosen host failed before anything ran: try another. */
export class HostUnreachable extends Error {
  constructor(readonly error: OutrunError) {
    super(error.message);
  }
}

export interface PoolRunOptions {
  pool: PoolRef;
  baseArgv: string[];
  command: string[];
  verbose: number;
  timeoutMs?: number;
  killAfterMs?: number;
  /** Runs `argv` (options, one destination, the command) as outrun does. */
  runOne(argv: string[], hooks: PoolHooks): Promise<number>;
  /** Told the login of the host a run goes to (before it runs there). */
  ranOn?(login: string): void;
  say(line: string): void;
}

export function poolMembers(pool: PoolRef): PoolMember[] {
  return mergeMembers('name' in pool ? namedPool(pool.name) : pool.logins.flatMap((v) => parseSshlogins(v)));
}

export async function runOnPool(o: PoolRunOptions): Promise<number> {
  const hosts: PoolHost[] = poolMembers(o.pool).map((member) => {
    if (member.login === ':') return { member, key: 'local' };
    const parsed = parseArgs([...o.baseArgv, member.login, 'true']);
    if (parsed.action !== 'run') throw new OutrunError('USAGE', `sshlogin ${member.login} is not a destination`);
    const r = resolveSshConfig(toResolveOptions(parsed));
    return { member, key: poolKeyOf(r) };
  });
  const states = new HostStates();
  const slots = new Map<string, HostSlots>();
  const slotsOf = (key: string) => {
    let s = slots.get(key);
    if (!s) slots.set(key, (s = new HostSlots(key)));
    return s;
  };
  const failed = new Set<string>();
  const why: string[] = [];
  const log = (line: string) => {
    if (o.verbose > 0) o.say(`pool: ${line}`);
  };
  for (;;) {
    const placed = await place(hosts, failed, {
      state: (k) => states.get(k),
      slots: slotsOf,
      now: Date.now,
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      waiting: log,
    });
    if (!placed) {
      throw new OutrunError('POOL_UNREACHABLE', `no host of the pool could be reached: ${why.join('; ')}`, {
        hint: 'check the hosts and the network (-v shows each attempt)',
      });
    }
    const { host, slot } = placed;
    log(`${host.member.login} chosen: ${placed.why}`);
    o.ranOn?.(host.member.login);
    try {
      if (host.member.login === ':') return await runHere(o.command, o.timeoutMs, o.killAfterMs);
      return await o.runOne([...o.baseArgv, host.member.login, ...o.command], {
        probed: (load1, cpus) => states.probed(host.key, load1, cpus),
        chosen: `pool: the command ran on ${host.member.login} (${placed.why})`,
      });
    } catch (err) {
      if (!(err instanceof HostUnreachable)) throw err;
      failed.add(host.key);
      states.down(host.key, err.error.message);
      why.push(`${host.member.login}: ${err.error.message}`);
      o.say(`${host.member.login} skipped for 60 s: ${err.error.message}`);
    } finally {
      slot.release();
    }
  }
}

/** `:`: the command on this machine, its status as a shell gives it; --timeout as timeout(1). */
function runHere(command: string[], timeoutMs?: number, killAfterMs?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0]!, command.slice(1), { stdio: 'inherit' });
    const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
    const handlers = (['SIGTERM', 'SIGHUP', 'SIGINT', 'SIGQUIT'] as const).map((s) => [s, forward(s)] as const);
    // Ctrl-C reaches the child through the terminal too; outrun itself waits for its end.
    handlers.forEach(([s, h]) => process.on(s, h));
    let timedOut: 'term' | 'kill' | undefined;
    const timers: NodeJS.Timeout[] = [];
    if (timeoutMs) {
      const left = Math.max(0, timeoutMs - performance.now());
      timers.push(
        setTimeout(() => {
          timedOut = 'term';
          child.kill('SIGTERM');
          timers.push(
            setTimeout(() => {
              timedOut = 'kill';
              child.kill('SIGKILL');
            }, killAfterMs ?? DEFAULT_KILL_AFTER_MS),
          );
        }, left),
      );
    }
    child.on('error', (err: NodeJS.ErrnoException) => {
      handlers.forEach(([s, h]) => process.off(s, h));
      timers.forEach(clearTimeout);
      if (err.code === 'ENOENT' || err.code === 'EACCES') {
        process.stderr.write(`outrun: ${command[0]}: ${err.code === 'ENOENT' ? 'command not found' : 'permission denied'}\n`);
        resolve(err.code === 'ENOENT' ? 127 : 126);
      } else reject(err);
    });
    child.on('exit', (code, signal) => {
      handlers.forEach(([s, h]) => process.off(s, h));
      timers.forEach(clearTimeout);
      if (timedOut) return resolve(timedOut === 'kill' ? TIMED_OUT_KILLED_STATUS : TIMED_OUT_STATUS);
      resolve(code ?? 128 + (signal ? constants.signals[signal] : 0));
    });
  });
}
