// Which store on the remote holds this machine's and this user's persistent cache. Two local
// machines (or users) never share entries: their /usr may differ and what one user may read
// another may not. Revalidation would catch a mix-up anyway; the key keeps it from happening.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export const DEFAULT_CACHE_BYTES = 2 * 1024 ** 3;

function machineId(): string {
  for (const f of ['/etc/machine-id', '/var/lib/dbus/machine-id']) {
    try {
      return readFileSync(f, 'utf8').trim();
    } catch {
      // next
    }
  }
  return '';
}

export function cacheKey(trees: readonly string[]): string {
  const uid = process.getuid?.() ?? -1;
  return createHash('sha256')
    .update([machineId(), hostname(), String(uid), ...trees].join('\0'))
    .digest('hex')
    .slice(0, 32);
}
