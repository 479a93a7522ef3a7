// Where a master's socket lives: in a directory only this user can enter (created 0700,
// refused when it is a symlink, someone else's, or open to others), one socket per
// destination, named by a hash of what the connection is to. Next to it, the master's key
// file (0600): the first frame of every connection must carry it, so only a process that can
// read this user's files (this user, or root) gets served. Node cannot read SO_PEERCRED;
// the key stands in for the peer uid check.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OutrunError } from './errors';

export interface ControlTarget {
  user: string;
  hostName: string;
  port: number;
  /** ProxyJump / ProxyCommand, which make it another connection. */
  via?: string;
}

export function defaultControlDir(env: NodeJS.ProcessEnv = process.env, uid = process.getuid!()): string {
  const runtime = env.XDG_RUNTIME_DIR;
  if (runtime && path.isAbsolute(runtime)) return path.join(runtime, 'outrun');
  return `/tmp/outrun-${uid}`;
}

/** The socket for a destination: -S PATH, or one in the default directory. */
export function controlSocketPath(target: ControlTarget, explicit?: string): string {
  if (explicit) return path.resolve(explicit);
  const id = createHash('sha256').update(`${target.user}@${target.hostName}:${target.port}\0${target.via ?? ''}`).digest('hex').slice(0, 20);
  return path.join(defaultControlDir(), `m-${id}.sock`);
}

export const keyPathOf = (socketPath: string) => `${socketPath}.key`;

/** Whether `dir` is a directory of ours that nobody else can enter or change; creates it 0700 if missing. */
export function privateDir(dir: string, create: boolean): OutrunError | undefined {
  const unsafe = (why: string) =>
    new OutrunError('CONTROL_PATH_UNSAFE', `the master's directory ${dir} ${why}`, { hint: 'remove it, or give another socket with -S' });
  let st: fs.Stats;
  try {
    st = fs.lstatSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !create) return unsafe(`cannot be used: ${(err as Error).message}`);
    try {
      fs.mkdirSync(dir, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') return unsafe(`cannot be made: ${(e as Error).message}`);
    }
    st = fs.lstatSync(dir);
  }
  if (st.isSymbolicLink()) return unsafe('is a symbolic link');
  if (!st.isDirectory()) return unsafe('is not a directory');
  if (st.uid !== process.getuid!()) return unsafe(`belongs to uid ${st.uid}`);
  if ((st.mode & 0o077) !== 0) return unsafe(`is open to others (mode ${(st.mode & 0o777).toString(8)})`);
  return undefined;
}
