// The window size of a pty the remote helper opened itself (`outrun-helper exec-pty`): sent as
// `signal ... SIZE=ROWSxCOLS`, one at a time and only the latest, so that the last size the
// terminal had is the one the command sees, also when it changed during an outage.
import type { RemoteSignals } from './remote-signal';

export class RemoteSize {
  private pending: { rows: number; cols: number } | undefined;
  private sending = false;

  constructor(private readonly signals: RemoteSignals) {}

  set(rows: number, cols: number): void {
    if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(cols) || rows < 1 || cols < 1 || rows > 65535 || cols > 65535) return;
    this.pending = { rows, cols };
    if (!this.sending) void this.flush();
  }

  private async flush(): Promise<void> {
    this.sending = true;
    try {
      while (this.pending) {
        const { rows, cols } = this.pending;
        this.pending = undefined;
        await this.signals.deliver(`SIZE=${rows}x${cols}`);
      }
    } finally {
      this.sending = false;
    }
  }
}
