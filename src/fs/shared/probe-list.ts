// The persistent cache's probes (path + fingerprint per entry) as one packed byte string:
// what the agent sends in Session.Hello and keeps at the head of its index file, so that a
// session starts without decoding the index or computing a fingerprint. Tens of thousands of
// entries would otherwise be as many protobuf sub-messages each way.
//
//   u32 count, then per probe: u16 path length, the path bytes, 8 fingerprint bytes
//   (big-endian).
import { FINGERPRINT_BYTES } from './fingerprint';

export interface Probe {
  path: Buffer;
  fingerprint: Buffer;
}

const MAX_PATH = 4095;

export function encodeProbes(probes: readonly Probe[]): Buffer {
  let size = 4;
  for (const p of probes) size += 2 + p.path.length + FINGERPRINT_BYTES;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32BE(probes.length, 0);
  let at = 4;
  for (const p of probes) {
    if (p.path.length > MAX_PATH || p.fingerprint.length !== FINGERPRINT_BYTES) throw new Error('probe out of bounds');
    out.writeUInt16BE(p.path.length, at);
    p.path.copy(out, at + 2);
    at += 2 + p.path.length;
    p.fingerprint.copy(out, at);
    at += FINGERPRINT_BYTES;
  }
  return out;
}

/** The probes, or an Error for bytes that are not a well-formed list of at most `max`. */
export function decodeProbes(bytes: Uint8Array | null | undefined, max: number): Probe[] | Error {
  if (!bytes || bytes.length === 0) return [];
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (buf.length < 4) return new Error('probe list truncated');
  const count = buf.readUInt32BE(0);
  if (count > max) return new Error(`probe list too long (${count} > ${max})`);
  const out: Probe[] = [];
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (at + 2 > buf.length) return new Error('probe list truncated');
    const len = buf.readUInt16BE(at);
    const end = at + 2 + len + FINGERPRINT_BYTES;
    if (len === 0 || len > MAX_PATH || end > buf.length) return new Error('probe list malformed');
    out.push({ path: buf.subarray(at + 2, at + 2 + len), fingerprint: buf.subarray(at + 2 + len, end) });
    at = end;
  }
  if (at !== buf.length) return new Error('probe list has trailing bytes');
  return out;
}
