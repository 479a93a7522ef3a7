// The local half of the persistent cache's revalidation: the agent sends, in Session.Hello,
// a fingerprint of every entry it holds; we compare each with the local disk now and name
// the stale ones. One synchronous lstat per entry: tens of thousands take tens of
// milliseconds, far less than the round trips they save.
import { lstatSync } from 'node:fs';
import { attrFromStats } from '../fs/attr';
import { fingerprint } from '../fs/fingerprint';
import { checkWirePath } from '../fs/wire-path';
import type { pb } from '../wire/schema';

/** More probes than this are not checked: all of them are reported stale. */
export const MAX_PROBES = 250_000;

export function staleProbes(probes: readonly pb.CacheProbe.$Properties[]): number[] {
  if (probes.length > MAX_PROBES) return probes.map((_, i) => i);
  const stale: number[] = [];
  probes.forEach((probe, i) => {
    const p = probe.path ? checkWirePath(probe.path) : undefined;
    const want = probe.fingerprint ? Buffer.from(probe.fingerprint) : undefined;
    if (!p || !want) return stale.push(i);
    let now: Buffer;
    try {
      now = fingerprint(attrFromStats(lstatSync(p, { bigint: true })));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') return stale.push(i);
      now = fingerprint(undefined);
    }
    if (!now.equals(want)) stale.push(i);
  });
  return stale;
}
