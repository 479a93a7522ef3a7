// Command line of outrun: `outrun [options] [user@]host command [args...]`.
//
// ssh-like, with one deliberate difference: options are only read BEFORE the destination.
// Everything after the destination is the command and its arguments, passed exactly as given
// (ssh would go on parsing options after the host; outrun never re-parses the command).

import { OutrunError } from './errors';
import { parseCachedTrees } from '../fs/shared/cache-scope';
import type { ResolveOptions } from './ssh-config';
import { parseDuration } from './run-timeout';
import { looksLikePool } from './pool/pool-syntax';

export { looksLikePool };

export const USAGE = `usage: outrun [options] [user@]host command [args...]
       outrun [options] ssh://[user@]host[:port] command [args...]
       outrun [options] slurm://[user@]login[:port][/partition] command [args...]
       outrun [options] -S [N/][user@]host,... command [args...]
       outrun [options] @POOL command [args...]
       outrun [-S PATH] -O check|exit [user@]host
       outrun [options] --check [user@]host

Runs a local command on a remote Linux machine over SSH, as if it ran locally.
Options must come before the destination; everything after it is the command.

options:
  -p PORT         port to connect to on the remote host (default 22)
  -l USER         user to log in as on the remote host
  -i FILE         identity (private key) file; may be repeated
  -F FILE         ssh_config file to use instead of ~/.ssh/config and
                  /etc/ssh/ssh_config (-F none: use no config file)
  -o KEY=VALUE    ssh_config option, e.g. -o ConnectTimeout=5; also -o "KEY VALUE";
                  may be repeated
  -J [USER@]HOST[:PORT][,...]
                  connect through these jump hosts (ProxyJump)
  -C              compress the SSH transport (zlib), for slow links
  -v              verbose: what the connection does and every RPC with its latency;
                  -vv adds the agent's log, -vvv ssh2's trace
  -t              force a pseudo-terminal for the command
  -T              never allocate a pseudo-terminal
  -o ControlPersist=SECONDS|yes|no
                  keep a background master for this user and destination that holds
                  the connection, the remote agent and its caches, so later runs start
                  with one exec; it ends after SECONDS idle (yes: only at -O exit or
                  when the connection ends). Default no. While it lives, the remote's
                  root can read your local files (see README, Connection reuse)
  -o ReconnectTimeout=SECONDS
                  when the connection drops during a run, the remote command keeps
                  running and outrun reconnects for up to SECONDS (default 120; 0:
                  never, the run ends with 255 as soon as the link is lost). Nothing
                  of stdin, stdout, stderr or the files is lost or repeated; the
                  remote waits as long for us, then ends the command and cleans up.
                  Runs with a terminal (-t) and runs through a master are not resumed
  slurm://[user@]login[/partition]
                  (as the destination) log in to a Slurm login node, allocate one node
                  (salloc -N1 [-p partition]) and run the command there as a job step;
                  inside an allocation (SLURM_JOB_ID set here) use its nodes instead.
                  Not resumed (ReconnectTimeout is 0), no master, no -t for now
  -o SlurmOptions="WORDS"
                  more salloc options for slurm://, e.g. "--time=10 --account=x";
                  --immediate=SECONDS bounds the wait for a busy partition
  -o SlurmJob=ID  slurm://: run in this existing allocation (default $SLURM_JOB_ID)
  -S PATH         the master's socket (default $XDG_RUNTIME_DIR/outrun/ or
                  /tmp/outrun-UID/, a directory only you can enter)
  -S [N/]LOGIN[,...]
                  a host pool instead of a destination (GNU parallel's sshlogins:
                  N slots on LOGIN, default its CPU count; ':' this machine; '..'
                  the logins in ~/.parallel/sshloginfile); repeatable. The run goes
                  to the least busy host with a free slot, waits when all are
                  taken, skips an unreachable host for 60 s. A value with a comma,
                  an N/ prefix, ':' or '..' is a pool; any other is a socket path
  @POOL           (as the destination) the pool named in
                  $XDG_CONFIG_HOME/outrun/config: a line "pool POOL LOGIN,..." 
  -O check|exit   ask the destination's master whether it runs, or to end
  --              end of options
  --stats         at the end, print on stderr: RPCs by kind, round trips, bytes each
                  way, time waiting on the network, the agent's cache hits and misses
  --cache-paths LIST
                  comma-separated local trees the remote may keep between runs
                  (revalidated at every start; default /usr,/lib,/lib32,/lib64,
                  /libx32,/bin,/sbin,/etc,/opt)
  --cache-size SIZE
                  bound on the contents kept on the remote, e.g. 512M, 4G (default 2G)
  --no-cache      keep nothing on the remote between runs
  --no-chroot     run the remote's own command, not the local one: no chroot, the
                  remote login's environment plus the local variables SendEnv names
                  (-o SendEnv=PATTERN, ssh_config's SendEnv), with the local working
                  directory and the --mount paths at the same paths over the
                  remote's tree (in a mount namespace of the command's own)
  --mount PATH[,PATH...]
                  with --no-chroot: local paths to put there besides the working
                  directory; may be repeated
  --check         probe the remote and print, one line each, what a run needs and
                  whether it is there (exit 0: a run would work, 1: something is missing);
                  with --no-chroot, what such a run needs
  --timeout DURATION
                  end the command when DURATION has passed since outrun started
                  (connecting and mounting count): SIGTERM to its process group on
                  the remote, SIGKILL after the --kill-after grace; outrun then exits
                  124 (137 when it had to kill). DURATION as timeout(1): a number,
                  fractions allowed, with an optional suffix s (default), m, h or d;
                  0: no limit
  --kill-after DURATION
                  with --timeout: how long a command may take to end after the
                  SIGTERM before it is killed (default 10s; 0: at once)
  --kernel-cache SECONDS
                  how long the remote kernel keeps names, attributes and absent names
                  without asking (default 10; 0: ask every time). Local changes made
                  during a run show within this time; every open sees them at once
  --help          show this help and exit
  --version       show the version and exit

authentication: ssh-agent (SSH_AUTH_SOCK or IdentityAgent), identity files, and a
password taken only from the OUTRUN_PASSWORD environment variable.
`;

