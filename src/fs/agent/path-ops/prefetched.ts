// What the local side sends along with a reply (see local/prefetch.ts): attributes,
// absences, link targets and small files, taken into every cache while still current.
import { toByteString } from '../byte-string';
import type { CachedAttr } from '../attr-cache';
import { timespecToMs } from '../../shared/attr';
import { bytes, type Fresh, type PathOpsState } from './state';

export interface PrefetchedItem {
  path?: Uint8Array | null;
  attr?: CachedAttr | null;
  missing?: boolean | null;
  linkTarget?: Uint8Array | null;
  data?: Uint8Array | null;
}

export function takePrefetched(s: PathOpsState, items: PrefetchedItem[], fresh: Fresh): void {
  for (const it of items) {
    const p = toByteString(it.path);
    if (!p.startsWith('/') || !fresh(p)) continue;
    s.counters.inc('prefetch.received');
    const keep = s.persists(p);
    if (it.missing) {
      s.cache.setMissing(p);
      if (keep) s.persist!.recordAttr(p, undefined);
      continue;
    }
    if (!it.attr) continue;
    s.cache.set(p, it.attr);
    if (keep) s.persist!.recordAttr(p, it.attr);
    if (it.linkTarget?.length) {
      const target = toByteString(it.linkTarget);
      s.links.set(p, { target, ino: it.attr.ino ?? 0, ctime: timespecToMs(it.attr.ctime) });
      if (keep) s.persist!.recordLink(p, it.attr, target);
    }
    if (it.data && it.data.length === Number(it.attr.size ?? -1)) {
      const data = bytes(it.data);
      s.contents.remember(p, it.attr, data);
      if (keep) void s.persist!.recordContent(p, it.attr, data).catch(() => undefined);
    }
  }
}
