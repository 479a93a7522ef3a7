// Frames of a resumable channel, between the client (src/client/resumable-channel.ts) and
// the relay in front of a remote process (src/remote/relay.ts): a type byte, a stream
// byte, a 32-bit length, the payload. Stream 0 is the process's stdin, 1 its stdout, 2 its
// stderr; DATA and EOF carry the stream offset they start at (replay-buffer.ts).
export const ResumeFrame = {
  /** client -> relay, first on a new channel: JSON {secret, limitMs}. */
  OPEN: 1,
  /** relay -> client: JSON {socket}: where a later connection attaches. */
  OPENED: 2,
  /** client -> relay, first on an attach: JSON {secret, got: [stdout, stderr]}. */
  ATTACH: 3,
  /** relay -> client: JSON {got: stdin bytes taken}; then each side sends what the other lacks. */
  RESUMED: 4,
  /** offset (8 bytes) + bytes. */
  DATA: 5,
  /** offset (8 bytes). */
  EOF: 6,
  /** offset (8 bytes): everything below was taken. Also sent every second as a heartbeat. */
  ACK: 7,
  /** relay -> client: JSON {code, signal}, after both output streams ended. */
  EXIT: 8,
  /** client -> relay: done (after EXIT) or giving up: the relay ends the process and itself. */
  BYE: 9,
  /** relay -> client: JSON {message}: refused (bad secret, unknown session). */
  REFUSED: 10,
} as const;

const HEADER = 6;
/** No frame is larger (data is cut well below it). */
export const MAX_RESUME_FRAME = 1 << 20;

export function resumeFrame(type: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(HEADER);
  head.writeUInt8(type, 0);
  head.writeUInt8(stream, 1);
  head.writeUInt32BE(payload.length, 2);
  return Buffer.concat([head, payload]);
}

export const jsonResumeFrame = (type: number, value: unknown) => resumeFrame(type, 0, Buffer.from(JSON.stringify(value), 'utf8'));

const offsetBytes = (offset: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(offset));
  return b;
};

/** DATA frames for `data` at `offset`, cut to MAX_RESUME_FRAME. */
export function dataResumeFrames(stream: number, offset: number, data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const step = MAX_RESUME_FRAME - 8;
  for (let at = 0; at < data.length; at += step) {
    out.push(resumeFrame(ResumeFrame.DATA, stream, Buffer.concat([offsetBytes(offset + at), data.subarray(at, at + step)])));
  }
  return out;
}

export const offsetResumeFrame = (type: number, stream: number, offset: number) => resumeFrame(type, stream, offsetBytes(offset));

/** The offset at the head of a DATA, EOF or ACK payload. */
export function payloadOffset(payload: Buffer): number | Error {
  if (payload.length < 8) return new Error('short frame');
  const n = payload.readBigUInt64BE(0);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) return new Error('offset out of range');
  return Number(n);
}

export function parseJsonPayload<T>(payload: Buffer): T | Error {
  try {
    const v = JSON.parse(payload.toString('utf8')) as T;
    return v && typeof v === 'object' ? v : new Error('frame is not a JSON object');
  } catch {
    return new Error('frame is not JSON');
  }
}

/** Reassembles frames from a byte stream; an oversized frame is an error (the peer is not ours). */
export class ResumeFrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (type: number, stream: number, payload: Buffer) => void) {}

  push(chunk: Buffer): Error | undefined {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= HEADER) {
      const len = this.buf.readUInt32BE(2);
      if (len > MAX_RESUME_FRAME) return new Error(`frame of ${len} bytes`);
      if (this.buf.length < HEADER + len) break;
      const type = this.buf.readUInt8(0);
      const stream = this.buf.readUInt8(1);
      const payload = this.buf.subarray(HEADER, HEADER + len);
      this.buf = this.buf.subarray(HEADER + len);
      this.onFrame(type, stream, payload);
    }
    return undefined;
  }
}