/** How long a dropped link is retried by default (at least 60 s: a Wi-Fi blink, a suspend of a minute). */
export const DEFAULT_RECONNECT_TIMEOUT_MS = 120_000;

export interface CliOptions {
  /** -p */
  port?: number;
  /** -l */
  user?: string;
  /** -i, in order given. */
  identityFiles: string[];
  /** -F */
  configFile?: string;
  /** -o, keys lower-cased, first value given wins (as ssh: first obtained value wins). */
  sshOptions: Record<string, string>;
  /** Number of -v. */
  verbose: number;
  /** -J */
  jump?: string;
  /** -t: 'force', -T: 'disable', neither: undefined (decide from the local terminal). Last one wins. */
  pty?: 'force' | 'disable';
  help: boolean;
  version: boolean;
  /** --stats: print the session's RPC and cache figures on stderr at the end. */
  stats?: boolean;
  /** --cache-paths (--no-cache: []): local trees the remote may keep between runs. */
  cachePaths?: string[];
  /** --cache-size in bytes. */
  cacheBytes?: number;
  /** -o ReconnectTimeout: milliseconds a dropped link is retried for (0: never). */
  reconnectTimeoutMs?: number;
  /** -o SlurmOptions=WORDS: more salloc options (slurm:// only; shell-split, never through a shell). */
  slurmOptions?: string;
  /** -o SlurmJob=ID (or SLURM_JOB_ID here): run in this existing allocation (slurm:// only). */
  slurmJob?: string;
  /** --kernel-cache: seconds the remote kernel keeps names, attributes and absences. */
  kernelCacheS?: number;
  /** -o ControlPersist: idle milliseconds before the master ends; 'forever' (yes); undefined: no master. */
  controlPersist?: number | 'forever';
  /** -S PATH (a socket path; see looksLikePool) */
  controlPath?: string;
  /** -O */
  controlCommand?: 'check' | 'exit';
  /** --check: probe the remote for what a run needs (doctor.ts), run nothing. */
  check?: boolean;
  /** --no-chroot: the remote's own programs, with the local cwd and --mount paths. */
  noChroot?: boolean;
  /** --mount (repeatable, comma-separated): local paths as given, besides the cwd. */
  mounts?: string[];
  /** --timeout in ms (0, the default: no limit), counted from outrun's start. */
  timeoutMs?: number;
  /** --kill-after in ms: the grace between the timeout's SIGTERM and its SIGKILL. */
  killAfterMs?: number;
}

