// The command's SSH channel: `outrun-helper exec SESSION_DIR` joins the agent's namespaces
// and chroot, says READY, reads the exec spec, and from then on carries only the command's
// stdio (or its pty). Opened by a direct run and, for each attached run, by the master.
import type { Client, ClientChannel, PseudoTtyOptions } from 'ssh2';
import { OutrunError } from './errors';
import { statusFromExit } from './exit-status';
import { shellQuote } from './shell-quote';

const READY = Buffer.from('OUTRUN1 READY\n');

export function execChannel(conn: Client, command: string, pty: PseudoTtyOptions | false): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    try {
      conn.exec(command, pty ? { pty } : {}, (err, ch) =>
        err ? reject(new OutrunError('SSH_LOST', `cannot open an SSH channel: ${err.message}`, { cause: err })) : resolve(ch),
      );
    } catch (err) {
      // ssh2 throws when the connection is already gone.
      reject(new OutrunError('SSH_LOST', `cannot open an SSH channel: ${(err as Error).message}`, { cause: err }));
    }
  });
}

/** The command's channel, its helper started and waiting for the exec spec. */
export interface CommandChannel {
  ch: ClientChannel;
  /** The helper's exit status once the channel closed (undefined: none reported). */
  ended: Promise<number | undefined>;
  /** Whether the helper said READY; if not, what it printed went to `unexpected`. */
  ready: boolean;
  /** The helper opened the command's pty itself (behind a relay): sizes go as signals. */
  ownPty: boolean;
}

/**
 * Opens the command's channel and waits for its helper's READY. It needs nothing from the
 * agent (the helper joins the session only once it has the spec), so a direct run opens it
 * while the agent starts and mounts: the channel's round trips are off the critical path.
 * What the helper prints instead of READY goes to `unexpected` (it is the helper's complaint).
 */
export async function openCommandChannel(
  conn: Client,
  remoteDir: string,
  sessionDir: string,
  pty: PseudoTtyOptions | false,
  unexpected: (bytes: Buffer) => void,
  /** Names the run among the session's (see outrun-helper.c); undefined: the only one. */
  run?: string,
  /** Runs the helper behind a relay instead (resumable-channel.ts); with a pty, one the helper opens. */
  relay?: (program: string[]) => Promise<ClientChannel>,
  /** Where node-bound programs run (a Slurm step, slurm.ts); undefined: on the login itself. */
  remoteExec?: (command: string) => string,
): Promise<CommandChannel> {
  const helper = `${remoteDir}/outrun-helper`;
  const rest = [sessionDir, ...(run ? [run] : [])];
  // Behind a relay the helper opens the pty itself (sshd's would be hung up with the link).
  const ownPty = relay && pty ? ['exec-pty', String(clampSize(pty.rows, 24)), String(clampSize(pty.cols, 80))] : undefined;
  const program = [helper, ...(ownPty ?? ['exec']), ...rest];
  const line = shellQuote(program);
  const ch = relay ? await relay(program) : await execChannel(conn, remoteExec ? remoteExec(line) : line, pty);
  const ended = new Promise<number | undefined>((resolve) => {
    let status: number | undefined;
    ch.on('exit', (code: number | null, signal?: string) => (status = statusFromExit(code, signal)));
    ch.on('close', () => resolve(status));
  });
  // Handshake: the helper says READY (after putting a pty in raw mode, so the spec is not
  // echoed), then reads the spec; from then on the channel carries only the command's stdio.
  const ready = await new Promise<boolean>((resolve) => {
    let seen = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      seen = Buffer.concat([seen, d]);
      if (seen.length >= READY.length) {
        ch.off('data', onData);
        ch.off('close', onClose);
        ch.pause();
        const ok = seen.subarray(0, READY.length).equals(READY);
        if (!ok) unexpected(seen);
        else if (seen.length > READY.length) ch.unshift(seen.subarray(READY.length));
        resolve(ok);
      }
    };
    const onClose = () => {
      ch.off('data', onData);
      if (seen.length) unexpected(seen);
      resolve(false);
    };
    ch.on('data', onData);
    ch.on('close', onClose);
  });
  return { ch, ended, ready, ownPty: !!ownPty };
}

/** A terminal size as the helper takes it (1..65535); what a terminal says is not trusted blindly. */
function clampSize(n: number | undefined, fallback: number): number {
  return Number.isSafeInteger(n) && (n as number) >= 1 && (n as number) <= 65535 ? (n as number) : fallback;
}
