// A real terminal for end-to-end tests: a detached tmux session running a local shell
// script, read back with capture-pane and driven with send-keys.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { CLI, SSH_CONFIG } from './harness';
import { shellQuote } from '../../src/client/shell-quote';

/** A tmux server of our own (other test runs on this machine use the default one). */
const SOCKET = `outrun-e2e-${process.pid}`;
export const tmux = (...args: string[]) => spawnSync('tmux', ['-L', SOCKET, ...args], { encoding: 'utf8' });
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls a tmux session's screen until it matches `pattern` (bounded); returns the screen. */
export async function waitForScreen(session: string, pattern: RegExp, ms = 15_000): Promise<string> {
  const deadline = Date.now() + ms;
  let screen = '';
  while (Date.now() < deadline) {
    screen = tmux('capture-pane', '-p', '-t', session).stdout;
    if (pattern.test(screen)) return screen;
    await sleep(100);
  }
  throw new Error(`screen never showed ${pattern}:\n${screen}`);
}

/** The shell words that run the built outrun against the test box. */
export const OUTRUN = `${shellQuote([process.execPath, CLI, '-F', SSH_CONFIG])} box`;

let counter = 0;

/** Ends our tmux server and removes its socket file (tmux leaves it behind). */
export function closeTmux(): void {
  tmux('kill-server');
  rmSync(`${process.env.TMUX_TMPDIR || '/tmp'}/tmux-${process.getuid!()}/${SOCKET}`, { force: true });
}

export class TmuxPane {
  readonly name = `outrun-e2e-${process.pid}-${++counter}`;

  /** Starts `script` (sh) in a new detached session of the given size. */
  constructor(script: string, cols = 100, rows = 30) {
    const r = tmux('new-session', '-d', '-s', this.name, '-x', String(cols), '-y', String(rows), 'sh', '-c', script);
    if (r.status !== 0) throw new Error(`tmux new-session failed: ${r.stderr}`);
  }

  screen(): string {
    return tmux('capture-pane', '-p', '-t', this.name).stdout;
  }

  /** The screen once it matches `pattern` (bounded wait; the error shows the screen). */
  async waitFor(pattern: RegExp, ms = 20_000): Promise<string> {
    const deadline = Date.now() + ms;
    let screen = '';
    while (Date.now() < deadline) {
      screen = this.screen();
      if (pattern.test(screen)) return screen;
      await sleep(100);
    }
    throw new Error(`the terminal never showed ${pattern}:\n${screen}`);
  }

  /** send-keys: each argument is a tmux key name or literal text. */
  keys(...keys: string[]): void {
    tmux('send-keys', '-t', this.name, ...keys);
  }

  /** Types text literally (no key-name lookup). */
  type(text: string): void {
    tmux('send-keys', '-t', this.name, '-l', text);
  }

  resize(cols: number, rows: number): void {
    const r = tmux('resize-window', '-t', this.name, '-x', String(cols), '-y', String(rows));
    if (r.status !== 0) throw new Error(`tmux resize-window failed: ${r.stderr}`);
  }

  /** The pid of the process the pane runs (the sh of the script). */
  panePid(): number {
    return Number(tmux('display-message', '-p', '-t', this.name, '#{pane_pid}').stdout.trim());
  }

  kill(): void {
    tmux('kill-session', '-t', this.name);
  }
}

/**
 * A script for the pane: saves the terminal mode, runs `command` (shell words), records its
 * status and the mode afterwards, then waits (so the screen stays readable).
 */
export function recordedRun(dir: string, command: string): string {
  return [
    `stty -g > ${dir}/stty-before`,
    `${command}`,
    `echo "EXIT=$?"`,
    `stty -g > ${dir}/stty-after`,
    `echo DONE`,
    'sleep 600',
  ].join('\n');
}
