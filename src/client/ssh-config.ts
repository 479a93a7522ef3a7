// ssh_config(5): read the user's and the system's SSH client configuration the way OpenSSH does,
// for the subset of keywords outrun uses. ssh2 reads no configuration by itself.
//
// Semantics kept from OpenSSH:
// - the first value obtained for a keyword wins (IdentityFile accumulates instead);
// - the command line (-p, -l, -i, -J, -o) comes before any file;
// - ~/.ssh/config, then /etc/ssh/ssh_config, unless -F FILE (only FILE) or -F none (nothing);
// - `Host` patterns (`*`, `?`, `!negation`, several per line) match the host as typed, case and
//   all; `Match host|originalhost` in any case, `Match user|localuser` exactly; the host name
//   connected to is lower-cased;
// - `Match all|host|originalhost|user|localuser|canonical|final` (with `!`); other criteria are
//   unsupported: a warning, and the Match line does not match;
// - `Include` (globs; relative paths from ~/.ssh, or /etc/ssh for the system file);
// - `Key Value` / `Key=Value`, quoted arguments, case-insensitive keywords, trailing comments;
// - %-tokens and `~` in IdentityFile, UserKnownHostsFile, IdentityAgent, ProxyCommand, HostName.
// test/unit/ssh-config-differential.test.ts checks all this against `ssh -G`.
// Differences: no hostname canonicalization; `~user` is not expanded.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OutrunError } from './errors';
import { matchExecSucceeds } from './ssh-match-exec';
import { keywordUse } from './ssh-config-keywords';

export type StrictHostKeyChecking = 'yes' | 'no' | 'accept-new' | 'ask';

export interface ResolveOptions {
  /** The host as given on the command line (the `Host` patterns match this). */
  host: string;
  /** -l, or the user in user@host. */
  user?: string;
  /** -p, or the port in ssh://host:port. */
  port?: number;
  /** -i files, in order. */
  identityFiles?: string[];
  /** -F: a file, or 'none'. Without it: ~/.ssh/config then the system file. */
  configFile?: string;
  /** -o options: keyword (any case) => value. */
  overrides: Record<string, string>;
  /** Home directory (default os.homedir()). */
  home?: string;
  /** Local user name (default os.userInfo().username). */
  localUser?: string;
  /** System-wide config file (default /etc/ssh/ssh_config; 'none' for none). */
  systemConfigFile?: string;
  /** Environment for SSH_AUTH_SOCK and IdentityAgent $VAR (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Where warnings go (default: stderr, prefixed "outrun: warning: "). */
  warn?: (msg: string) => void;
}

export interface ResolvedHost {
  /** The host as typed (%n). */
  host: string;
  /** The address to connect to (HostName, %h). */
  hostName: string;
  user: string;
  port: number;
  /** Absolute paths, tokens expanded. Defaults when none was configured. */
  identityFiles: string[];
  /** True when identityFiles are the defaults (missing ones are not worth a warning). */
  identityFilesAreDefault: boolean;
  identitiesOnly: boolean;
  userKnownHostsFiles: string[];
  globalKnownHostsFiles: string[];
  strictHostKeyChecking: StrictHostKeyChecking;
  /** ProxyJump chain as written (comma-separated), if any. */
  proxyJump?: string;
  /** ProxyCommand with tokens expanded, if any. */
  proxyCommand?: string;
  /** Seconds (ConnectTimeout); default 20. 0 means no limit. */
  connectTimeout: number;
  /** Seconds between keepalives (ServerAliveInterval); default 5 here. 0 disables. */
  serverAliveInterval: number;
  /** Unanswered keepalives before the link is declared dead (ServerAliveCountMax); default 3. */
  serverAliveCountMax: number;
  hostKeyAlias?: string;
  batchMode: boolean;
  /** Compression (-C): zlib on the SSH transport, for slow links. */
  compression: boolean;
  /** SendEnv patterns: the local variables a --no-chroot command gets (the rest is the remote's). */
  sendEnv: string[];
  /** Agent socket path (IdentityAgent, else SSH_AUTH_SOCK); undefined: no agent. */
  identityAgent?: string;
  /** What this was resolved from, so ProxyJump hops can be resolved the same way. */
  source: {
    configFile?: string;
    home: string;
    localUser: string;
    systemConfigFile: string;
    env: NodeJS.ProcessEnv;
    warn: (msg: string) => void;
  };
}

