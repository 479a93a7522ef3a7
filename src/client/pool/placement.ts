// Which pool host a run goes to: among the hosts not skipped (host-state.ts) that have a free
// slot (slots.ts), the one least busy: its load average against its CPU count, as its last
// probe read it, plus the share of its slots this user's runs already hold. Ties go to the
// host with fewer of this user's runs, then to the one listed first. When every slot is
// taken the run waits for one (runs of other local outrun processes end and free theirs).
import * as os from 'node:os';
import type { PoolMember } from './sshlogins';
import type { HostState } from './host-state';
import type { Slot } from './slots';

export interface PoolHost {
  member: PoolMember;
  /** Names the host for slots and state: user@hostname:port as resolved, or 'local' for ':'. */
  key: string;
}

export interface PlacementDeps {
  state(key: string): HostState;
  slots(key: string): { tryTake(count: number): Slot | undefined; held(count: number): number };
  now(): number;
  sleep(ms: number): Promise<void>;
  /** Told once when the run has to wait for a slot. */
  waiting?(line: string): void;
}

export interface Placement {
  host: PoolHost;
  slot: Slot;
  /** Why this host, in a few words (for -v and --stats). */
  why: string;
}

/** How often a waiting run looks for a free slot again. */
const POLL_MS = 150;

function figures(host: PoolHost, state: HostState): { load1?: number; cpus?: number } {
  if (host.member.login === ':') return { load1: os.loadavg()[0], cpus: os.availableParallelism() };
  return { load1: state.load1, cpus: state.cpus };
}

/** The slots of a host: as written (N/), else its CPU count as last probed, else 1. */
export function slotCount(host: PoolHost, state: HostState): number {
  return host.member.slots ?? figures(host, state).cpus ?? 1;
}

/**
 * A host and a slot there, for the next run; undefined when no host is left to try (all in
 * `exclude`: they failed for this run). Hosts being skipped are tried only when every other
 * one is skipped too (the earliest to come back first): a stale mark must not fail a run.
 */
export async function place(hosts: PoolHost[], exclude: ReadonlySet<string>, deps: PlacementDeps): Promise<Placement | undefined> {
  let told = false;
  for (;;) {
    const now = deps.now();
    const left = hosts.filter((h) => !exclude.has(h.key));
    if (left.length === 0) return undefined;
    const states = new Map(left.map((h) => [h.key, deps.state(h.key)]));
    const up = left.filter((h) => (states.get(h.key)!.downUntil ?? 0) <= now);
    const pick = up.length > 0 ? up : [...left].sort((a, b) => states.get(a.key)!.downUntil! - states.get(b.key)!.downUntil!).slice(0, 1);
    const scored = pick
      .map((host, order) => {
        const st = states.get(host.key)!;
        const count = slotCount(host, st);
        const held = deps.slots(host.key).held(count);
        const { load1, cpus } = figures(host, st);
        const load = load1 !== undefined && cpus ? load1 / cpus : 0;
        return { host, st, count, held, load1, cpus, order, score: load + held / count };
      })
      .filter((c) => c.held < c.count)
      .sort((a, b) => a.score - b.score || a.held - b.held || a.order - b.order);
    for (const c of scored) {
      const slot = deps.slots(c.host.key).tryTake(c.count);
      if (!slot) continue; // taken meanwhile by another process
      const loadText =
        c.load1 !== undefined && c.cpus !== undefined
          ? `load ${c.load1.toFixed(2)} on ${c.cpus} CPU${c.cpus === 1 ? '' : 's'}${c.host.member.login === ':' || c.st.probedAt === undefined ? '' : ` (probed ${Math.round((now - c.st.probedAt) / 1000)} s ago)`}`
          : 'load not known yet';
      const why =
        `slot ${slot.index + 1} of ${c.count}, ${c.held} other run${c.held === 1 ? '' : 's'} of yours there, ${loadText}` +
        (up.length === 0 ? '; every host was being skipped, this one comes back first' : `; the least busy of ${scored.length} with a free slot`);
      return { host: c.host, slot, why };
    }
    if (!told && deps.waiting) {
      told = true;
      deps.waiting(`every slot of the pool is taken (${pick.map((h) => `${h.member.login} ${slotCount(h, states.get(h.key)!)}`).join(', ')}); waiting for one`);
    }
    await deps.sleep(POLL_MS);
  }
}
