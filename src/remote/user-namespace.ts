// Whether the agent runs in the initial user namespace (a root login) or in the user namespace
// of a rootless session (outrun-helper made it; see src/remote/helper/userns.c). Read from
// /proc/self/uid_map: the initial namespace maps every id to itself.
import { readFileSync } from 'node:fs';

export function inInitialUserNamespace(): boolean {
  try {
    const lines = readFileSync('/proc/self/uid_map', 'utf8').trim().split('\n');
    return lines.length === 1 && /^\s*0\s+0\s+4294967295\s*$/.test(lines[0]!);
  } catch {
    return true; // no /proc: nothing says otherwise
  }
}
