// How the agent notices that the link to the local side is gone when nothing tells it: a
// dead network sends no FIN, and the box's sshd may keep the session for many minutes.
// HTTP/2 pings on the RPC connection, unanswered for long enough, close it: every pending
// filesystem call then fails (the command sees EIO, never an endless wait) and the control
// stream's failure ends the session, which cleans the box.

/** Milliseconds between pings (like the client's ServerAliveInterval default of 5 s). */
export const LINK_PING_INTERVAL_MS = 5_000;
/** Milliseconds a ping may wait for its answer before the link is declared dead. */
export const LINK_PING_TIMEOUT_MS = 10_000;
/** After the link is declared dead: time for the EIO replies to reach the commands before the session ends. */
export const LINK_LOST_GRACE_MS = 500;

/** gRPC client options for the agent's connection to the local side. */
export const LINK_WATCH_OPTIONS = {
  'grpc.keepalive_time_ms': LINK_PING_INTERVAL_MS,
  'grpc.keepalive_timeout_ms': LINK_PING_TIMEOUT_MS,
  'grpc.keepalive_permit_without_calls': 1,
} as const;
