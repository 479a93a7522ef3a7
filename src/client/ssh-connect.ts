// The SSH connection: host key verification against known_hosts, authentication (agent, key
// files, OUTRUN_PASSWORD), ProxyJump and ProxyCommand, keepalives, Nagle off. ssh2 does the
// protocol; everything OpenSSH would decide from its configuration is decided here.

import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import { Duplex, type Readable } from 'node:stream';
import {
  BaseAgent,
  Client,
  OpenSSHAgent,
  utils,
  type AnyAuthMethod,
  type AuthenticationType,
  type ClientChannel,
  type ConnectConfig,
  type IdentityCallback,
  type KeyboardInteractiveCallback,
  type NextAuthHandler,
  type ParsedKey,
  type Prompt,
  type ServerHostKeyAlgorithm,
  type SignCallback,
  type SigningRequestOptions,
} from 'ssh2';
import { haveTerminal, readSecretFromTerminal } from './tty-prompt';
import { OutrunError } from './errors';
import {
  appendKnownHost,
  checkHostKey,
  fingerprintSha256,
  hostPortString,
  keyTypeLabel,
  keyTypeOfBlob,
  knownKeyTypes,
} from './known-hosts';
import { formatJumpHop, parseJumpChain, resolveSshConfig, type ResolvedHost } from './ssh-config';

export interface ConnectOptions {
  /** Number of -v: 1 logs the steps, 3 adds ssh2's own protocol debug lines. */
  verbose: number;
  /** Verbose log lines (never given secrets). */
  log: (msg: string) => void;
  /** Whether a user is at a terminal. Unused for now: StrictHostKeyChecking=ask acts as yes. */
  interactive: boolean;
  /** Warnings that are printed whatever the verbosity (default: resolved.source.warn). */
  warn?: (msg: string) => void;
  /** Environment for OUTRUN_PASSWORD (default: resolved.source.env). */
  env?: NodeJS.ProcessEnv;
}

/** ProxyJump chains longer than this are taken for a loop in the configuration. */
const MAX_JUMP_DEPTH = 8;

