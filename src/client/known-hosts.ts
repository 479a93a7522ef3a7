// known_hosts(5): is this the key we expect for this host? ssh2 leaves that to its caller.
//
// Format: `[@marker] hostpatterns keytype base64-key [comment]`.
// - hostpatterns: comma-separated, `*`/`?` wildcards, `!` negation, `[host]:port` for ports other
//   than 22, or one hashed name `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`.
// - @revoked: this key must never be accepted for the matching hosts.
// - @cert-authority: a CA key for host certificates; never matches a plain host key here.
// A host with known keys that presents a different one is 'changed', whatever the key types
// (outrun orders its host key algorithms so that a known type is negotiated when the server has one).

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { matchPatternList } from './ssh-config';

export type HostKeyStatus = 'match' | 'unknown' | 'changed' | 'revoked';

export interface HostKeyCheck {
  status: HostKeyStatus;
  /** match: where the key was found; changed: the known (offending) entry; revoked: the @revoked line. */
  matchedFile?: string;
  /** 1-based line number in matchedFile. */
  line?: number;
  /** Key types known for this host (changed/match), e.g. ['ssh-ed25519']. */
  knownKeyTypes?: string[];
}

export interface KnownHostEntry {
  marker?: 'revoked' | 'cert-authority';
  /** The raw host field. */
  hosts: string;
  keyType: string;
  key: Buffer;
  line: number;
}