export const DEFAULT_CONNECT_TIMEOUT = 20;
export const DEFAULT_SERVER_ALIVE_INTERVAL = 5;
export const DEFAULT_SERVER_ALIVE_COUNT_MAX = 3;

// ---------------------------------------------------------------------------------------------
// Patterns

function globToRegExp(pattern: string, ignoreCase: boolean): RegExp {
  let re = '';
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '?') re += '.';
    else re += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, ignoreCase ? 'is' : 's');
}

/** One glob pattern (`*`, `?`) against a host or user name (case-insensitively unless told). */
export function matchPattern(pattern: string, text: string, ignoreCase = true): boolean {
  return globToRegExp(pattern, ignoreCase).test(text);
}

/**
 * A list of patterns, each possibly negated with `!`: true when some positive pattern matches and
 * no negated one does (OpenSSH's match_pattern_list).
 */
export function matchPatternList(patterns: readonly string[], text: string, ignoreCase = true): boolean {
  let positive = false;
  for (const p of patterns) {
    if (p.startsWith('!')) {
      if (matchPattern(p.slice(1), text, ignoreCase)) return false;
    } else if (matchPattern(p, text, ignoreCase)) {
      positive = true;
    }
  }
  return positive;
}

// ---------------------------------------------------------------------------------------------
// Lexing

/** Split arguments like OpenSSH's argv_split: whitespace, "double" and 'single' quotes, \ escapes, # comments. */
export function splitArgs(text: string): string[] | Error {
  const args: string[] = [];
  let i = 0;
  while (i < text.length) {
    while (i < text.length && (text[i] === ' ' || text[i] === '\t')) i++;
    if (i >= text.length) break;
    if (text[i] === '#') break; // comment to the end of the line
    let arg = '';
    let quote: string | undefined;
    for (; i < text.length; i++) {
      const ch = text[i];
      const next = text[i + 1];
      if (ch === '\\') {
        if (next === "'" || next === '"' || next === '\\' || (quote === undefined && next === ' ')) {
          arg += next;
          i++;
        } else {
          arg += ch; // unrecognised escape: kept
        }
      } else if (quote === undefined && (ch === ' ' || ch === '\t')) {
        break;
      } else if (quote === undefined && (ch === '"' || ch === "'")) {
        quote = ch;
      } else if (quote !== undefined && ch === quote) {
        quote = undefined;
      } else {
        arg += ch;
      }
    }
    if (quote !== undefined) return new Error('unterminated quote');
    args.push(arg);
  }
  return args;
}

/** `keyword rest`, `keyword=rest`, `keyword = rest`; null for blank and comment lines. */
function splitKeyword(line: string): { keyword: string; spelled: string; rest: string } | null {
  const trimmed = line.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return null;
  const m = /^([^\s=]+)[ \t]*(?:=[ \t]*)?(.*)$/s.exec(trimmed);
  if (!m) return null;
  return { keyword: m[1].toLowerCase(), spelled: m[1], rest: m[2] };
}

// ---------------------------------------------------------------------------------------------
// Values

/** OpenSSH time format: 30, 30s, 1m30s, 2h, 1d, 1w. Seconds, or null. */
export function parseTime(text: string): number | null {
  if (/^[0-9]+$/.test(text)) return Number(text);
  const re = /([0-9]+)([sSmMhHdDwW])/y;
  let total = 0;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) return null;
    const mult = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[m[2].toLowerCase() as 's'] ?? 1;
    total += Number(m[1]) * mult;
    pos = re.lastIndex;
  }
  return pos === 0 ? null : total;
}

