// Asks the user for a secret on the controlling terminal (/dev/tty), not on stdin/stdout:
// those belong to the command. Echo is turned off while typing, as OpenSSH does for key
// passphrases. Synchronous on purpose: it runs during authentication, before the session
// has anything else to do, and a blocking read of one line is the simplest correct thing.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

/** True when a controlling terminal can be opened for prompts. */
export function haveTerminal(): boolean {
  try {
    fs.closeSync(fs.openSync('/dev/tty', 'r+'));
    return true;
  } catch {
    return false;
  }
}

/**
 * Shows `prompt` on the terminal and reads one line with echo off. Returns undefined when
 * there is no terminal or the user ends input (Ctrl-D).
 */
export function readSecretFromTerminal(prompt: string): string | undefined {
  let fd: number;
  try {
    fd = fs.openSync('/dev/tty', 'r+');
  } catch {
    return undefined;
  }
  const stty = (arg: string) => spawnSync('stty', [arg], { stdio: [fd, 'ignore', 'ignore'] });
  try {
    fs.writeSync(fd, prompt);
    stty('-echo');
    const bytes: number[] = [];
    const one = Buffer.alloc(1);
    for (;;) {
      let n: number;
      try {
        n = fs.readSync(fd, one, 0, 1, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
        throw err;
      }
      if (n === 0) return bytes.length ? Buffer.from(bytes).toString('utf8') : undefined;
      if (one[0] === 0x0a || one[0] === 0x0d) break;
      bytes.push(one[0]!);
    }
    return Buffer.from(bytes).toString('utf8');
  } finally {
    stty('echo');
    try {
      fs.writeSync(fd, '\n');
    } catch {
      /* the terminal went away */
    }
    fs.closeSync(fd);
  }
}
