// What this user's outrun processes last learnt of each pool host: its load and CPU count (from
// a run's probe) and, after a failed connection, until when it is skipped and why. One small
// JSON file per host in the pool's private directory, replaced atomically (a reader sees the
// old or the new file, never half of one); a lost race only loses a hint.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { defaultControlDir, privateDir } from '../control-path';
import type { ResolvedHost } from '../ssh-config';

/** What names a host for its slots and state: the connection it is (user, address, port, jumps). */
export function poolKeyOf(r: Pick<ResolvedHost, 'user' | 'hostName' | 'port' | 'proxyJump' | 'proxyCommand'>): string {
  const via = r.proxyJump ?? r.proxyCommand;
  return `${r.user}@${r.hostName}:${r.port}${via ? ` via ${via}` : ''}`;
}

export interface HostState {
  /** 1-minute load average and CPU count, as the last probe read them, and when (ms since epoch). */
  load1?: number;
  cpus?: number;
  probedAt?: number;
  /** Skipped until then (ms since epoch), and why. */
  downUntil?: number;
  downWhy?: string;
}

/** How long a host that could not be reached is skipped. */
export const SKIP_MS = 60_000;

export class HostStates {
  constructor(private readonly base = path.join(defaultControlDir(), 'pool')) {}

  private file(key: string): string {
    return path.join(this.base, `host-${createHash('sha256').update(key).digest('hex').slice(0, 20)}.json`);
  }

  get(key: string): HostState {
    try {
      const v = JSON.parse(fs.readFileSync(this.file(key), 'utf8')) as HostState;
      const num = (x: unknown) => (typeof x === 'number' && Number.isFinite(x) && x >= 0 ? x : undefined);
      return {
        load1: num(v.load1),
        cpus: num(v.cpus) && Math.floor(v.cpus!) >= 1 ? Math.floor(v.cpus!) : undefined,
        probedAt: num(v.probedAt),
        downUntil: num(v.downUntil),
        downWhy: typeof v.downWhy === 'string' ? v.downWhy.slice(0, 300) : undefined,
      };
    } catch {
      return {};
    }
  }

  private put(key: string, state: HostState): void {
    const file = this.file(key);
    const tmp = `${file}.${process.pid}.tmp`;
    if (privateDir(path.dirname(this.base), true) || privateDir(this.base, true)) return;
    try {
      fs.writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
      fs.renameSync(tmp, file);
    } catch {
      fs.rmSync(tmp, { force: true });
    }
  }

  /** A probe answered: the host is up, with this load. */
  probed(key: string, load1: number, cpus: number, now = Date.now()): void {
    this.put(key, { load1, cpus, probedAt: now });
  }

  /** A connection failed: skip the host for SKIP_MS. */
  down(key: string, why: string, now = Date.now()): void {
    this.put(key, { ...this.get(key), downUntil: now + SKIP_MS, downWhy: why });
  }
}