export interface JumpHop {
  user?: string;
  host: string;
  port?: number;
}

/** One ProxyJump hop: `[user@]host[:port]`, `[user@][v6addr]:port` or `ssh://[user@]host[:port]`. */
export function parseJumpHost(spec: string): JumpHop | null {
  let rest = spec.trim();
  if (/^ssh:\/\//i.test(rest)) rest = rest.slice(6).replace(/\/$/, '');
  let user: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (user === '') return null;
  }
  let host = rest;
  let portText: string | undefined;
  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) return null;
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) return null;
      portText = after.slice(1);
    }
  } else {
    const colon = rest.indexOf(':'); // as OpenSSH: an IPv6 address must be in brackets
    if (colon >= 0) {
      host = rest.slice(0, colon);
      portText = rest.slice(colon + 1);
    }
  }
  if (host === '' || /[\s/]/.test(host)) return null;
  let port: number | undefined;
  if (portText !== undefined) {
    if (!/^[0-9]+$/.test(portText)) return null;
    port = Number(portText);
    if (port < 1 || port > 65535) return null;
  }
  return { ...(user !== undefined ? { user } : {}), host, ...(port !== undefined ? { port } : {}) };
}

/** A ProxyJump chain `hop1,hop2,...`, first hop first; null when any hop is malformed. */
export function parseJumpChain(spec: string): JumpHop[] | null {
  const hops: JumpHop[] = [];
  for (const part of spec.split(',')) {
    const hop = parseJumpHost(part);
    if (!hop) return null;
    hops.push(hop);
  }
  return hops.length ? hops : null;
}

/** Format a hop back to `[user@]host[:port]`. */
export function formatJumpHop(hop: JumpHop): string {
  const host = hop.host.includes(':') ? `[${hop.host}]` : hop.host;
  return `${hop.user !== undefined ? `${hop.user}@` : ''}${host}${hop.port !== undefined ? `:${hop.port}` : ''}`;
}

/** Expand %-tokens; an unknown token is an error, as in OpenSSH. */
export function expandTokens(text: string, tokens: Record<string, string>, what: string): string {
  return text.replace(/%(.?)/gs, (_all, ch: string) => {
    if (ch === '%') return '%';
    const v = tokens[ch];
    if (v === undefined) {
      throw new OutrunError('SSH_CONFIG', `unknown or unsupported token %${ch} in ${what}`, {
        hint: 'write %% for a literal %',
      });
    }
    return v;
  });
}

/** `~` and `~/...` expansion (`~user` is not supported). */
export function expandTilde(p: string, home: string, what: string): string {
  if (p === '~') return home;
  if (p.startsWith('~/')) return path.join(home, p.slice(2));
  if (p.startsWith('~')) {
    throw new OutrunError('SSH_CONFIG', `cannot expand '${p}' in ${what}: ~user is not supported`, {
      hint: 'write the full path',
    });
  }
  return p;
}

// ---------------------------------------------------------------------------------------------
// The settings collected while reading

interface Settings {
  values: Map<string, string>;
  lists: Map<string, string[]>;
  identityFiles: string[];
  /** SendEnv patterns, gathered from every line (a `-PATTERN` takes back those it matches). */
  sendEnv: string[];
  /** ProxyJump and ProxyCommand share one slot: whichever comes first wins. */
  proxy?: { kind: 'jump' | 'command'; value: string };
}

interface Ctx {
  host: string;
  localUser: string;
  home: string;
  settings: Settings;
  warn: (msg: string) => void;
  /** For `Match exec` (its shell and environment). */
  env: NodeJS.ProcessEnv;
  /** Keywords already reported as unsupported or unknown (once each). */
  reported: Set<string>;
  /** Second pass for `Match final`/`canonical`. */
  finalPass: boolean;
  sawFinal: boolean;
  /** Already-read files in this pass (Include loops are cut off by depth, as in OpenSSH). */
}

