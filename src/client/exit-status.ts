// How the remote command's end becomes outrun's exit status: its own code, or 128+N when
// it died of signal N (as a shell reports it).
import { constants } from 'node:os';

/** ssh2 reports a death by signal as a name without the SIG prefix ("KILL"). */
export function statusFromExit(code: number | null, signalName?: string | null): number | undefined {
  if (typeof code === 'number') return code;
  if (signalName) {
    const n = (constants.signals as Record<string, number>)[`SIG${signalName.replace(/^SIG/, '')}`];
    if (n) return 128 + n;
  }
  return undefined;
}
