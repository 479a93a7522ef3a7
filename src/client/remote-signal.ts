// Signals for the remote command. Not SSH "signal" requests: OpenSSH refuses those for root
// sessions (it skips post-auth privilege separation for root), and the remote user is root. A
// short extra channel runs `outrun-helper signal`, which hands the signal to the session's
// exec helper, which forwards it to the command.
import type { Client, ClientChannel } from 'ssh2';
import { shellQuote } from './shell-quote';

/**
 * What `outrun-helper signal` takes: a signal name without SIG, HANGUP (the terminal went away)
 * or TIMEOUT (--timeout ran out: SIGTERM and SIGCONT to the command's whole process group).
 */
export type RemoteSignalName = 'INT' | 'TERM' | 'HUP' | 'QUIT' | 'USR1' | 'USR2' | 'PIPE' | 'KILL' | 'HANGUP' | 'TIMEOUT' | RemoteSizeName;

/** A new window size for a pty the helper opened itself (`outrun-helper exec-pty`). */
export type RemoteSizeName = `SIZE=${number}x${number}`;

/** How often a signal is retried while the helper has not recorded the command yet (5 s). */
const RETRIES = 25;
const RETRY_EVERY_MS = 200;

export class RemoteSignals {
  private commandEnded = false;

  constructor(
    /** The connection; after a dropped link, the next one (reconnecting-link.ts): a signal sent meanwhile waits for it. */
    private readonly conn: Client | (() => Promise<Client>),
    private readonly helperPath: string,
    private readonly sessionDir: string,
    private readonly log: (msg: string) => void,
    /** Settles when the command's channel closes: nothing is retried after that. */
    ended: Promise<unknown>,
    /** Which of the session's runs (a master's attached runs are named); undefined: the only one. */
    private readonly run?: string,
    /** Where node-bound programs run (a Slurm step, slurm.ts); undefined: on the login itself. */
    private readonly remoteExec?: (command: string) => string,
  ) {
    void ended.finally(() => (this.commandEnded = true));
  }

  /**
   * Sends `name` to the command. Just after the start the helper may not have recorded the
   * command yet (it refuses then): the signal is retried, for a few seconds at most, until it is
   * taken or the command has ended, so that a signal sent early is not lost.
   */
  send(name: RemoteSignalName): void {
    void this.deliver(name);
  }

  /** As send; settles once the helper took it or it was given up. */
  async deliver(name: RemoteSignalName): Promise<void> {
    for (let tries = 0; ; ) {
      // Counted only while there is a connection: a signal sent during an outage waits for it.
      const conn = typeof this.conn === 'function' ? await this.conn().catch(() => undefined) : this.conn;
      if (!conn || this.commandEnded) return;
      const taken = await this.once(conn, name);
      if (taken || this.commandEnded || ++tries >= RETRIES) return;
      await new Promise((r) => setTimeout(r, RETRY_EVERY_MS));
    }
  }

  /** One try: resolves true when the helper took the signal. */
  private once(conn: Client, name: RemoteSignalName): Promise<boolean> {
    const line = shellQuote([this.helperPath, 'signal', this.sessionDir, name, ...(this.run ? [this.run] : [])]);
    const command = this.remoteExec ? this.remoteExec(line) : line;
    return new Promise((resolve) => {
      const opened = (err: Error | undefined, ch: ClientChannel) => {
        if (err) {
          this.log(`signal ${name}: ${err.message}`);
          return resolve(false);
        }
        let code: number | null = null;
        ch.on('data', () => undefined);
        ch.stderr.on('data', (d: Buffer) => this.log(`signal ${name}: ${d.toString().trim()}`));
        ch.on('exit', (c: number | null) => (code = c));
        ch.on('close', () => resolve(code === 0));
      };
      try {
        conn.exec(command, opened);
      } catch (err) {
        // ssh2 throws when the connection is already gone.
        this.log(`signal ${name}: ${(err as Error).message}`);
        resolve(false);
      }
    });
  }
}