/** -o ControlPersist's value, as ssh reads it: yes, no, seconds (or 1m, 2h...). */
export function parseControlPersist(text: string): number | 'forever' | 'no' | undefined {
  const v = text.trim().toLowerCase();
  if (v === 'yes' || v === 'true' || v === '0') return 'forever';
  if (v === 'no' || v === 'false') return 'no';
  const m = /^(\d+)([smhdw]?)$/.exec(v);
  if (!m) return undefined;
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2]!]!;
  return Number(m[1]) * unit * 1000;
}

/** "512M", "4G", "100000" -> bytes; undefined if malformed. */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!m) return undefined;
  const unit = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[m[2]!.toUpperCase()]!;
  const n = Math.floor(Number(m[1]) * unit);
  return Number.isSafeInteger(n) ? n : undefined;
}

export interface Destination {
  user?: string;
  host: string;
  port?: number;
  /** slurm://: the host is a Slurm login node; the command runs on a compute node (slurm.ts). */
  slurm?: { partition?: string };
}

/** A run's destination when it is a pool: -S sshlogins (each value as given) or @NAME. */
export type PoolRef = { logins: string[] } | { name: string };

export type ParsedArgs =
  | { action: 'run'; options: CliOptions; destination: Destination; command: string[] }
  /** A run on a pool: `baseArgv` is the options without the pool (a chosen host's run adds its destination). */
  | { action: 'pool'; options: CliOptions; pool: PoolRef; command: string[]; baseArgv: string[] }
  | { action: 'help' | 'version'; options: CliOptions; destination?: Destination; command: string[] }
  | { action: 'control'; options: CliOptions; destination: Destination; command: [] }
  | { action: 'check'; options: CliOptions; destination: Destination; command: [] };

const HINT = 'see outrun --help';

function usageError(message: string): OutrunError {
  return new OutrunError('USAGE', message, { hint: HINT });
}

/** The longest --kernel-cache (an hour: beyond it a local change could go unseen for long). */
export const MAX_KERNEL_CACHE_S = 3600;

/** Options that take an argument. */
const WITH_ARG = new Set(['p', 'l', 'i', 'F', 'o', 'J', 'S', 'O']);
/** Options that are flags. */
const FLAGS = new Set(['v', 't', 'T', 'C']);

export function parsePort(text: string, what: string): number {
  if (!/^[0-9]+$/.test(text)) throw usageError(`bad port '${text}' in ${what}`);
  const n = Number(text);
  if (n < 1 || n > 65535) throw usageError(`bad port '${text}' in ${what}`);
  return n;
}

/**
 * Split an -o argument the way ssh reads a config line: `Key=Value`, `Key Value`, `Key = Value`.
 */
export function splitSshOption(arg: string): [string, string] {
  const m = /^\s*([A-Za-z0-9]+)\s*(?:=\s*|\s+)(.*?)\s*$/.exec(arg);
  if (!m || m[2] === '') throw usageError(`bad -o option '${arg}': expected KEY=VALUE`);
  return [m[1].toLowerCase(), m[2]];
}

