// The local side's guess at what the remote will ask for next, sent in the reply to an open
// so that it costs no round trip: when an ELF program or library is opened, the libraries
// the dynamic loader will load (resolved as the local ld.so would: RPATH, LD_LIBRARY_PATH,
// RUNPATH, ld.so.cache, default directories; see library-resolver.ts), the symlinks and
// directories on the way to them, and the paths it will probe in vain. Contents come whole up
// to a budget per reply; what does not fit comes the usual way when it is opened.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { attrFromStats } from '../shared/attr';
import { LD_SO_PRELOAD_PATH, resolveLibraryClosure } from './library-resolver';
import { discoverCacheTags, pycacheCandidates } from './pycache';
import type { pb } from '../../wire/schema';

/** Bytes of file contents sent along with one open. */
export const PREFETCH_DATA_BUDGET = 16 * 1024 * 1024;
/** Largest single file sent along (the agent keeps whole files of up to 8 MiB in memory). */
const MAX_PREFETCH_FILE = 8 * 1024 * 1024;
const MAX_PROBES = 256;
const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);
const LD_SO_CACHE = '/etc/ld.so.cache';

export const isElf = (head: Buffer) => head.length >= 4 && head.subarray(0, 4).equals(ELF_MAGIC);

export async function prefetchLibraries(opened: string, env: Readonly<Record<string, string | undefined>>): Promise<pb.Prefetched.$Properties[]> {
  const closure = await resolveLibraryClosure(opened, { env }).catch(() => undefined);
  if (!closure?.ok) return [];
  const out: pb.Prefetched.$Properties[] = [];
  const seen = new Set<string>([opened]);
  let budget = PREFETCH_DATA_BUDGET;
  const stat = async (p: string) => fsp.lstat(p, { bigint: true }).catch(() => undefined);

  const dirs = async (p: string) => {
    for (let d = path.dirname(p); d !== '/' && !seen.has(d); d = path.dirname(d)) {
      seen.add(d);
      const st = await stat(d);
      if (st) out.push({ path: Buffer.from(d), attr: attrFromStats(st) });
    }
  };

  // The loader's own files come first: its cache, and its preload list (usually absent).
  for (const p of [LD_SO_CACHE, LD_SO_PRELOAD_PATH]) {
    if (seen.has(p)) continue;
    seen.add(p);
    await dirs(p);
    const st = await stat(p);
    if (!st) out.push({ path: Buffer.from(p), missing: true });
    else if (st.isFile() && Number(st.size) <= MAX_PREFETCH_FILE) {
      const data = await fsp.readFile(p).catch(() => undefined);
      out.push({ path: Buffer.from(p), attr: attrFromStats(st), ...(data && data.length === Number(st.size) ? { data } : {}) });
      budget -= data?.length ?? 0;
    }
  }

  for (const f of closure.value.files) {
    if (f.sameAs) continue;
    for (const hop of f.links) {
      if (seen.has(hop.path)) continue;
      seen.add(hop.path);
      await dirs(hop.path);
      const st = await stat(hop.path);
      if (st?.isSymbolicLink()) out.push({ path: Buffer.from(hop.path), attr: attrFromStats(st), linkTarget: Buffer.from(hop.target) });
    }
    const real = f.realPath ?? f.path;
    if (seen.has(real)) continue;
    seen.add(real);
    await dirs(real);
    const st = await stat(real);
    if (!st?.isFile()) continue;
    const entry: pb.Prefetched.$Properties = { path: Buffer.from(real), attr: attrFromStats(st) };
    const size = Number(st.size);
    if (size <= MAX_PREFETCH_FILE && size <= budget) {
      const data = await fsp.readFile(real).catch(() => undefined);
      // Sent only if it is still the file we stat'ed (same size); else its attributes alone.
      if (data && data.length === size) {
        entry.data = data;
        budget -= size;
      }
    }
    out.push(entry);
  }
  for (const probe of closure.value.probes.slice(0, MAX_PROBES)) {
    if (seen.has(probe)) continue;
    seen.add(probe);
    const absent = await fsp.lstat(probe).then(
      () => false,
      (err: NodeJS.ErrnoException) => err.code === 'ENOENT',
    );
    if (absent) out.push({ path: Buffer.from(probe), missing: true });
  }
  return out;
}

/** Largest bytecode file sent along with its source. */
const MAX_PYC = 512 * 1024;

/**
 * Python reads `dir/__pycache__/name.<tag>.pyc` right after it looks at `dir/name.py`: when
 * the local side is asked about a .py, its bytecode files (every interpreter tag present, no
 * optimisation levels beyond what exists) come along, with the __pycache__ directory.
 */
export async function prefetchBytecode(pyPath: string): Promise<pb.Prefetched.$Properties[]> {
  if (!pyPath.endsWith('.py')) return [];
  const tags = await discoverCacheTags(pyPath);
  if (tags.length === 0) return [];
  const out: pb.Prefetched.$Properties[] = [];
  const cacheDir = path.join(path.dirname(pyPath), '__pycache__');
  const dirSt = await fsp.lstat(cacheDir, { bigint: true }).catch(() => undefined);
  if (dirSt) out.push({ path: Buffer.from(cacheDir), attr: attrFromStats(dirSt) });
  for (const pyc of pycacheCandidates(pyPath, tags)) {
    const st = await fsp.lstat(pyc, { bigint: true }).catch(() => undefined);
    if (!st?.isFile() || Number(st.size) > MAX_PYC) continue;
    const data = await fsp.readFile(pyc).catch(() => undefined);
    out.push({ path: Buffer.from(pyc), attr: attrFromStats(st), ...(data && data.length === Number(st.size) ? { data } : {}) });
  }
  return out;
}

/** Bytes of sibling bytecode sent along with one .pyc open, and the largest file among them. */
const SIBLING_PYC_BUDGET = 1024 * 1024;
const MAX_SIBLING_PYC = 128 * 1024;

/**
 * Importing one module of a package usually imports its siblings next (json's decoder,
 * encoder and scanner; email's many parts): when a .pyc in a __pycache__ directory is opened,
 * the other bytecode files of the same interpreter there come along, smallest first, within a
 * budget. What does not fit is fetched when it is opened.
 */
export async function prefetchSiblingBytecode(pycPath: string): Promise<pb.Prefetched.$Properties[]> {
  const dir = path.dirname(pycPath);
  const base = path.basename(pycPath);
  const m = /\.([A-Za-z0-9_-]+)(\.opt-[12])?\.pyc$/.exec(base);
  if (path.basename(dir) !== '__pycache__' || !m) return [];
  const suffix = m[0];
  let names: string[];
  try {
    names = (await fsp.readdir(dir)).filter((n) => n !== base && n.endsWith(suffix) && !n.slice(0, -suffix.length).includes('.'));
  } catch {
    return [];
  }
  const files: { p: string; st: import('node:fs').BigIntStats }[] = [];
  for (const n of names) {
    const p = path.join(dir, n);
    const st = await fsp.lstat(p, { bigint: true }).catch(() => undefined);
    if (st?.isFile() && Number(st.size) <= MAX_SIBLING_PYC) files.push({ p, st });
  }
  files.sort((a, b) => Number(a.st.size - b.st.size));
  const out: pb.Prefetched.$Properties[] = [];
  let budget = SIBLING_PYC_BUDGET;
  for (const { p, st } of files) {
    const size = Number(st.size);
    if (size > budget) break;
    const data = await fsp.readFile(p).catch(() => undefined);
    if (!data || data.length !== size) continue;
    budget -= size;
    out.push({ path: Buffer.from(p), attr: attrFromStats(st), data });
  }
  return out;
}
