// What a master reads of an encoded exec spec (exec-spec.ts): the uid its command runs as (it
// serves only its own user's runs) and its view (a remote of another architecture may take
// --no-chroot runs only). undefined when the bytes are not a spec.
import { SPEC_MAGIC } from './exec-spec';

export function uidOfSpec(encoded: Buffer): number | undefined {
  if (encoded.length < 4 || encoded.readUInt32BE(0) !== encoded.length - 4) return undefined;
  const fields = encoded.subarray(4, Math.min(encoded.length, 4 + 64)).toString('latin1').split('\0');
  if (fields[0] !== SPEC_MAGIC || !/^[0-9]+$/.test(fields[1] ?? '')) return undefined;
  return Number(fields[1]);
}

/** The spec's view: 'chroot' (the local tree as /) or 'host' (--no-chroot). */
export function viewOfSpec(encoded: Buffer): 'chroot' | 'host' | undefined {
  if (uidOfSpec(encoded) === undefined) return undefined;
  // Fields: magic, uid, gid, umask, cwd, view, ...
  let at = 4;
  for (let i = 0; i < 5; i++) {
    const nul = encoded.indexOf(0, at);
    if (nul < 0) return undefined;
    at = nul + 1;
  }
  const end = encoded.indexOf(0, at);
  const view = encoded.subarray(at, end < 0 ? at : end).toString('latin1');
  return view === 'chroot' || view === 'host' ? view : undefined;
}