/** `host`, `user@host`, `ssh://[user@]host[:port]` (host may be a bracketed IPv6 address). */
export function parseDestination(text: string): Destination {
  // slurm://[user@]login[:port][/partition]: the login as ssh:// reads it, then a partition.
  if (/^slurm:\/\//i.test(text)) {
    const rest = text.slice('slurm://'.length);
    const slash = rest.indexOf('/', rest.indexOf(']') + 1);
    const partition = slash >= 0 ? rest.slice(slash + 1).replace(/\/$/, '') : '';
    if (partition !== '' && !/^[A-Za-z0-9._-]+$/.test(partition)) throw usageError(`bad partition '${partition}' in destination '${text}'`);
    const login = parseDestination(`ssh://${slash >= 0 ? rest.slice(0, slash) : rest}`);
    return { ...login, slurm: partition ? { partition } : {} };
  }
  if (/^ssh:\/\//i.test(text)) {
    let rest = text.slice('ssh://'.length);
    if (rest.endsWith('/')) rest = rest.slice(0, -1);
    let user: string | undefined;
    const at = rest.lastIndexOf('@');
    if (at >= 0) {
      user = decodeURIComponent(rest.slice(0, at));
      rest = rest.slice(at + 1);
      // ssh's URIs allow ";fingerprint=..." parameters after the user; not supported here.
      if (user.includes(';')) throw usageError(`unsupported parameters in destination '${text}'`);
      if (user === '') throw usageError(`empty user in destination '${text}'`);
    }
    let host: string;
    let port: number | undefined;
    if (rest.startsWith('[')) {
      const close = rest.indexOf(']');
      if (close < 0) throw usageError(`bad destination '${text}'`);
      host = rest.slice(1, close);
      const after = rest.slice(close + 1);
      if (after !== '') {
        if (!after.startsWith(':')) throw usageError(`bad destination '${text}'`);
        port = parsePort(after.slice(1), `destination '${text}'`);
      }
    } else {
      const colon = rest.indexOf(':');
      if (colon >= 0) {
        host = rest.slice(0, colon);
        port = parsePort(rest.slice(colon + 1), `destination '${text}'`);
      } else {
        host = rest;
      }
    }
    if (host === '' || host.includes('/')) throw usageError(`bad destination '${text}'`);
    return user === undefined ? { host, ...(port ? { port } : {}) } : { user, host, ...(port ? { port } : {}) };
  }
  const at = text.lastIndexOf('@');
  const user = at >= 0 ? text.slice(0, at) : undefined;
  const host = at >= 0 ? text.slice(at + 1) : text;
  if (host === '') throw usageError(`missing host name in destination '${text}'`);
  if (user === '') throw usageError(`empty user in destination '${text}'`);
  return user === undefined ? { host } : { user, host };
}

