// The uid an encoded exec spec (exec-spec.ts) runs its command as: a master reads it to
// serve only its own user's runs. undefined when the bytes are not a spec.
import { SPEC_MAGIC } from './exec-spec';

export function uidOfSpec(encoded: Buffer): number | undefined {
  if (encoded.length < 4 || encoded.readUInt32BE(0) !== encoded.length - 4) return undefined;
  const fields = encoded.subarray(4, Math.min(encoded.length, 4 + 64)).toString('latin1').split('\0');
  if (fields[0] !== SPEC_MAGIC || !/^[0-9]+$/.test(fields[1] ?? '')) return undefined;
  return Number(fields[1]);
}
