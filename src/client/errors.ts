// Errors are values: a stable code, a one-line message saying what failed, a hint saying
// what to do, the exit status outrun ends with, and the cause that led here.

/** Exit statuses of outrun itself. The command's own status passes through unchanged. */
export const ExitStatus = {
  /** outrun --check: something a run needs is missing on the remote. */
  CHECK_MISSING: 1,
  /** Command line could not be understood. */
  USAGE: 2,
  /** Found but not executable (as a shell reports it). */
  NOT_EXECUTABLE: 126,
  /** Command not found (as a shell reports it). */
  NOT_FOUND: 127,
  /** outrun's own failure: bootstrap, agent, mount, protocol. */
  OUTRUN: 254,
  /** SSH failure: cannot connect, authentication failed, host key refused, link lost. */
  SSH: 255,
} as const;

export type ErrorCode =
  | 'USAGE'
  | 'SSH_CONFIG'
  | 'SSH_CONNECT'
  | 'SSH_TIMEOUT'
  | 'SSH_AUTH'
  | 'SSH_LOST'
  | 'HOST_KEY_UNKNOWN'
  | 'HOST_KEY_CHANGED'
  | 'HOST_KEY_REVOKED'
  | 'PROXY_FAILED'
  | 'POOL_UNREACHABLE'
  | 'REMOTE_NO_FUSE'
  | 'REMOTE_NO_USERNS'
  | 'ARCH_MISMATCH'
  | 'UPLOAD_FAILED'
  | 'RUNTIME_MISSING'
  | 'PROTOCOL_MISMATCH'
  | 'AGENT_FAILED'
  | 'MOUNT_FAILED'
  | 'EXEC_FAILED'
  | 'CONTROL_PATH_UNSAFE'
  | 'MASTER_UNAVAILABLE'
  | 'MASTER_BUSY'
  | 'SLURM_REFUSED'
  | 'SLURM_PENDING'
  | 'SLURM_TIME_LIMIT'
  | 'SLURM_NODE_FAILED'
  | 'INTERNAL';

const SSH_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'SSH_CONFIG',
  'SSH_CONNECT',
  'SSH_TIMEOUT',
  'SSH_AUTH',
  'SSH_LOST',
  'HOST_KEY_UNKNOWN',
  'HOST_KEY_CHANGED',
  'HOST_KEY_REVOKED',
  'PROXY_FAILED',
  'POOL_UNREACHABLE',
]);

export class OutrunError extends Error {
  readonly code: ErrorCode;
  /** What the user can do about it; printed after the message on the same line. */
  readonly hint: string | undefined;
  readonly exitStatus: number;

  constructor(code: ErrorCode, message: string, opts: { hint?: string; cause?: unknown; exitStatus?: number } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'OutrunError';
    this.code = code;
    this.hint = opts.hint;
    this.exitStatus =
      opts.exitStatus ?? (code === 'USAGE' ? ExitStatus.USAGE : SSH_CODES.has(code) ? ExitStatus.SSH : ExitStatus.OUTRUN);
  }

  /** The single line printed on stderr. */
  oneLine(): string {
    const text = this.hint ? `${this.message}; ${this.hint}` : this.message;
    return `outrun: ${text.replace(/\s*\n\s*/g, ' ')}`;
  }
}

/** Wrap anything thrown into an OutrunError, keeping it as the cause. */
export function asOutrunError(err: unknown, code: ErrorCode = 'INTERNAL'): OutrunError {
  if (err instanceof OutrunError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new OutrunError(code, message, { cause: err });
}
