// POSIX shell quoting for command lines sent to a remote sshd, which runs them through the
// user's login shell (`$SHELL -c '<line>'`).

import { OutrunError } from './errors';

/** Characters that are never special to a POSIX shell in any word position. `=` is left out on
 * purpose: `A=b cmd` in first position is an assignment, not a command. `~` and `#` are special at
 * the start of a word, so they are quoted as well. */
const SAFE = /^[A-Za-z0-9_\/.,:@%+-]+$/;

/** Quote one argument so that a POSIX shell reads it back as exactly that one word. */
export function shellQuoteArg(arg: string): string {
  if (arg.includes('\0')) {
    throw new OutrunError('INTERNAL', 'cannot pass an argument containing a NUL byte through a shell');
  }
  if (SAFE.test(arg)) return arg;
  // Inside single quotes nothing is special except the closing quote itself: end the quoted
  // part, add an escaped quote, and start a new quoted part.
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Join arguments into one command line that a POSIX shell splits back into exactly `args`. */
export function shellQuote(args: readonly string[]): string {
  return args.map(shellQuoteArg).join(' ');
}
