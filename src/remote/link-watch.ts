// How the agent notices that the link to the local side is gone when nothing tells it: a
// dead network sends no FIN, and the box's sshd may keep the session for many minutes.
//
// The link counts as alive while bytes arrive from the local side, whatever they are. A
// ping's answer is not enough to go by: on a busy link it waits behind everything queued
// before it (up to an HTTP/2 window, 16 MiB: seconds on a slow link), and a busy link must
// never be taken for a dead one. So the agent's gRPC client pings every few seconds only to
// make the local side send something when nothing else flows (grpc-js's own ping timeout is
// set far beyond ours, so it never decides), and the link is declared lost when no byte at
// all has arrived for LINK_SILENCE_MS, several ping intervals.
import type { BridgeCounters } from './stdio-bridge';

/** Milliseconds between pings (like the client's ServerAliveInterval default of 5 s). */
export const LINK_PING_INTERVAL_MS = 5_000;
/** Milliseconds without a single byte from the local side before the link is declared lost. */
export const LINK_SILENCE_MS = 20_000;
/**
 * After the link is declared dead: time for the EIO replies to reach the commands (and for
 * them to report it) before the session ends and the helper kills what is left; generous,
 * as a busy box may be slow to schedule them.
 */
export const LINK_LOST_GRACE_MS = 2000;

/** gRPC client options for the agent's connection to the local side (see above). */
export const LINK_WATCH_OPTIONS = {
  'grpc.keepalive_time_ms': LINK_PING_INTERVAL_MS,
  'grpc.keepalive_timeout_ms': 3_600_000,
  'grpc.keepalive_permit_without_calls': 1,
} as const;

/** Figures for the log line that says why the link was given up. */
export interface LinkFigures {
  /** Requests sent and not yet answered. */
  pendingCalls(): number;
}

const mib = (n: number) => (n < 1048576 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1048576).toFixed(1)} MiB`);

/**
 * Calls `onLost` once, with the reason and the figures it went by, when no byte has come
 * from the local side for `silenceMs`.
 */
export function watchLink(
  bridge: BridgeCounters,
  figures: LinkFigures,
  onLost: (reason: string) => void,
  silenceMs = LINK_SILENCE_MS,
): { stop(): void } {
  const timer = setInterval(() => {
    const silent = performance.now() - bridge.lastInAt;
    if (silent < silenceMs) return;
    clearInterval(timer);
    onLost(
      `no byte from the local side for ${(silent / 1000).toFixed(1)} s (limit ${silenceMs / 1000} s, pings every ` +
        `${LINK_PING_INTERVAL_MS / 1000} s): ${mib(bridge.bytesIn)} received and ${mib(bridge.bytesOut)} sent in all, ` +
        `${mib(bridge.queuedOut)} waiting to go out, ${figures.pendingCalls()} requests unanswered`,
    );
  }, Math.min(1000, silenceMs / 4));
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
