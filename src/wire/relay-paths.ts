// What the client and the relay (src/remote/relay.ts) agree on besides the frames: where a
// relay's socket may be (an attach goes nowhere else) and how often each side speaks.
import { posix } from 'node:path';

/** mkdtemp prefix of a relay's 0700 directory, under the remote's tmpdir. */
export const RELAY_DIR_PREFIX = 'outrun-relay-';
/** Each side sends an ACK at least this often: it doubles as a heartbeat. */
export const RELAY_HEARTBEAT_MS = 1000;
/** A relay that hears nothing for this long counts its client as away (the limit starts). */
export const RELAY_SILENCE_MS = 20_000;
/** Output a relay holds per stream unacknowledged (or for a client that is away); past it the program's writes wait. */
export const OUTPUT_BOUND = 8 * 1024 * 1024;

/** Whether `p` is a relay socket: TMP/outrun-relay-XXXXXX/s, nothing else. */
export function validRelaySocket(p: string, tmp: string): boolean {
  const dir = posix.dirname(p);
  return (
    posix.basename(p) === 's' &&
    posix.dirname(dir) === posix.resolve(tmp) &&
    /^outrun-relay-[A-Za-z0-9]{6}$/.test(posix.basename(dir)) &&
    posix.normalize(p) === p
  );
}
