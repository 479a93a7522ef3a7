// The first bytes the client writes on the agent's channel, before any HTTP/2: the session
// token and where the session lives. It travels on the SSH channel's stdin so that the
// token never appears in argv, the environment or a file.
import type { Readable } from 'node:stream';
import { PROTOCOL_VERSION } from './schema';

export interface Preamble {
  protocol: number;
  /** Hex session token; the agent sends it back on every RPC. */
  token: string;
  /** The remote session directory (root-only), e.g. /run/outrun/s-0123. */
  sessionDir: string;
  /** The persistent cache of local system trees, if the user did not turn it off. */
  cache?: PreambleCache;
  /** Behind a relay: how long the client may be away (ms) before the session ends. */
  resumeMs?: number;
}

export interface PreambleCache {
  /** Names the local machine and user (hex): one store per key on the remote. */
  key: string;
  /** Local tree roots whose contents may be kept, e.g. /usr. */
  trees: string[];
  /** Bound on the kept contents' size. */
  maxBytes: number;
}

/** Whether a preamble's cache section is well-formed (it names a directory on the remote). */
export function validCache(c: unknown): c is PreambleCache {
  const x = c as PreambleCache;
  return (
    !!x &&
    typeof x.key === 'string' &&
    /^[0-9a-f]{16,64}$/.test(x.key) &&
    Array.isArray(x.trees) &&
    x.trees.every((t) => typeof t === 'string' && t.startsWith('/')) &&
    Number.isSafeInteger(x.maxBytes) &&
    x.maxBytes >= 0
  );
}

const MAGIC = Buffer.from('OUTRUN-PREAMBLE\n');
const MAX_PREAMBLE = 64 * 1024;

export function encodePreamble(p: Omit<Preamble, 'protocol'>): Buffer {
  const body = Buffer.from(JSON.stringify({ protocol: PROTOCOL_VERSION, ...p }));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(body.length);
  return Buffer.concat([MAGIC, len, body]);
}

/**
 * Reads the preamble from the stream and returns it with whatever bytes arrived after it
 * (the start of the HTTP/2 stream), leaving the stream paused.
 */
export function readPreamble(input: Readable): Promise<{ preamble: Preamble; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const done = (err: Error | null, value?: { preamble: Preamble; rest: Buffer }) => {
      input.off('data', onData);
      input.off('end', onEnd);
      input.off('error', onError);
      input.pause();
      if (err) reject(err);
      else resolve(value!);
    };
    const onEnd = () => done(new Error('channel closed before the session preamble arrived'));
    const onError = (err: Error) => done(err);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length < MAGIC.length + 4) return;
      if (!buf.subarray(0, MAGIC.length).equals(MAGIC)) return done(new Error('bad session preamble'));
      const len = buf.readUInt32BE(MAGIC.length);
      if (len > MAX_PREAMBLE) return done(new Error('session preamble too large'));
      const end = MAGIC.length + 4 + len;
      if (buf.length < end) return;
      let parsed: Preamble;
      try {
        parsed = JSON.parse(buf.subarray(MAGIC.length + 4, end).toString('utf8'));
      } catch {
        return done(new Error('session preamble is not valid JSON'));
      }
      if (!parsed || typeof parsed !== 'object' || typeof parsed.protocol !== 'number' || typeof parsed.token !== 'string' || typeof parsed.sessionDir !== 'string') {
        return done(new Error('session preamble is incomplete'));
      }
      done(null, { preamble: parsed, rest: buf.subarray(end) });
    };
    input.on('data', onData);
    input.on('end', onEnd);
    input.on('error', onError);
    input.resume();
  });
}
