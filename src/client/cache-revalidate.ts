// The local half of the persistent cache's revalidation: the agent sends, in Session.Hello,
// a fingerprint of every entry it holds; we compare each with the local disk now and name
// the stale ones. One lstat per entry is a few microseconds, but tens of thousands of them
// would sit on the critical path of every run, so the paths of the last session's probes
// (remembered in ~/.cache/outrun) are checked ahead, while the agent starts, and the Hello
// only looks them up. "Now" is thus the start of the session: a file changed after that is
// a change during the run, which the next run sees.
import { lstatSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { fingerprint, fingerprintOfStats } from '../fs/shared/fingerprint';
import { checkWirePath } from '../fs/local/wire-path';
import { decodeProbes, type Probe } from '../fs/shared/probe-list';

/** More probes than this are not checked: all of them are reported stale. */
export const MAX_PROBES = 250_000;
/** Paths checked per turn of the event loop when checking ahead. */
const AHEAD_BATCH = 512;

/** The fingerprint of what is at `p` now; undefined when it cannot be told (say EACCES). */
function current(p: Buffer): Buffer | undefined {
  try {
    return fingerprintOfStats(lstatSync(p, { bigint: true }));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' || code === 'ENOTDIR' ? fingerprint(undefined) : undefined;
  }
}

/** The agent's probes (packed, see probe-list.ts); a malformed list is none (nothing is served from it). */
export function parseProbes(packed: Uint8Array | null | undefined): Probe[] | Error {
  return decodeProbes(packed, MAX_PROBES);
}

/** Indexes of the probes whose path is not what it was when cached. */
export function staleProbes(probes: readonly Probe[], ahead?: ReadonlyMap<string, Buffer | undefined>): number[] {
  const stale: number[] = [];
  probes.forEach((probe, i) => {
    const p = checkWirePath(probe.path);
    if (!p) return stale.push(i);
    const key = p.toString('latin1');
    const now = ahead?.has(key) ? ahead.get(key) : current(p);
    if (!now || !now.equals(probe.fingerprint)) stale.push(i);
  });
  return stale;
}

/** Checks the paths the remote's cache held last time, ahead of its Hello. */
export class RevalidationAhead {
  readonly results = new Map<string, Buffer | undefined>();
  private readonly file: string;

  /** `store` names the remote store (host, port, cache key). */
  constructor(store: string, dir = path.join(process.env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'outrun', 'probes')) {
    this.file = path.join(dir, createHash('sha256').update(store).digest('hex').slice(0, 32));
  }

  /** Starts checking in the background, a batch per turn of the event loop. */
  start(): void {
    let paths: Buffer[];
    try {
      const all = readFileSync(this.file);
      paths = [];
      for (let at = 0; at < all.length; ) {
        const end = all.indexOf(0, at);
        if (end < 0) break;
        paths.push(all.subarray(at, end));
        at = end + 1;
      }
    } catch {
      return; // no list yet (first session with this remote)
    }
    let i = 0;
    const step = () => {
      for (const stop = Math.min(i + AHEAD_BATCH, paths.length); i < stop; i++) {
        const p = checkWirePath(paths[i]);
        if (p) this.results.set(p.toString('latin1'), current(p));
      }
      if (i < paths.length) setImmediate(step);
    };
    setImmediate(step);
  }

  /** Remembers this session's probe paths for the next one (best effort). */
  remember(probes: readonly Probe[]): void {
    if (probes.length === 0 || probes.length > MAX_PROBES) return;
    try {
      mkdirSync(path.dirname(this.file), { recursive: true, mode: 0o700 });
      const parts: Buffer[] = [];
      for (const pr of probes) parts.push(pr.path, Buffer.alloc(1));
      const tmp = `${this.file}.${process.pid}`;
      writeFileSync(tmp, Buffer.concat(parts), { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch {
      // the next session checks everything at its Hello instead
    }
  }
}