function configError(where: string, message: string): OutrunError {
  return new OutrunError('SSH_CONFIG', `${where}: ${message}`, { hint: 'fix the ssh config (see ssh_config(5))' });
}

function yesNo(value: string, where: string, keyword: string): boolean {
  const v = value.toLowerCase();
  if (v === 'yes' || v === 'true') return true;
  if (v === 'no' || v === 'false') return false;
  throw configError(where, `bad value '${value}' for ${keyword}: expected yes or no`);
}

/**
 * A keyword outrun does not honour: nothing for one without effect on the connection; one line
 * on stderr for one that would change where or how to connect, and for an unknown one (unless
 * IgnoreUnknown names it). Once per keyword.
 */
function reportNotHonoured(ctx: Ctx, keyword: string, spelled: string, rest: string, where: string): void {
  const use = keywordUse(keyword);
  if (use?.use === 'no-effect' || ctx.reported.has(keyword)) return;
  if (use === undefined) {
    const ignore = ctx.settings.values.get('ignoreunknown');
    if (ignore !== undefined && matchPatternList(ignore.split(','), keyword)) return;
    ctx.reported.add(keyword);
    ctx.warn(`${where}: unknown keyword '${spelled}', ignored`);
    return;
  }
  if (use.use !== 'unsupported') return;
  const value = rest.trim().replace(/\s+/g, ' ').toLowerCase();
  if (use.neutral.includes(value)) return;
  ctx.reported.add(keyword);
  ctx.warn(`${where}: ${spelled} is not supported by outrun (${use.what}); connecting without it`);
}

/** Apply one `keyword args` line (already known to be active). */
function applyKeyword(ctx: Ctx, keyword: string, rest: string, where: string, spelled = keyword): void {
  const s = ctx.settings;
  if (keyword === 'ignoreunknown') {
    // Patterns (a comma-separated list); the first value wins, and it only covers what follows.
    if (!s.values.has(keyword)) s.values.set(keyword, rest.trim().toLowerCase());
    return;
  }
  if (keywordUse(keyword)?.use !== 'honoured') {
    reportNotHonoured(ctx, keyword, spelled, rest, where);
    return;
  }
  if (keyword === 'proxycommand') {
    // The rest of the line, verbatim: it is a shell command.
    if (rest === '') throw configError(where, 'missing argument for ProxyCommand');
    // As OpenSSH: `ProxyJump none` does not keep a later ProxyCommand out.
    if (!s.proxy || (s.proxy.kind === 'jump' && s.proxy.value.toLowerCase() === 'none')) s.proxy = { kind: 'command', value: rest };
    return;
  }
  const args = splitArgs(rest);
  if (args instanceof Error) throw configError(where, args.message);
  if (args.length === 0) throw configError(where, `missing argument for ${keyword}`);
  switch (keyword) {
    case 'identityfile':
      if (args.length > 1) throw configError(where, 'garbage at end of line');
      if (!s.identityFiles.includes(args[0])) s.identityFiles.push(args[0]);
      return;
    case 'userknownhostsfile':
    case 'globalknownhostsfile':
      if (!s.lists.has(keyword)) s.lists.set(keyword, args);
      return;
    case 'sendenv':
      for (const a of args) {
        if (a.startsWith('-')) s.sendEnv = s.sendEnv.filter((p) => !matchPattern(a.slice(1), p, false));
        else s.sendEnv.push(a);
      }
      return;
    case 'proxyjump':
      if (args.length > 1) throw configError(where, 'garbage at end of line');
      if (args[0].toLowerCase() !== 'none' && parseJumpChain(args[0]) === null)
        throw configError(where, `bad ProxyJump '${args[0]}': expected [user@]host[:port][,...]`);
      if (!s.proxy) s.proxy = { kind: 'jump', value: args[0] };
      return;
  }
  if (args.length > 1) throw configError(where, 'garbage at end of line');
  const value = args[0];
  // Validate now, so errors name the line.
  switch (keyword) {
    case 'port': {
      if (!/^[0-9]+$/.test(value) || Number(value) < 1 || Number(value) > 65535)
        throw configError(where, `bad port '${value}'`);
      break;
    }
    case 'connecttimeout':
    case 'serveraliveinterval':
      if (value.toLowerCase() !== 'none' && parseTime(value) === null)
        throw configError(where, `bad time '${value}' for ${keyword}`);
      break;
    case 'serveralivecountmax':
      if (!/^[0-9]+$/.test(value)) throw configError(where, `bad number '${value}' for ServerAliveCountMax`);
      break;
    case 'identitiesonly':
    case 'batchmode':
    case 'compression':
      yesNo(value, where, keyword);
      break;
    case 'stricthostkeychecking':
      if (!['yes', 'no', 'ask', 'accept-new', 'off', 'true', 'false'].includes(value.toLowerCase()))
        throw configError(where, `bad value '${value}' for StrictHostKeyChecking`);
      break;
  }
  if (!s.values.has(keyword)) s.values.set(keyword, value);
}

