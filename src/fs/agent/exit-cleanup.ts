// Files that must not outlive the process that is writing them (a lock, a temporary file
// about to be renamed): removed synchronously on exit if still there, whatever ends the
// process short of SIGKILL.
import { rmSync } from 'node:fs';

const pending = new Set<string>();
process.on('exit', () => {
  for (const p of pending) rmSync(p, { force: true });
});

export function removeOnExit(path: string): void {
  pending.add(path);
}

/** The file was renamed or removed by its writer: nothing to do for it on exit any more. */
export function settled(path: string): void {
  pending.delete(path);
}
