// A host pool as written: GNU parallel's sshlogin syntax (`-S 2/box1,4/user@box2`), `:` for this
// machine itself (no SSH: the command runs here), `..` for the file ~/.parallel/sshloginfile (one
// sshlogin per line, as parallel reads it), or `@NAME` for a pool named in outrun's config file
// (pool-config.ts). Parsed strictly: a mistake is one line and exit 2, never a guess.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OutrunError } from '../errors';
import { parseDestination } from '../cli-args';

export interface PoolMember {
  /** The destination as written ([user@]host[:port], or ssh://...), or ':' for this machine. */
  login: string;
  /** Slots: at most this many runs at once there. undefined: as many as it has CPUs (1 until a probe told). */
  slots?: number;
}

/** Where `..` reads sshlogins from (GNU parallel's file). */
export function sshloginFile(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.HOME || os.homedir(), '.parallel/sshloginfile');
}

const MAX_SLOTS = 1024;

/** One sshlogin: [N/]login. */
export function parseSshlogin(text: string, where: string): PoolMember {
  const t = text.trim();
  const m = /^(?:([0-9]+)\/)?(.*)$/s.exec(t)!;
  const login = m[2]!;
  if (login === '') throw new OutrunError('USAGE', `${where}: empty sshlogin '${text}'`);
  if (/\s/.test(login)) {
    throw new OutrunError('USAGE', `${where}: sshlogin '${text}' is an ssh command line; outrun takes [N/][user@]host[:port] (set ssh options in ssh_config or with -o)`);
  }
  let slots: number | undefined;
  if (m[1] !== undefined) {
    slots = Number(m[1]);
    if (!Number.isSafeInteger(slots) || slots < 1 || slots > MAX_SLOTS) {
      throw new OutrunError('USAGE', `${where}: sshlogin '${text}': the slot count must be 1 to ${MAX_SLOTS}`);
    }
  }
  if (login !== ':') {
    try {
      parseDestination(login);
    } catch (err) {
      throw new OutrunError('USAGE', `${where}: ${(err as Error).message}`, { cause: err });
    }
  }
  return { login, ...(slots !== undefined ? { slots } : {}) };
}

/** The sshlogins of one -S value (comma-separated; `..` expands to the file's). */
export function parseSshlogins(value: string, readFile: (file: string) => string = (f) => fs.readFileSync(f, 'utf8')): PoolMember[] {
  const out: PoolMember[] = [];
  for (const part of value.split(',')) {
    if (part.trim() === '..') {
      const file = sshloginFile();
      let text: string;
      try {
        text = readFile(file);
      } catch (err) {
        throw new OutrunError('USAGE', `-S ..: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err });
      }
      text.split('\n').forEach((line, i) => {
        const l = line.replace(/#.*$/, '').trim();
        if (l) out.push(parseSshlogin(l, `${file}:${i + 1}`));
      });
    } else {
      out.push(parseSshlogin(part, '-S'));
    }
  }
  return out;
}

/** Members listed twice (same login) are one member with the larger slot count, as parallel does. */
export function mergeMembers(members: PoolMember[]): PoolMember[] {
  const byLogin = new Map<string, PoolMember>();
  for (const m of members) {
    const had = byLogin.get(m.login);
    if (!had) byLogin.set(m.login, { ...m });
    else if (m.slots !== undefined && (had.slots === undefined || m.slots > had.slots)) had.slots = m.slots;
  }
  return [...byLogin.values()];
}