/** The %-tokens of ssh_config(5) for the values known so far. */
function connectionTokens(ctx: Ctx, hostName: string): Record<string, string> {
  const v = ctx.settings.values;
  const proxy = ctx.settings.proxy;
  const localHost = os.hostname();
  const tokens: Record<string, string> = {
    h: hostName,
    p: v.get('port') ?? '22',
    r: v.get('user') ?? ctx.localUser,
    u: ctx.localUser,
    n: ctx.host,
    d: ctx.home,
    l: localHost,
    L: localHost.split('.')[0],
    i: String(typeof process.getuid === 'function' ? process.getuid() : 0),
    k: v.get('hostkeyalias') ?? ctx.host,
    j: proxy?.kind === 'jump' && proxy.value.toLowerCase() !== 'none' ? proxy.value : '',
  };
  tokens.C = crypto.createHash('sha1').update(`${tokens.l}${tokens.h}${tokens.p}${tokens.r}${tokens.j}`).digest('hex');
  return tokens;
}

function currentHostName(ctx: Ctx, strict = false): string {
  const hn = ctx.settings.values.get('hostname');
  if (hn === undefined) return ctx.host;
  try {
    return expandTokens(hn, { h: ctx.host }, 'HostName');
  } catch (err) {
    if (strict) throw err;
    return hn;
  }
}

