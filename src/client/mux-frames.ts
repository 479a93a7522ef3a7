// Frames on a master's socket, between a run attached to it and the master: a type byte, a
// 32-bit length, the payload. The master runs each attached command on its own SSH channel
// and carries its stdio, terminal size, signals and exit status in these frames.
export const Frame = {
  // run -> master
  /** JSON {version, key, request: 'run' | 'check' | 'exit'}: the first frame of every connection. */
  HELLO: 1,
  /** JSON length (4 bytes), JSON {pty}, then the encoded exec spec. */
  RUN: 2,
  STDIN: 3,
  STDIN_END: 4,
  /** JSON {rows, cols} */
  WINDOW: 5,
  /** A RemoteSignalName, utf8. */
  SIGNAL: 6,
  // master -> run
  /** JSON {pid}: the key was right. */
  WELCOME: 10,
  /** JSON {ready}: the helper is there and has the spec (ready: false, it printed why not). */
  STARTED: 11,
  STDOUT: 12,
  STDERR: 13,
  /** JSON {status}: the command's exit status (null: the channel ended without one). */
  STATUS: 14,
  /** JSON {code, message}: the master could not run it (nothing was started on the remote). */
  FAILED: 15,
} as const;

export const MUX_VERSION = 1;
/** No frame is larger (stdio is cut into pieces well below it). */
export const MAX_FRAME = 1 << 20;
const HEADER = 5;

export function frame(type: number, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const body = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
  const head = Buffer.alloc(HEADER);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

export const jsonFrame = (type: number, value: unknown) => frame(type, JSON.stringify(value));

/** Splits stdio data into frames no larger than MAX_FRAME. */
export function dataFrames(type: number, data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < data.length; at += MAX_FRAME) out.push(frame(type, data.subarray(at, at + MAX_FRAME)));
  return out;
}

export function runFrame(pty: unknown, spec: Buffer): Buffer {
  const json = Buffer.from(JSON.stringify({ pty }), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return frame(Frame.RUN, Buffer.concat([len, json, spec]));
}

export function parseRunFrame(payload: Buffer): { pty: unknown; spec: Buffer } | Error {
  if (payload.length < 4) return new Error('short RUN frame');
  const n = payload.readUInt32BE(0);
  if (4 + n > payload.length) return new Error('bad RUN frame');
  try {
    const { pty } = JSON.parse(payload.subarray(4, 4 + n).toString('utf8')) as { pty: unknown };
    return { pty, spec: payload.subarray(4 + n) };
  } catch {
    return new Error('RUN frame is not JSON');
  }
}

export function parseJson<T>(payload: Buffer): T | Error {
  try {
    return JSON.parse(payload.toString('utf8')) as T;
  } catch {
    return new Error('frame is not JSON');
  }
}

/** Reassembles frames from a byte stream; an oversized frame is an error (the peer is not ours). */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (type: number, payload: Buffer) => void) {}

  push(chunk: Buffer): Error | undefined {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= HEADER) {
      const len = this.buf.readUInt32BE(1);
      if (len > MAX_FRAME + 64 * 1024) return new Error(`frame of ${len} bytes`);
      if (this.buf.length < HEADER + len) break;
      const type = this.buf.readUInt8(0);
      const payload = this.buf.subarray(HEADER, HEADER + len);
      this.buf = this.buf.subarray(HEADER + len);
      this.onFrame(type, payload);
    }
    return undefined;
  }
}
