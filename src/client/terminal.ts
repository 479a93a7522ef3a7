// The local terminal during a run with a remote pty: raw while the command runs (so every
// key, Ctrl-C included, reaches the remote pty and its line discipline), size changes
// forwarded, and the previous mode restored on every way out.
import { isatty } from 'node:tty';
import type { PseudoTtyOptions } from 'ssh2';

export class Terminal {
  private raw = false;
  private onResize: (() => void) | undefined;
  private readonly restoreOnExit = () => this.restore();

  ptyOptions(): PseudoTtyOptions {
    const out = process.stdout;
    return {
      rows: out.isTTY ? out.rows : 24,
      cols: out.isTTY ? out.columns : 80,
      height: 0,
      width: 0,
      term: process.env.TERM || 'vt100',
    };
  }

  enterRaw(resized: (rows: number, cols: number) => void): void {
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      this.raw = true;
      process.once('exit', this.restoreOnExit);
    }
    if (process.stdout.isTTY) {
      this.onResize = () => resized(process.stdout.rows, process.stdout.columns);
      process.stdout.on('resize', this.onResize);
    }
  }

  restore(): void {
    if (this.onResize) process.stdout.off('resize', this.onResize);
    this.onResize = undefined;
    // A terminal that went away has no mode to restore (and setRawMode would fail with EIO).
    if (this.raw && process.stdin.isTTY && isatty(0)) process.stdin.setRawMode(false);
    this.raw = false;
    process.off('exit', this.restoreOnExit);
  }
}