/** ssh2's default host key algorithms, in its order. */
const HOST_KEY_ALGORITHMS: ServerHostKeyAlgorithm[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/**
 * Offer the host key algorithms of the key types already known for the host first, as OpenSSH
 * does, so a server with several host keys presents the one we can check.
 */
export function orderHostKeyAlgorithms(knownTypes: readonly string[]): ServerHostKeyAlgorithm[] {
  const first: ServerHostKeyAlgorithm[] = [];
  for (const t of knownTypes) {
    const algos: ServerHostKeyAlgorithm[] =
      t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : HOST_KEY_ALGORITHMS.filter((a) => a === t);
    for (const a of algos) if (!first.includes(a)) first.push(a);
  }
  return [...first, ...HOST_KEY_ALGORITHMS.filter((a) => !first.includes(a))];
}

/** Connect and authenticate to `resolved` (through its ProxyJump/ProxyCommand, if any). */
export function connectSsh(resolved: ResolvedHost, opts: ConnectOptions): Promise<Client> {
  return connectHop(resolved, opts, 0);
}

function addrOf(r: ResolvedHost): string {
  return `${r.hostName} port ${r.port}`;
}

async function connectHop(resolved: ResolvedHost, opts: ConnectOptions, depth: number): Promise<Client> {
  if (depth > MAX_JUMP_DEPTH) {
    throw new OutrunError('PROXY_FAILED', `ProxyJump chain to ${resolved.hostName} is longer than ${MAX_JUMP_DEPTH} hops`, {
      hint: 'check the ssh config for a ProxyJump loop (e.g. `Host *` with ProxyJump matching the jump host itself)',
    });
  }
  if (resolved.proxyJump !== undefined) {
    const hops = parseJumpChain(resolved.proxyJump);
    if (!hops) {
      throw new OutrunError('SSH_CONFIG', `bad ProxyJump '${resolved.proxyJump}'`, { hint: 'expected [user@]host[:port][,...]' });
    }
    const last = hops[hops.length - 1];
    const earlier = hops.slice(0, -1);
    const src = resolved.source;
    // As `ssh -J`: the last jump host is reached through the earlier ones; each hop gets its own
    // settings from the same config files (not from our -o options).
    const hopResolved = resolveSshConfig({
      host: last.host,
      ...(last.user !== undefined ? { user: last.user } : {}),
      ...(last.port !== undefined ? { port: last.port } : {}),
      ...(src.configFile !== undefined ? { configFile: src.configFile } : {}),
      home: src.home,
      localUser: src.localUser,
      systemConfigFile: src.systemConfigFile,
      env: src.env,
      warn: src.warn,
      overrides: earlier.length ? { proxyjump: earlier.map(formatJumpHop).join(',') } : {},
    });
    opts.log(`connecting to jump host ${hopResolved.user}@${addrOf(hopResolved)} for ${resolved.hostName}`);
    const jump = await connectHop(hopResolved, opts, depth + 1);
    nudgeJumpHostNagle(jump, hopResolved, opts);
    let channel: ClientChannel;
    try {
      channel = await forwardOut(jump, resolved, hopResolved);
    } catch (err) {
      jump.end();
      throw err;
    }
    try {
      const client = await handshake(resolved, opts, { sock: channel, via: `via ${hopResolved.hostName}` });
      client.on('close', () => jump.end());
      jump.on('close', () => client.destroy());
      return client;
    } catch (err) {
      jump.end();
      throw err;
    }
  }
  if (resolved.proxyCommand !== undefined) {
    const proxy = startProxyCommand(resolved.proxyCommand, opts);
    try {
      const client = await handshake(resolved, opts, { sock: proxy.stream, via: 'via ProxyCommand', proxy });
      client.on('close', () => proxy.kill());
      return client;
    } catch (err) {
      proxy.kill();
      throw err;
    }
  }
  return handshake(resolved, opts, {});
}

/**
 * sshd turns Nagle off on its connection only once a session channel is opened (field notes,
 * NAGLE TRAP 2); a jump host only forwards, so every small message through it would wait ~40 ms.
 * Open (and at once end) one harmless exec channel so the jump host's sshd disables Nagle.
 */
function nudgeJumpHostNagle(jump: Client, hop: ResolvedHost, opts: ConnectOptions): void {
  try {
    jump.exec('true', (err, ch) => {
      if (err) {
        opts.log(`jump host ${hop.hostName}: no session channel (${err.message}); forwarding may be slow`);
        return;
      }
      ch.on('error', () => undefined);
      ch.stderr.resume();
      ch.resume();
      ch.end();
    });
  } catch (err) {
    opts.log(`jump host ${hop.hostName}: ${(err as Error).message}`);
  }
}

function forwardOut(jump: Client, target: ResolvedHost, hop: ResolvedHost): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    jump.forwardOut('127.0.0.1', 0, target.hostName, target.port, (err, channel) => {
      if (!err) {
        resolve(channel);
        return;
      }
      const reason = (err as Error & { reason?: number }).reason;
      if (reason === 1) {
        reject(
          new OutrunError('PROXY_FAILED', `jump host ${hop.hostName} refused to forward to ${addrOf(target)} (administratively prohibited)`, {
            hint: "the jump host's sshd must allow TCP forwarding (AllowTcpForwarding)",
            cause: err,
          }),
        );
      } else {
        reject(
          new OutrunError('SSH_CONNECT', `cannot connect to ${addrOf(target)} via jump host ${hop.hostName}: ${err.message}`, {
            hint: 'check the host name and port as seen from the jump host',
            cause: err,
          }),
        );
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------
// ProxyCommand

interface ProxyProcess {
  stream: Duplex;
  child: ChildProcess;
  /** Resolves with a description of how the command ended, or undefined if still running after ms. */
  ended(ms: number): Promise<string | undefined>;
  kill(): void;
}

/** A Duplex over a child's stdout (readable side) and stdin (writable side). */
class ChildStream extends Duplex {
  constructor(private readonly child: ChildProcess) {
    super();
    const out = child.stdout!;
    out.on('data', (d: Buffer) => {
      if (!this.push(d)) out.pause();
    });
    out.on('end', () => this.push(null));
    out.on('error', (err) => this.destroy(err));
    child.stdin!.on('error', (err) => this.destroy(err));
  }
  override _read(): void {
    this.child.stdout!.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.child.stdin!.write(chunk, cb);
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.child.stdin!.end(cb);
  }
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    cb(err);
  }
}

function startProxyCommand(command: string, opts: ConnectOptions): ProxyProcess {
  opts.log(`running ProxyCommand: ${command}`);
  // As ssh: `exec` so that the proxy itself is our child and gets our signals.
  const child = spawn('/bin/sh', ['-c', `exec ${command}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  let how: string | undefined;
  const done = new Promise<string>((resolve) => {
    child.on('error', (err) => {
      how = `could not be started: ${err.message}`;
      resolve(how);
    });
    child.on('exit', (code, signal) => {
      how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
      resolve(how);
    });
  });
  return {
    stream: new ChildStream(child),
    child,
    ended: (ms) =>
      how !== undefined
        ? Promise.resolve(how)
        : Promise.race([done, new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref())]),
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Identities

interface Identity {
  file: string;
  /** Usable private key (unencrypted). */
  key?: ParsedKey;
  /** Public key blob, when known (from the key or FILE.pub): selects agent keys for IdentitiesOnly. */
  pub?: Buffer;
  /** The file's bytes when the key needs a passphrase (asked on the terminal when it is tried). */
  encrypted?: Buffer;
}

/** A passphrase-protected key file, unlocked on the terminal when its turn comes. */
interface EncryptedKeyStep {
  type: 'encrypted-key';
  id: Identity;
}

/** Asks for the passphrase (three tries, as OpenSSH); the key, or undefined if not unlocked. */
function unlockKey(id: Identity, log: (msg: string) => void): ParsedKey | undefined {
  for (let attempt = 0; attempt < 3; attempt++) {
    const pass = readSecretFromTerminal(`Enter passphrase for key '${id.file}': `);
    if (pass === undefined || pass === '') return undefined;
    const parsed = firstKey(utils.parseKey(id.encrypted!, pass) as ParsedKey | ParsedKey[] | Error);
    if (!(parsed instanceof Error)) return parsed;
    log(`identity file ${id.file}: wrong passphrase`);
  }
  return undefined;
}

function firstKey(k: ParsedKey | ParsedKey[] | Error): ParsedKey | Error {
  return Array.isArray(k) ? (k[0] ?? new Error('no key in file')) : k;
}

function readPublicBlob(file: string): Buffer | undefined {
  try {
    const k = firstKey(utils.parseKey(fs.readFileSync(file)) as ParsedKey | ParsedKey[] | Error);
    return k instanceof Error ? undefined : k.getPublicSSH();
  } catch {
    return undefined;
  }
}

function loadIdentities(resolved: ResolvedHost, log: (msg: string) => void): Identity[] {
  const ids: Identity[] = [];
  for (const file of resolved.identityFiles) {
    let data: Buffer;
    try {
      data = fs.readFileSync(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (!(resolved.identityFilesAreDefault && code === 'ENOENT')) log(`identity file ${file}: ${code ?? (err as Error).message}`);
      continue;
    }
    const parsed = firstKey(utils.parseKey(data) as ParsedKey | ParsedKey[] | Error);
    if (parsed instanceof Error) {
      if (/passphrase/i.test(parsed.message)) {
        const pub = readPublicBlob(`${file}.pub`);
        // Asked for on the terminal when tried; without one (or in BatchMode) it is skipped.
        const askable = !resolved.batchMode && haveTerminal();
        log(`identity file ${file} is passphrase-protected: ${askable ? 'its passphrase is asked when it is tried' : 'skipped (no terminal to ask on, or BatchMode)'}`);
        ids.push({ file, ...(pub ? { pub } : {}), ...(askable ? { encrypted: data } : {}) });
      } else {
        log(`identity file ${file}: cannot be used (${parsed.message})`);
      }
      continue;
    }
    if (!parsed.isPrivateKey()) {
      // A public key file: only selects the matching agent key, as in OpenSSH.
      ids.push({ file, pub: parsed.getPublicSSH() });
      continue;
    }
    ids.push({ file, key: parsed, pub: parsed.getPublicSSH() });
  }
  return ids;
}

/** The agent, restricted to the given public keys (IdentitiesOnly), reporting what it offers. */
class SelectingAgent extends BaseAgent<ParsedKey> {
  constructor(
    private readonly inner: OpenSSHAgent,
    private readonly allow: Buffer[] | undefined,
    private readonly onKeys: (offered: ParsedKey[], total: number) => void,
  ) {
    super();
  }
  getIdentities(cb: IdentityCallback<ParsedKey>): void {
    this.inner.getIdentities((err, keys) => {
      if (err || !keys) {
        cb(err ?? new Error('no identities from agent'));
        return;
      }
      const all = keys as ParsedKey[];
      const allow = this.allow;
      const offered = allow ? all.filter((k) => allow.some((b) => b.equals(k.getPublicSSH()))) : all;
      this.onKeys(offered, all.length);
      cb(null, offered);
    });
  }
  sign(pubKey: ParsedKey, data: Buffer, options: SigningRequestOptions | SignCallback, cb?: SignCallback): void {
    if (typeof options === 'function') this.inner.sign(pubKey, data, options);
    else this.inner.sign(pubKey, data, options, cb);
  }
}

// ---------------------------------------------------------------------------------------------
// Errors

type Ssh2Error = Error & { level?: string; code?: string | number };

function connectError(resolved: ResolvedHost, err: Ssh2Error, via: string | undefined): OutrunError {
  const addr = `${addrOf(resolved)}${via ? ` (${via})` : ''}`;
  const code = typeof err.code === 'string' ? err.code : undefined;
  switch (code) {
    case 'ECONNREFUSED':
      return new OutrunError('SSH_CONNECT', `cannot connect to ${addr}: connection refused`, {
        hint: 'check the host and port (-p), and that sshd runs there',
        cause: err,
      });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
    case 'EAI_FAIL':
      return new OutrunError('SSH_CONNECT', `cannot resolve host name ${resolved.hostName}`, {
        hint: 'check the host name (and HostName in the ssh config) and DNS',
        cause: err,
      });
    case 'ETIMEDOUT':
      return new OutrunError('SSH_TIMEOUT', `connection to ${addr} timed out`, {
        hint: 'check the network and firewalls, or raise ConnectTimeout',
        cause: err,
      });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new OutrunError('SSH_CONNECT', `cannot connect to ${addr}: ${code === 'EHOSTUNREACH' ? 'no route to host' : 'network unreachable'}`, {
        hint: 'check the host address and the network',
        cause: err,
      });
    case 'ECONNRESET':
    case 'EPIPE':
      return new OutrunError('SSH_CONNECT', `connection to ${addr} was reset during the SSH handshake`, {
        hint: 'the server closed the connection; check that it is an SSH server and accepts us',
        cause: err,
      });
  }
  if (err.level === 'client-timeout') {
    return new OutrunError('SSH_TIMEOUT', `timed out connecting to ${addr} after ${resolved.connectTimeout} s`, {
      hint: 'check the network, or raise ConnectTimeout (-o ConnectTimeout=SECONDS)',
      cause: err,
    });
  }
  if (code === 'CLOSED' || err.message === 'Connection lost before handshake') {
    return new OutrunError('SSH_CONNECT', `connection to ${addr} was closed during the SSH handshake`, {
      hint: "the server or something on the way dropped it; check the address and the server's sshd logs",
      cause: err,
    });
  }
  if (err.level === 'handshake' || err.level === 'protocol') {
    return new OutrunError('SSH_CONNECT', `SSH handshake with ${addr} failed: ${err.message}`, {
      hint: 'check that the server speaks SSH and shares an algorithm with outrun',
      cause: err,
    });
  }
  return new OutrunError('SSH_CONNECT', `cannot connect to ${addr}: ${err.message}`, { cause: err });
}

// ---------------------------------------------------------------------------------------------
// One SSH connection

interface HandshakeExtra {
  sock?: Readable;
  via?: string;
  proxy?: ProxyProcess;
}

function handshake(resolved: ResolvedHost, opts: ConnectOptions, extra: HandshakeExtra): Promise<Client> {
  const { log } = opts;
  const warn = opts.warn ?? resolved.source.warn;
  const env = opts.env ?? resolved.source.env;
  const password = env.OUTRUN_PASSWORD ? env.OUTRUN_PASSWORD : undefined;
  const who = `${resolved.user}@${resolved.hostName}`;

  // Host key: known_hosts names the host by HostKeyAlias (without port) or by host[:port].
  const lookupHost = resolved.hostKeyAlias ?? resolved.hostName;
  const lookupPort = resolved.hostKeyAlias !== undefined ? 22 : resolved.port;
  const lookupName = hostPortString(lookupHost, lookupPort);
  const knownFiles = [...resolved.userKnownHostsFiles, ...resolved.globalKnownHostsFiles];
  const knownTypes = knownKeyTypes(knownFiles, lookupHost, lookupPort);
  let hostKeyError: OutrunError | undefined;
  let pendingAppend: Buffer | undefined;
  let passwordAllowed = true;

  const hostVerifier = (key: Buffer): boolean => {
    let keyType: string;
    try {
      keyType = keyTypeOfBlob(key);
    } catch {
      hostKeyError = new OutrunError('SSH_CONNECT', `${lookupName} sent a malformed host key`);
      return false;
    }
    const label = `${keyTypeLabel(keyType)} key ${fingerprintSha256(key)}`;
    const res = checkHostKey(knownFiles, lookupHost, lookupPort, key);
    const strict = resolved.strictHostKeyChecking;
    switch (res.status) {
      case 'match':
        log(`host key for ${lookupName}: ${label}, found in ${res.matchedFile}:${res.line}`);
        return true;
      case 'revoked':
        hostKeyError = new OutrunError('HOST_KEY_REVOKED', `the ${label} presented by ${lookupName} is marked as revoked in ${res.matchedFile}:${res.line}`, {
          hint: 'refusing to connect; ask the administrator of the host',
        });
        return false;
      case 'changed': {
        const known = (res.knownKeyTypes ?? []).map(keyTypeLabel).join(', ');
        if (strict === 'no') {
          warn(
            `WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED for ${lookupName} (now ${label}; ${res.matchedFile}:${res.line} has another ${known} key). ` +
              'Connecting anyway because StrictHostKeyChecking=no; password authentication is disabled.',
          );
          passwordAllowed = false;
          return true;
        }
        hostKeyError = new OutrunError(
          'HOST_KEY_CHANGED',
          `REMOTE HOST IDENTIFICATION HAS CHANGED: ${lookupName} now presents ${label}, but ${res.matchedFile}:${res.line} has a different ${known} key for it; ` +
            'someone could be eavesdropping on you right now (man-in-the-middle attack), or the host key has just been changed',
          { hint: `if the change is expected, remove the old key with: ssh-keygen -f '${res.matchedFile}' -R '${lookupName}'` },
        );
        return false;
      }
      case 'unknown': {
        if (strict === 'accept-new' || strict === 'no') {
          if (resolved.userKnownHostsFiles.length === 0) {
            warn(`accepting the ${label} of ${lookupName} without storing it (UserKnownHostsFile none)`);
          } else {
            pendingAppend = key; // written once the server has proven it holds the key
          }
          log(`host key for ${lookupName} is new: ${label} (StrictHostKeyChecking=${strict})`);
          return true;
        }
        const portFlag = resolved.port !== 22 ? `-p ${resolved.port} ` : '';
        hostKeyError = new OutrunError('HOST_KEY_UNKNOWN', `host key for ${lookupName} is not known (${label})`, {
          hint: `add it with \`ssh ${portFlag}${resolved.host}\` first or set StrictHostKeyChecking=accept-new`,
        });
        return false;
      }
    }
  };

  // Authentication, in OpenSSH's order: none (learns the methods), agent keys, key files,
  // keyboard-interactive and password (OUTRUN_PASSWORD only).
  const identities = loadIdentities(resolved, log);
  const agentBlobs: Buffer[] = [];
  const tried: string[] = [];
  let serverMethods: AuthenticationType[] | undefined;
  const queue: (AnyAuthMethod | EncryptedKeyStep)[] = [{ type: 'none', username: resolved.user }];
  if (resolved.identityAgent !== undefined) {
    const allow = resolved.identitiesOnly ? identities.flatMap((id) => (id.pub ? [id.pub] : [])) : undefined;
    const agent = new SelectingAgent(new OpenSSHAgent(resolved.identityAgent), allow, (offered, total) => {
      for (const k of offered) agentBlobs.push(k.getPublicSSH());
      log(`agent: offering ${offered.length} of ${total} key(s)${allow ? ' (IdentitiesOnly)' : ''}`);
    });
    queue.push({ type: 'agent', username: resolved.user, agent });
  }
  for (const id of identities) {
    if (id.key) queue.push({ type: 'publickey', username: resolved.user, key: id.key });
    else if (id.encrypted) queue.push({ type: 'encrypted-key', id });
  }
  if (password !== undefined) {
    let rounds = 0;
    queue.push({
      type: 'keyboard-interactive',
      username: resolved.user,
      prompt: (_name: string, _instr: string, _lang: string, prompts: Prompt[], finish: KeyboardInteractiveCallback) => {
        rounds++;
        // Answer hidden prompts with the password; give up after a few rounds (wrong password).
        if (rounds > 3) finish([]);
        else finish(prompts.map((p) => (p.echo ? '' : password)));
      },
    });
    queue.push({ type: 'password', username: resolved.user, password });
  }
  const describe = (m: AnyAuthMethod): string => {
    if (m.type === 'publickey') {
      const id = identities.find((i) => i.key === m.key);
      return `publickey ${id?.file ?? ''}`.trim();
    }
    return m.type === 'agent' ? 'publickey (agent)' : m.type;
  };
  let lastMethod: string | undefined;
  const authHandler = (authsLeft: AuthenticationType[] | null, _partial: boolean | null, next: NextAuthHandler): void => {
    if (authsLeft) serverMethods = authsLeft;
    while (queue.length) {
      let m = queue.shift()!;
      if (m.type === 'encrypted-key') {
        const { id } = m;
        if (authsLeft && !authsLeft.includes('publickey')) continue;
        if (id.pub && agentBlobs.some((b) => b.equals(id.pub!))) continue; // the agent already offered it
        const key = unlockKey(id, log);
        if (!key) continue;
        id.key = key;
        m = { type: 'publickey', username: resolved.user, key };
      }
      if (m.type === 'none') {
        if (authsLeft) continue;
      } else {
        const needed = m.type === 'agent' ? 'publickey' : m.type;
        if (authsLeft && !authsLeft.includes(needed)) continue;
        if ((m.type === 'password' || m.type === 'keyboard-interactive') && !passwordAllowed) continue;
        if (m.type === 'publickey') {
          const id = identities.find((i) => i.key === m.key);
          if (id?.pub && agentBlobs.some((b) => b.equals(id.pub!))) continue; // the agent already offered it
        }
      }
      lastMethod = describe(m);
      if (m.type !== 'none') {
        tried.push(lastMethod);
        log(`trying ${lastMethod} for ${who}`);
      }
      next(m);
      return;
    }
    next(false as unknown as AnyAuthMethod);
  };

  const knownAlgos = knownTypes.length ? orderHostKeyAlgorithms(knownTypes) : undefined;
  const config: ConnectConfig = {
    username: resolved.user,
    readyTimeout: resolved.connectTimeout * 1000,
    keepaliveInterval: resolved.serverAliveInterval * 1000,
    keepaliveCountMax: resolved.serverAliveCountMax,
    hostVerifier,
    authHandler: authHandler as unknown as ConnectConfig['authHandler'],
    ...(knownAlgos || resolved.compression
      ? {
          algorithms: {
            ...(knownAlgos ? { serverHostKey: knownAlgos } : {}),
            // -C / Compression yes, as OpenSSH: zlib after authentication, else zlib, else none.
            ...(resolved.compression ? { compress: ['zlib@openssh.com', 'zlib', 'none'] as const } : {}),
          },
        }
      : {}),
    ...(opts.verbose >= 3 ? { debug: (m: string) => log(`ssh2: ${m}`) } : {}),
  };
  if (extra.sock) config.sock = extra.sock;
  else {
    config.host = resolved.hostName;
    config.port = resolved.port;
  }

  log(`connecting to ${who} port ${resolved.port}${extra.via ? ` ${extra.via}` : ''}`);
  const client = new Client();
  return new Promise<Client>((resolve, reject) => {
    let settled = false;
    let failing = false;
    let sawHandshake = false;
    const fail = async (err: OutrunError | Ssh2Error): Promise<void> => {
      if (settled || failing) return;
      failing = true;
      let out: OutrunError;
      if (hostKeyError) out = hostKeyError;
      else if (err instanceof OutrunError) out = err;
      else if (err.level === 'client-authentication') {
        out = new OutrunError(
          'SSH_AUTH',
          `authentication to ${who} failed (tried: ${tried.length ? tried.join(', ') : 'nothing'}` +
            `${serverMethods ? `; server allows: ${serverMethods.join(',')}` : ''})`,
          { hint: 'check -i, the ssh agent and the remote authorized_keys', cause: err },
        );
      } else if (extra.proxy && !sawHandshake) {
        const how = await extra.proxy.ended(500);
        out = new OutrunError(
          'PROXY_FAILED',
          how
            ? `ProxyCommand for ${resolved.hostName} ${how} before the SSH handshake`
            : `connection to ${resolved.hostName} through ProxyCommand failed: ${err.message}`,
          { hint: 'run the ProxyCommand by hand to see why', cause: err },
        );
      } else out = connectError(resolved, err, extra.via);
      settled = true;
      client.destroy();
      reject(out);
    };
    client.on('handshake', () => {
      sawHandshake = true;
      if (pendingAppend) {
        const file = resolved.userKnownHostsFiles[0];
        try {
          appendKnownHost(file, lookupHost, lookupPort, pendingAppend);
          warn(`Permanently added '${lookupName}' (${keyTypeLabel(keyTypeOfBlob(pendingAppend))}) to the list of known hosts (${file})`);
        } catch (err) {
          warn(`could not add the host key of ${lookupName} to ${file}: ${(err as Error).message}`);
        }
        pendingAppend = undefined;
      }
    });
    client.on('banner', (msg: string) => log(`server banner: ${msg.trim()}`));
    client.on('error', (err: Ssh2Error) => {
      if (settled) {
        log(`connection to ${resolved.hostName}: ${err.message}`);
        return;
      }
      // Not fatal: ssh2 goes on with the next method.
      if (err.level === 'agent') {
        log(`agent: ${err.message}`);
        return;
      }
      if (err.level === 'client-authentication' && err.message !== 'All configured authentication methods failed') {
        log(`authentication: ${err.message}`);
        return;
      }
      void fail(err);
    });
    client.on('close', () => {
      if (!settled) {
        const e: Ssh2Error = new Error('connection closed during the SSH handshake');
        e.code = 'CLOSED';
        void fail(e);
      }
    });
    client.on('ready', () => {
      if (settled) return;
      settled = true;
      keepAliveOnAnyByte(client);
      log(`authenticated to ${who}${lastMethod ? ` with ${lastMethod}` : ''}`);
      resolve(client);
    });
    try {
      client.connect(config);
      // NAGLE TRAP 1, from the first byte: the handshake's small packets otherwise each wait
      // for the server's delayed ACK (40 ms a round trip, four of them in authentication).
      // A no-op when the transport is a channel or a pipe; Node applies it once connected.
      client.setNoDelay(true);
    } catch (err) {
      void fail(err as Ssh2Error);
    }
  });
}

