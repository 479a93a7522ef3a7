// What the command runs with on the remote: the local identity, umask, limits, working
// directory, environment and argv, encoded for `outrun-helper exec` (NUL-separated byte
// strings, length-prefixed), so that nothing is re-parsed by a shell on the way.
import { readFileSync, statSync } from 'node:fs';

export interface ExecSpec {
  uid: number;
  gid: number;
  groups: number[];
  umask: number;
  cwd: string;
  /**
   * Where the command runs: in the local tree (chroot, the default), or on the remote's own
   * tree with these local paths (canonical) bound over it at the same paths (--no-chroot).
   */
  view?: { kind: 'host'; paths: string[] };
  rlimits: { resource: number; soft: number | 'inf'; hard: number | 'inf' }[];
  /** Strings, or exact bytes where the local ones are known (they need not be UTF-8). */
  argv: (string | Buffer)[];
  env: (string | Buffer)[];
}

// Linux RLIMIT_* numbers of the limits a build cares about, by their /proc/self/limits name.
const RLIMITS: Record<string, number> = {
  'Max cpu time': 0,
  'Max file size': 1,
  'Max data size': 2,
  'Max stack size': 3,
  'Max core file size': 4,
  'Max open files': 7,
  'Max address space': 9,
};

/** The limits of this process, from /proc/self/limits (Node has no getrlimit). */
export function localRlimits(text = readFileSync('/proc/self/limits', 'utf8')): ExecSpec['rlimits'] {
  const out: ExecSpec['rlimits'] = [];
  for (const line of text.split('\n')) {
    for (const [name, resource] of Object.entries(RLIMITS)) {
      if (!line.startsWith(name + ' ')) continue;
      const [soft, hard] = line.slice(name.length).trim().split(/\s+/);
      const parse = (v: string | undefined) => (v === 'unlimited' ? 'inf' : Number(v));
      const s = parse(soft);
      const h = parse(hard);
      if ((s === 'inf' || Number.isSafeInteger(s)) && (h === 'inf' || Number.isSafeInteger(h))) {
        out.push({ resource, soft: s, hard: h });
      }
    }
  }
  return out;
}

/** The umask of this process, read without changing it. */
export function localUmask(status = readFileSync('/proc/self/status', 'utf8')): number {
  const m = /^Umask:\s+([0-7]+)$/m.exec(status);
  return m ? parseInt(m[1]!, 8) : 0o022;
}

/** The working directory as the user knows it: $PWD when it names the same directory. */
export function localCwd(env: NodeJS.ProcessEnv = process.env): string {
  const cwd = process.cwd();
  const pwd = env.PWD;
  if (pwd && pwd.startsWith('/')) {
    try {
      const a = statSync(pwd);
      const b = statSync(cwd);
      if (a.ino === b.ino && a.dev === b.dev) return pwd;
    } catch {
      /* fall back to the real path */
    }
  }
  return cwd;
}

/** outrun's own settings (OUTRUN_PASSWORD and friends) never reach the command. */
export function commandEnvironment(env: NodeJS.ProcessEnv = process.env): string[] {
  return Object.entries(env)
    .filter(([k, v]) => v !== undefined && !k.startsWith('OUTRUN_'))
    .map(([k, v]) => `${k}=${v}`);
}

/**
 * NUL-terminated byte strings of a /proc file. Node's own process.argv and process.env
 * decode these as UTF-8, turning bytes that are not into U+FFFD; the command must get them
 * exactly.
 */
function procStrings(file: string): Buffer[] {
  const raw = readFileSync(file);
  const out: Buffer[] = [];
  let start = 0;
  for (let i = raw.indexOf(0); i >= 0; start = i + 1, i = raw.indexOf(0, start)) out.push(raw.subarray(start, i));
  return out;
}

const OUTRUN_PREFIX = Buffer.from('OUTRUN_');

/** The environment this process started with, byte for byte, without outrun's own settings. */
export function rawEnvironment(entries: Buffer[] = procStrings('/proc/self/environ')): Buffer[] {
  return entries.filter((e) => e.includes(0x3d) && !e.subarray(0, OUTRUN_PREFIX.length).equals(OUTRUN_PREFIX));
}

/**
 * The command's words as the bytes they were given as: the last argv.length words of this
 * process's command line, when they are what Node decoded (else the decoded strings).
 */
export function rawCommand(argv: string[], cmdline: Buffer[] = procStrings('/proc/self/cmdline')): (string | Buffer)[] {
  const tail = cmdline.slice(cmdline.length - argv.length);
  const same = argv.length > 0 && tail.length === argv.length && tail.every((b, i) => b.toString('utf8') === argv[i]);
  return same ? tail : argv;
}

export function localExecSpec(argv: string[]): ExecSpec {
  return {
    uid: process.getuid!(),
    gid: process.getgid!(),
    groups: process.getgroups!(),
    umask: localUmask(),
    cwd: localCwd(),
    rlimits: localRlimits(),
    argv: rawCommand(argv),
    env: rawEnvironment(),
  };
}

export const SPEC_MAGIC = 'OUTRUN-SPEC-2';
const NUL = Buffer.from([0]);

/** Length-prefixed spec, as `outrun-helper exec` reads it after its READY line. */
export function encodeExecSpec(spec: ExecSpec): Buffer {
  if (spec.argv.length === 0) throw new Error('empty command');
  const fields: (string | Buffer)[] = [
    SPEC_MAGIC,
    String(spec.uid),
    String(spec.gid),
    spec.umask.toString(8),
    spec.cwd,
    spec.view ? 'host' : 'chroot',
    String(spec.view?.paths.length ?? 0),
    ...(spec.view?.paths ?? []),
    String(spec.groups.length),
    ...spec.groups.map(String),
    String(spec.rlimits.length),
    ...spec.rlimits.map((r) => `${r.resource}:${r.soft}:${r.hard}`),
    String(spec.argv.length),
    ...spec.argv,
    String(spec.env.length),
    ...spec.env,
  ];
  const parts: Buffer[] = [];
  for (const f of fields) {
    const b = Buffer.isBuffer(f) ? f : Buffer.from(f, 'utf8');
    if (b.includes(0)) throw new Error('argument or environment contains a NUL byte');
    parts.push(b, NUL);
  }
  const body = Buffer.concat(parts);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([len, body]);
}
