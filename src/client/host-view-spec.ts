// --no-chroot: what the exec spec carries when the remote's own command runs on local files.
// The local working directory and each --mount path, canonical (their symlinks resolved here:
// under the FUSE mount an absolute link would point into the remote's tree), go to the same
// paths on the remote; of the local environment only what SendEnv names goes (the rest is the
// remote login's, added by the helper).
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { OutrunError } from './errors';
import type { ExecSpec } from './exec-spec';
import { matchPattern } from './ssh-config';

export function hostViewSpec(spec: ExecSpec, mounts: string[], sendEnv: string[], cwd = process.cwd()): ExecSpec {
  const canonical = (p: string, what: string): string => {
    let real: string;
    try {
      real = realpathSync(resolve(cwd, p));
    } catch (err) {
      throw new OutrunError('USAGE', `${what} ${p}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such local file or directory' : (err as Error).message}`, { cause: err });
    }
    if (real === '/') throw new OutrunError('USAGE', `${what} ${p}: the whole local tree is what a run without --no-chroot sees`);
    return real;
  };
  const here = canonical(cwd, 'the working directory');
  const paths = [here];
  for (const m of mounts) {
    const real = canonical(m, '--mount');
    if (!paths.includes(real)) paths.push(real);
  }
  const sent = (entry: string | Buffer): boolean => {
    const text = Buffer.isBuffer(entry) ? entry.toString('latin1') : entry;
    const name = text.slice(0, text.indexOf('='));
    return name !== 'PWD' && sendEnv.some((p) => matchPattern(p, name, false));
  };
  return { ...spec, cwd: here, view: { kind: 'host', paths }, env: spec.env.filter(sent) };
}