/**
 * ssh2 counts a keepalive as answered only by its reply, and on a busy link that reply waits
 * behind everything the server queued before it (a channel window: seconds on a slow
 * link): a link that carries data would be declared dead. Any byte from the server proves
 * the link alive, as OpenSSH's ServerAlive counter is reset by any packet. This reaches into
 * two private members of ssh2's Client; if they are renamed, keepalives behave as before.
 */
function keepAliveOnAnyByte(client: Client): void {
  const c = client as unknown as { _resetKA?: () => void };
  const sock = sshSocket(client);
  if (!sock || typeof c._resetKA !== 'function') return;
  let last = 0;
  sock.on('data', () => {
    const now = performance.now();
    if (now - last < 1000) return;
    last = now;
    c._resetKA?.();
  });
}

/**
 * The stream ssh2 carries the connection over (a private member of its Client: a socket, or
 * a jump host's channel), or undefined if that member is renamed.
 */
export function sshSocket(client: Client): Duplex | undefined {
  const sock = (client as unknown as { _sock?: unknown })._sock;
  return sock instanceof Duplex ? sock : undefined;
}

/**
 * Holds the connection's transport: what is written to its channels until the returned
 * function runs goes out in one writev(2) (see unblocked-duplex.ts).
 */
export function corkSocket(client: Client): (() => void) | undefined {
  const sock = sshSocket(client);
  if (!sock || sock.destroyed) return undefined;
  sock.cork();
  return () => sock.uncork();
}