/** Evaluate a `Match` line. */
function evalMatch(ctx: Ctx, args: string[], where: string): boolean {
  if (args.length === 0) throw configError(where, 'Match needs criteria');
  let result = true;
  let i = 0;
  const lowered = args.map((a) => a.toLowerCase());
  if (lowered.includes('all')) {
    const others = lowered.filter((a) => a !== 'all' && a !== 'canonical' && a !== 'final');
    if (others.length) throw configError(where, "'all' cannot be combined with other Match criteria");
  }
  while (i < args.length) {
    let crit = args[i++].toLowerCase();
    let negate = false;
    if (crit.startsWith('!')) {
      negate = true;
      crit = crit.slice(1);
    }
    let ok: boolean;
    switch (crit) {
      case 'all':
        ok = true;
        break;
      case 'canonical':
      case 'final':
        // No canonicalization here: both match in the second ("final") pass, as in OpenSSH when
        // CanonicalizeHostname is off.
        ctx.sawFinal = true;
        ok = ctx.finalPass;
        break;
      case 'host':
      case 'originalhost':
      case 'user':
      case 'localuser': {
        if (i >= args.length) throw configError(where, `Match ${crit} needs an argument`);
        const list = args[i++].split(',');
        const subject =
          crit === 'host'
            ? currentHostName(ctx)
            : crit === 'originalhost'
              ? ctx.host
              : crit === 'user'
                ? (ctx.settings.values.get('user') ?? ctx.localUser)
                : ctx.localUser;
        // As OpenSSH: host names compare in any case, user names exactly.
        ok = matchPatternList(list, subject, crit === 'host' || crit === 'originalhost');
        break;
      }
      case 'exec': {
        if (i >= args.length) throw configError(where, 'Match exec needs a command');
        const command = expandTokens(args[i++], connectionTokens(ctx, currentHostName(ctx).toLowerCase()), 'Match exec');
        // As OpenSSH: not run once an earlier criterion of the line has failed.
        ok = result ? matchExecSucceeds(command, ctx.env) : false;
        break;
      }
      default: {
        // localnetwork, tagged, version, sessiontype, command, ...: unsupported.
        ctx.warn(`${where}: Match criterion '${crit}' is not supported by outrun; treating the Match as not matching`);
        return false;
      }
    }
    if (negate) ok = !ok;
    if (!ok) result = false; // keep going: later criteria may still be malformed/unsupported
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Files

function hasGlob(p: string): boolean {
  return /[*?]/.test(p);
}

/** Expand `*` and `?` in path components; sorted; hidden entries only for patterns starting with '.'. */
export function globPaths(pattern: string): string[] {
  if (!hasGlob(pattern)) return [pattern];
  const absolute = pattern.startsWith('/');
  const parts = pattern.split('/').filter((p) => p !== '');
  let bases = [absolute ? '/' : '.'];
  for (const part of parts) {
    const next: string[] = [];
    for (const base of bases) {
      if (!hasGlob(part)) {
        next.push(path.join(base, part));
        continue;
      }
      let names: string[];
      try {
        names = fs.readdirSync(base);
      } catch {
        continue;
      }
      const re = globToRegExp(part, false);
      for (const name of names) {
        if (name.startsWith('.') && !part.startsWith('.')) continue;
        if (re.test(name)) next.push(path.join(base, name));
      }
    }
    bases = next;
  }
  return bases.filter((p) => fs.existsSync(p)).sort();
}

const MAX_INCLUDE_DEPTH = 16;

function readConfigFile(
  ctx: Ctx,
  file: string,
  opts: { mustExist: boolean; relativeBase: string; depth: number },
): void {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (opts.mustExist) {
      const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
      throw new OutrunError('SSH_CONFIG', `cannot read ssh config file ${file}: ${reason}`, {
        hint: 'check the -F argument',
        cause: err,
      });
    }
    return;
  }
  let active = true; // options before the first Host/Match apply to every host
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const where = `${file} line ${n + 1}`;
    const kw = splitKeyword(lines[n]);
    if (!kw) continue;
    const { keyword, rest } = kw;
    if (keyword === 'host') {
      const args = splitArgs(rest);
      if (args instanceof Error) throw configError(where, args.message);
      if (args.length === 0) throw configError(where, 'Host needs patterns');
      active = matchPatternList(args, ctx.host, false); // as OpenSSH: the host as typed, case and all
      continue;
    }
    if (keyword === 'match') {
      const args = splitArgs(rest);
      if (args instanceof Error) throw configError(where, args.message);
      active = evalMatch(ctx, args, where);
      continue;
    }
    if (!active) continue;
    if (keyword === 'include') {
      if (opts.depth >= MAX_INCLUDE_DEPTH) throw configError(where, 'Include nested too deeply');
      const args = splitArgs(rest);
      if (args instanceof Error) throw configError(where, args.message);
      if (args.length === 0) throw configError(where, 'Include needs a file');
      for (const arg of args) {
        let p = expandTilde(arg, ctx.home, 'Include');
        if (!path.isAbsolute(p)) p = path.join(opts.relativeBase, p);
        for (const f of globPaths(p)) {
          let isDir = false;
          try {
            isDir = fs.statSync(f).isDirectory();
          } catch {
            continue;
          }
          if (isDir) continue;
          readConfigFile(ctx, f, { mustExist: false, relativeBase: opts.relativeBase, depth: opts.depth + 1 });
        }
      }
      continue;
    }
    applyKeyword(ctx, keyword, rest, where, kw.spelled);
  }
}

