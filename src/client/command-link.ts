// What a run needs from wherever its command runs: the command's stdin, stdout and stderr,
// its end, its terminal size and its signals. A direct run has them on its own SSH channel;
// a run attached to a master has them through the master's socket (master-client.ts).
import type { Readable, Writable } from 'node:stream';
import type { Client } from 'ssh2';
import type { CommandChannel } from './command-channel';
import { RemoteSignals, type RemoteSignalName } from './remote-signal';
import { RemoteSize } from './remote-size';

export interface CommandLink {
  /** The command's stdin. */
  input: Writable;
  /** The command's stdout (or its pty), paused until the run pipes it. */
  output: Readable;
  errors: Readable;
  /** Whether the helper is ready to take the spec. */
  ready: boolean;
  /** The command's exit status (undefined: the link ended without one). */
  ended: Promise<number | undefined>;
  /** Hands the helper the encoded exec spec: the command starts. */
  start(spec: Buffer): void;
  resize(rows: number, cols: number): void;
  signal(name: RemoteSignalName): void;
}

/** The link of a direct run: its own command channel, signals over short extra channels. */
export function directLink(conn: Client | (() => Promise<Client>), remoteDir: string, sessionDir: string, cc: CommandChannel, log: (msg: string) => void, remoteExec?: (command: string) => string): CommandLink {
  const signals = new RemoteSignals(conn, `${remoteDir}/outrun-helper`, sessionDir, log, cc.ended, undefined, remoteExec);
  // sshd's pty takes SSH window-change requests; the helper's own pty, sizes sent as signals.
  const size = cc.ownPty ? new RemoteSize(signals) : undefined;
  return {
    input: cc.ch,
    output: cc.ch,
    errors: cc.ch.stderr,
    ready: cc.ready,
    ended: cc.ended,
    start: (spec) => void cc.ch.write(spec),
    resize: (rows, cols) => (size ? size.set(rows, cols) : void cc.ch.setWindow(rows, cols, 0, 0)),
    signal: (name) => signals.send(name),
  };
}