/** The key type named in an SSH public key blob (its first string), e.g. 'ssh-ed25519'. */
export function keyTypeOfBlob(blob: Buffer): string {
  if (blob.length < 4) throw new Error('malformed SSH public key blob');
  const len = blob.readUInt32BE(0);
  if (len === 0 || 4 + len > blob.length) throw new Error('malformed SSH public key blob');
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** `SHA256:...` as ssh prints it. */
export function fingerprintSha256(blob: Buffer): string {
  return `SHA256:${crypto.createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** ED25519, ECDSA, RSA, ... as OpenSSH names key types in messages. */
export function keyTypeLabel(keyType: string): string {
  if (keyType === 'ssh-ed25519') return 'ED25519';
  if (keyType.startsWith('ecdsa-sha2-')) return 'ECDSA';
  if (keyType === 'ssh-rsa') return 'RSA';
  if (keyType === 'ssh-dss') return 'DSA';
  return keyType;
}

/** The name known_hosts stores for a host: `host` on port 22, `[host]:port` otherwise; lower-cased. */
export function hostPortString(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** A hashed host name `|1|salt|hash` (what `ssh-keygen -H` and HashKnownHosts write). */
export function hashHostName(name: string, salt: Buffer = crypto.randomBytes(20)): string {
  const mac = crypto.createHmac('sha1', salt).update(name).digest();
  return `|1|${salt.toString('base64')}|${mac.toString('base64')}`;
}

function hashedNameMatches(hashed: string, name: string): boolean {
  const parts = hashed.split('|');
  // ['', '1', salt, hash]
  if (parts.length !== 4 || parts[0] !== '' || parts[1] !== '1') return false;
  const salt = Buffer.from(parts[2], 'base64');
  const want = Buffer.from(parts[3], 'base64');
  if (salt.length === 0 || want.length !== 20) return false;
  const got = crypto.createHmac('sha1', salt).update(name).digest();
  return crypto.timingSafeEqual(got, want);
}

/** Does a known_hosts host field match this `host` / `[host]:port` name? */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|')) return hashedNameMatches(field, name);
  return matchPatternList(field.split(','), name);
}

/** Parse one known_hosts line; null for blank lines, comments and lines that cannot be used. */
export function parseKnownHostsLine(text: string, line = 0): KnownHostEntry | null {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed.startsWith('#')) return null;
  const fields = trimmed.split(/[ \t]+/);
  let marker: KnownHostEntry['marker'];
  if (fields[0].startsWith('@')) {
    const m = fields.shift()!;
    if (m === '@revoked') marker = 'revoked';
    else if (m === '@cert-authority') marker = 'cert-authority';
    else return null; // unknown marker
  }
  if (fields.length < 3) return null;
  const [hosts, keyType, b64] = fields;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return null;
  const key = Buffer.from(b64, 'base64');
  try {
    if (keyTypeOfBlob(key) !== keyType) return null;
  } catch {
    return null;
  }
  return { ...(marker ? { marker } : {}), hosts, keyType, key, line };
}

function readEntries(file: string): KnownHostEntry[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return []; // missing or unreadable: nothing known from it (as OpenSSH)
  }
  const entries: KnownHostEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const e = parseKnownHostsLine(lines[i], i + 1);
    if (e) entries.push(e);
  }
  return entries;
}

/** Non-revoked, non-CA key types known for host:port across the files (for algorithm ordering). */
export function knownKeyTypes(files: readonly string[], host: string, port: number): string[] {
  const name = hostPortString(host, port);
  const types: string[] = [];
  for (const file of files) {
    for (const e of readEntries(file)) {
      if (e.marker) continue;
      if (!hostFieldMatches(e.hosts, name)) continue;
      if (!types.includes(e.keyType)) types.push(e.keyType);
    }
  }
  return types;
}

/**
 * Check `keyBlob` (the raw SSH public key blob the server presented) for host:port against the
 * files (user files first, then global ones). A revoked key anywhere wins; then a match anywhere;
 * then any other known key for the host means 'changed'; otherwise 'unknown'.
 */
export function checkHostKey(files: readonly string[], host: string, port: number, keyBlob: Buffer): HostKeyCheck {
  const name = hostPortString(host, port);
  const presentedType = keyTypeOfBlob(keyBlob);
  let match: { file: string; line: number } | undefined;
  let sameTypeOther: { file: string; line: number } | undefined;
  let anyOther: { file: string; line: number } | undefined;
  const types: string[] = [];
  for (const file of files) {
    for (const e of readEntries(file)) {
      if (e.marker === 'cert-authority') continue;
      if (!hostFieldMatches(e.hosts, name)) continue;
      const same = e.key.equals(keyBlob);
      if (e.marker === 'revoked') {
        if (same) return { status: 'revoked', matchedFile: file, line: e.line };
        continue;
      }
      if (!types.includes(e.keyType)) types.push(e.keyType);
      if (same) {
        match ??= { file, line: e.line };
      } else if (e.keyType === presentedType) {
        sameTypeOther ??= { file, line: e.line };
      } else {
        anyOther ??= { file, line: e.line };
      }
    }
  }
  if (match) return { status: 'match', matchedFile: match.file, line: match.line, knownKeyTypes: types };
  const offending = sameTypeOther ?? anyOther;
  if (offending) return { status: 'changed', matchedFile: offending.file, line: offending.line, knownKeyTypes: types };
  return { status: 'unknown' };
}

/**
 * Append a hashed entry for host:port to `file` (mode 0600 when created; its directory is created
 * 0700 when missing), as ssh does for StrictHostKeyChecking=accept-new.
 */
export function appendKnownHost(file: string, host: string, port: number, keyBlob: Buffer): void {
  const keyType = keyTypeOfBlob(keyBlob);
  const line = `${hashHostName(hostPortString(host, port))} ${keyType} ${keyBlob.toString('base64')}\n`;
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const fd = fs.openSync(file, 'a+', 0o600);
  try {
    const size = fs.fstatSync(fd).size;
    let prefix = '';
    if (size > 0) {
      const last = Buffer.alloc(1);
      fs.readSync(fd, last, 0, 1, size - 1);
      if (last[0] !== 0x0a) prefix = '\n';
    }
    fs.writeSync(fd, prefix + line);
  } finally {
    fs.closeSync(fd);
  }
}