function defaultWarn(msg: string): void {
  process.stderr.write(`outrun: warning: ${msg}\n`);
}

/** Resolve everything outrun needs to connect to `opts.host`. Throws OutrunError('SSH_CONFIG'). */
export function resolveSshConfig(opts: ResolveOptions): ResolvedHost {
  const home = opts.home ?? os.homedir();
  const localUser = opts.localUser ?? safeUserName();
  const env = opts.env ?? process.env;
  const warn = opts.warn ?? defaultWarn;
  const systemConfigFile = opts.systemConfigFile ?? '/etc/ssh/ssh_config';
  const settings: Settings = { values: new Map(), lists: new Map(), identityFiles: [], sendEnv: [] };
  const ctx: Ctx = { host: opts.host, localUser, home, settings, warn, env, reported: new Set(), finalPass: false, sawFinal: false };

  // 1. The command line: -l, -p, -i first, then the -o options.
  if (opts.user !== undefined) settings.values.set('user', opts.user);
  if (opts.port !== undefined) settings.values.set('port', String(opts.port));
  for (const f of opts.identityFiles ?? []) if (!settings.identityFiles.includes(f)) settings.identityFiles.push(f);
  for (const [rawKey, value] of Object.entries(opts.overrides)) {
    const key = rawKey.toLowerCase();
    const where = `command line option -o ${rawKey}=${value}`;
    if (key === 'host' || key === 'match' || key === 'include')
      throw new OutrunError('SSH_CONFIG', `${where}: not allowed on the command line`);
    // A keyword typed just now that no ssh_config knows is a mistake: refused, as ssh does.
    if (keywordUse(key) === undefined && key !== 'ignoreunknown')
      throw new OutrunError('USAGE', `-o ${rawKey}: unknown ssh_config keyword`, { hint: 'see ssh_config(5) for the keywords' });
    applyKeyword(ctx, key, value, where, rawKey);
  }

  // 2. The files.
  const files: { file: string; mustExist: boolean; relativeBase: string }[] = [];
  if (opts.configFile !== undefined) {
    if (opts.configFile.toLowerCase() !== 'none') {
      const f = expandTilde(opts.configFile, home, '-F');
      files.push({ file: f, mustExist: true, relativeBase: path.join(home, '.ssh') });
    }
  } else {
    files.push({ file: path.join(home, '.ssh', 'config'), mustExist: false, relativeBase: path.join(home, '.ssh') });
    if (systemConfigFile.toLowerCase() !== 'none')
      files.push({ file: systemConfigFile, mustExist: false, relativeBase: path.dirname(systemConfigFile) });
  }
  for (const f of files) readConfigFile(ctx, f.file, { ...f, depth: 0 });
  if (ctx.sawFinal) {
    ctx.finalPass = true;
    for (const f of files) readConfigFile(ctx, f.file, { ...f, depth: 0 });
  }

  // 3. Final values, defaults, tokens.
  const v = settings.values;
  const hostName = currentHostName(ctx, true).toLowerCase(); // as ssh: host names are lower-cased
  const user = v.get('user') ?? localUser;
  const port = Number(v.get('port') ?? '22');
  const hostKeyAlias = v.get('hostkeyalias');
  const proxyJump = settings.proxy?.kind === 'jump' && settings.proxy.value.toLowerCase() !== 'none' ? settings.proxy.value : undefined;
  const tokens = connectionTokens(ctx, hostName);
  const expandPath = (p: string, what: string): string => {
    const expanded = expandTilde(expandTokens(p, tokens, what), home, what);
    return path.isAbsolute(expanded) ? expanded : path.resolve(expanded);
  };

  const identityFilesAreDefault = settings.identityFiles.length === 0;
  const identityFiles = identityFilesAreDefault
    ? ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => path.join(home, '.ssh', n))
    : settings.identityFiles.map((f) => expandPath(f, 'IdentityFile'));

  const knownList = (key: string, defaults: string[], what: string): string[] => {
    const list = settings.lists.get(key);
    if (list === undefined) return defaults;
    if (list.length === 1 && list[0].toLowerCase() === 'none') return [];
    // As OpenSSH: GlobalKnownHostsFile takes no %-tokens.
    if (key === 'globalknownhostsfile') return list.map((f) => path.resolve(expandTilde(f, home, what)));
    return list.map((f) => expandPath(f, what));
  };
  const userKnownHostsFiles = knownList(
    'userknownhostsfile',
    [path.join(home, '.ssh', 'known_hosts'), path.join(home, '.ssh', 'known_hosts2')],
    'UserKnownHostsFile',
  );
  const globalKnownHostsFiles = knownList(
    'globalknownhostsfile',
    ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'],
    'GlobalKnownHostsFile',
  );

  const strictRaw = (v.get('stricthostkeychecking') ?? 'ask').toLowerCase();
  const strictHostKeyChecking: StrictHostKeyChecking =
    strictRaw === 'true' ? 'yes' : strictRaw === 'off' || strictRaw === 'false' ? 'no' : (strictRaw as StrictHostKeyChecking);

  const timeValue = (key: string, dflt: number): number => {
    const raw = v.get(key);
    if (raw === undefined) return dflt;
    if (raw.toLowerCase() === 'none') return 0;
    return parseTime(raw) ?? dflt;
  };

  let identityAgent: string | undefined;
  const agentRaw = v.get('identityagent');
  if (agentRaw === undefined || agentRaw === 'SSH_AUTH_SOCK') {
    identityAgent = env.SSH_AUTH_SOCK || undefined;
  } else if (agentRaw.toLowerCase() === 'none') {
    identityAgent = undefined;
  } else if (agentRaw.startsWith('$')) {
    identityAgent = env[agentRaw.slice(1)] || undefined;
    if (identityAgent === undefined) warn(`IdentityAgent ${agentRaw}: the variable is not set; not using an agent`);
  } else {
    identityAgent = expandPath(agentRaw, 'IdentityAgent');
  }

  let proxyCommand: string | undefined;
  if (settings.proxy?.kind === 'command' && settings.proxy.value.toLowerCase() !== 'none') {
    proxyCommand = expandTokens(settings.proxy.value, tokens, 'ProxyCommand');
  }

  const resolved: ResolvedHost = {
    host: opts.host,
    hostName,
    user,
    port,
    identityFiles,
    identityFilesAreDefault,
    identitiesOnly: yesNo(v.get('identitiesonly') ?? 'no', '', 'IdentitiesOnly'),
    userKnownHostsFiles,
    globalKnownHostsFiles,
    strictHostKeyChecking,
    connectTimeout: timeValue('connecttimeout', DEFAULT_CONNECT_TIMEOUT),
    serverAliveInterval: timeValue('serveraliveinterval', DEFAULT_SERVER_ALIVE_INTERVAL),
    serverAliveCountMax: Number(v.get('serveralivecountmax') ?? DEFAULT_SERVER_ALIVE_COUNT_MAX),
    batchMode: yesNo(v.get('batchmode') ?? 'no', '', 'BatchMode'),
    compression: yesNo(v.get('compression') ?? 'no', '', 'Compression'),
    sendEnv: settings.sendEnv,
    source: {
      ...(opts.configFile !== undefined ? { configFile: opts.configFile } : {}),
      home,
      localUser,
      systemConfigFile,
      env,
      warn,
    },
  };
  if (proxyJump !== undefined) resolved.proxyJump = proxyJump;
  if (proxyCommand !== undefined) resolved.proxyCommand = proxyCommand;
  if (hostKeyAlias !== undefined) resolved.hostKeyAlias = hostKeyAlias;
  if (identityAgent !== undefined) resolved.identityAgent = identityAgent;
  return resolved;
}

function safeUserName(): string {
  try {
    return os.userInfo().username;
  } catch {
    return process.env.USER ?? process.env.LOGNAME ?? 'root';
  }
}