/** Parse outrun's argv (without `node` and the script: process.argv.slice(2)). */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  const options: CliOptions = { identityFiles: [], sshOptions: {}, verbose: 0, help: false, version: false };
  const pool: string[] = [];
  /** Where each pool -S was: the token, the letter's offset in it, whether its value was the next token. */
  const poolAt: { token: number; at: number; next: boolean }[] = [];
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      i++;
      break;
    }
    if (arg === '--help') {
      options.help = true;
      continue;
    }
    if (arg === '--version') {
      options.version = true;
      continue;
    }
    if (arg === '--stats') {
      options.stats = true;
      continue;
    }
    if (arg === '--check') {
      options.check = true;
      continue;
    }
    if (arg === '--no-chroot') {
      options.noChroot = true;
      continue;
    }
    if (arg === '--no-cache') {
      options.cachePaths = [];
      continue;
    }
    const long = /^--(cache-paths|cache-size|kernel-cache|mount|timeout|kill-after)(?:=(.*))?$/s.exec(arg);
    if (long) {
      let value = long[2];
      if (value === undefined) {
        if (i + 1 >= argv.length) throw usageError(`option --${long[1]} needs an argument`);
        value = argv[++i];
      }
      if (long[1] === 'timeout' || long[1] === 'kill-after') {
        const ms = parseDuration(value);
        if (ms === undefined) throw usageError(`--${long[1]} '${value}' is not a duration (a number with an optional s, m, h or d, e.g. 30, 1.5m)`);
        if (long[1] === 'timeout') options.timeoutMs = ms;
        else options.killAfterMs = ms;
      } else if (long[1] === 'mount') {
        const paths = value.split(',');
        if (paths.some((p) => p === '')) throw usageError(`--mount '${value}': empty path`);
        options.mounts = [...(options.mounts ?? []), ...paths];
      } else if (long[1] === 'cache-paths') {
        const trees = parseCachedTrees(value);
        if (trees instanceof Error) throw usageError(trees.message);
        options.cachePaths = trees;
      } else if (long[1] === 'kernel-cache') {
        if (!/^\d{1,4}$/.test(value) || Number(value) > MAX_KERNEL_CACHE_S) {
          throw usageError(`--kernel-cache '${value}' is not a number of seconds from 0 to ${MAX_KERNEL_CACHE_S}`);
        }
        options.kernelCacheS = Number(value);
      } else {
        const n = parseSize(value);
        if (n === undefined) throw usageError(`--cache-size '${value}' is not a size (e.g. 512M, 4G)`);
        options.cacheBytes = n;
      }
      continue;
    }
    if (arg.startsWith('--')) throw usageError(`unknown option '${arg}'`);
    if (!arg.startsWith('-') || arg === '-') break; // the destination
    // A cluster of single-letter options, getopt style: -vvt, -p22, -vp 22.
    for (let j = 1; j < arg.length; j++) {
      const letter = arg[j];
      if (FLAGS.has(letter)) {
        if (letter === 'v') options.verbose++;
        else if (letter === 'C') {
          // As ssh -C: the same as -o Compression=yes (an earlier -o wins, first value wins).
          if (!('compression' in options.sshOptions)) options.sshOptions.compression = 'yes';
        } else if (letter === 't') options.pty = 'force';
        else options.pty = 'disable';
        continue;
      }
      if (!WITH_ARG.has(letter)) throw usageError(`unknown option '-${letter}'`);
      let value: string;
      const token = i;
      if (j + 1 < arg.length) {
        value = arg.slice(j + 1);
      } else {
        if (i + 1 >= argv.length) throw usageError(`option -${letter} needs an argument`);
        value = argv[++i];
      }
      if (letter === 'S' && looksLikePool(value)) {
        pool.push(value);
        poolAt.push({ token, at: j, next: token !== i });
      } else applyOption(options, letter, value);
      break;
    }
  }
  if (options.help || options.version) {
    const action = options.help ? 'help' : 'version';
    const rest = argv.slice(i);
    if (rest.length === 0) return { action, options, command: [] };
    return { action, options, destination: parseDestination(rest[0]), command: rest.slice(1) };
  }
  if (options.killAfterMs !== undefined && options.timeoutMs === undefined) throw usageError('--kill-after needs --timeout');
  if (options.mounts && !options.noChroot) throw usageError('--mount needs --no-chroot (a chroot run sees the whole local tree)');
  if (options.jump !== undefined && 'proxycommand' in options.sshOptions)
    throw usageError('-J cannot be combined with -o ProxyCommand');
  if (options.timeoutMs !== undefined && (options.controlCommand || options.check))
    throw usageError(`--timeout bounds a run, not ${options.controlCommand ? `-O ${options.controlCommand}` : '--check'}`);
  if (pool.length > 0 && (options.controlCommand || options.check)) {
    throw usageError(`${options.check ? '--check' : `-O ${options.controlCommand}`} takes one destination, not a pool`);
  }
  if (options.controlCommand) {
    if (i >= argv.length) throw usageError(`-O ${options.controlCommand} needs a destination`);
    if (i + 1 < argv.length) throw usageError(`-O ${options.controlCommand} takes no command`);
    return { action: 'control', options, destination: parseDestination(argv[i]), command: [] };
  }
  if (options.check) {
    if (i >= argv.length) throw usageError('--check needs a destination');
    if (i + 1 < argv.length) throw usageError('--check takes no command');
    return { action: 'check', options, destination: parseDestination(argv[i]), command: [] };
  }
  const poolName = pool.length === 0 && argv[i]?.startsWith('@') ? argv[i].slice(1) : undefined;
  if (pool.length > 0 || poolName !== undefined) {
    if (options.controlPath !== undefined) throw usageError('-S PATH (a master\'s socket) names one destination: not with a pool');
    if (poolName !== undefined && !/^[A-Za-z0-9._-]+$/.test(poolName)) throw usageError(`bad pool name '${argv[i]}'`);
    const command = argv.slice(poolName !== undefined ? i + 1 : i);
    if (command.length === 0) throw usageError('missing command to run on the pool');
    // The options as given, less the pool: what each chosen host's run is started with.
    const baseArgv: string[] = [];
    argv.slice(0, i).forEach((tok, k) => {
      const p = poolAt.find((x) => x.token === k);
      if (poolAt.some((x) => x.next && x.token + 1 === k)) return;
      if (!p) baseArgv.push(tok);
      else if (p.at > 1) baseArgv.push(tok.slice(0, p.at));
    });
    return { action: 'pool', options, pool: poolName !== undefined ? { name: poolName } : { logins: pool }, command, baseArgv };
  }
  if (i >= argv.length) throw usageError('missing destination and command');
  const destination = parseDestination(argv[i]);
  const command = argv.slice(i + 1);
  if (command.length === 0) throw usageError(`missing command to run on ${argv[i]}`);
  return { action: 'run', options, destination, command };
}

