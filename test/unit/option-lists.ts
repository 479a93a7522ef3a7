// The option names each document lists, for tests that keep --help, outrun(1) and the bash
// completion in step.
import * as path from 'node:path';

/** The checkout (these files run from dist/test/unit/). */
export const CHECKOUT = path.resolve(__dirname, '../../..');

/** Options in `outrun --help`: the first word of each indented line of the options section. */
export function optionsInHelp(usage: string): string[] {
  const section = usage.split(/^options:$/m)[1]?.split(/^\S/m)[0] ?? '';
  const names = [...section.matchAll(/^ {2}(--?[A-Za-z][\w-]*|--)(?=\s|$)/gm)].map((m) => m[1]);
  return [...new Set(names)].sort();
}

/** Options in the man page: the first word of the tag line after each .TP in OPTIONS. */
export function optionsInManPage(roff: string): string[] {
  const section = roff.split(/^\.SH OPTIONS$/m)[1]?.split(/^\.SH /m)[0] ?? '';
  const names = [...section.matchAll(/^\.TP\n\.BI? (\S+)/gm)].map((m) => m[1].replace(/\\-/g, '-').replace(/"$/, ''));
  return [...new Set(names)].sort();
}