function applyOption(options: CliOptions, letter: string, value: string): void {
  switch (letter) {
    case 'p':
      options.port = parsePort(value, '-p');
      return;
    case 'l':
      if (value === '') throw usageError('empty user in -l');
      options.user = value;
      return;
    case 'i':
      if (value === '') throw usageError('empty file name in -i');
      options.identityFiles.push(value);
      return;
    case 'F':
      if (value === '') throw usageError('empty file name in -F');
      options.configFile = value;
      return;
    case 'o': {
      const [key, val] = splitSshOption(value);
      if (key === 'host' || key === 'match' || key === 'include')
        throw usageError(`-o ${key}: not allowed on the command line`);
      // Outrun's own, not an ssh_config setting (a master here also serves local files).
      if (key === 'controlpersist') {
        const persist = parseControlPersist(val);
        if (persist === undefined) throw usageError(`bad -o ControlPersist '${val}': expected SECONDS, yes or no`);
        if (!('controlPersist' in options)) options.controlPersist = persist === 'no' ? undefined : persist;
        return;
      }
      // Outrun's own: how long a run survives a dropped link (resume).
      if (key === 'reconnecttimeout') {
        if (!/^[0-9]+$/.test(val) || Number(val) > 86_400) throw usageError(`bad -o ReconnectTimeout '${val}': expected SECONDS (0 to 86400)`);
        if (!('reconnectTimeoutMs' in options)) options.reconnectTimeoutMs = Number(val) * 1000;
        return;
      }
      // Outrun's own: salloc options and an existing allocation for slurm:// runs.
      if (key === 'slurmoptions') {
        if (!('slurmOptions' in options)) options.slurmOptions = val;
        return;
      }
      if (key === 'slurmjob') {
        if (!/^[0-9]+$/.test(val)) throw usageError(`bad -o SlurmJob '${val}': expected a job id`);
        if (!('slurmJob' in options)) options.slurmJob = val;
        return;
      }
      // SendEnv gathers every pattern given (as ssh): one line with all of them.
      if (key === 'sendenv') options.sshOptions[key] = [options.sshOptions[key], val].filter(Boolean).join(' ');
      else if (!(key in options.sshOptions)) options.sshOptions[key] = val;
      return;
    }
    case 'S':
      if (value === '') throw usageError('empty path in -S');
      options.controlPath = value;
      return;
    case 'O':
      if (value !== 'check' && value !== 'exit') throw usageError(`-O '${value}': expected check or exit`);
      options.controlCommand = value;
      return;
    case 'J':
      if (options.jump !== undefined) throw usageError('only one -J option is allowed');
      if (value === '') throw usageError('empty jump host in -J');
      options.jump = value;
      return;
  }
}

/**
 * What the SSH config resolver needs from a parsed command line. -l beats the user in the
 * destination, -p beats the port in an ssh:// destination, -J beats -o ProxyJump.
 */
export function toResolveOptions(parsed: { options: CliOptions; destination: Destination }): ResolveOptions {
  const { options, destination } = parsed;
  const overrides: Record<string, string> = { ...options.sshOptions };
  if (options.jump !== undefined) overrides['proxyjump'] = options.jump;
  const user = options.user ?? destination.user;
  const port = options.port ?? destination.port;
  return {
    host: destination.host,
    ...(user !== undefined ? { user } : {}),
    ...(port !== undefined ? { port } : {}),
    identityFiles: options.identityFiles,
    ...(options.configFile !== undefined ? { configFile: options.configFile } : {}),
    overrides,
  };
}
