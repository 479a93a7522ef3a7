// The shared libraries a program will load, found the way glibc's ld.so finds them, so the
// local file server can send them before the remote loader asks for each in turn. For each
// DT_NEEDED name of each object, breadth first as ld.so loads them:
//   a name with a slash is opened as is; otherwise the DT_RPATH of the object and of the
//   objects that loaded it up to the executable (only while the object has no DT_RUNPATH),
//   LD_LIBRARY_PATH, the object's DT_RUNPATH, /etc/ld.so.cache, then the system dirs (the
//   last two skipped for DF_1_NODEFLIB objects).
// A name already loaded (by path, requested name or soname), or a file already loaded under
// another name (same dev:ino), is not loaded again. Candidates of the wrong class/machine
// are passed over, as the loader does.
// Not modelled: legacy-hwcap (non glibc-hwcaps) ld.so.cache entries are passed over; secure
// mode only drops LD_LIBRARY_PATH/LD_PRELOAD (not its DST and directory rules); dlopen()ed
// libraries are not predicted. Which glibc-hwcaps/legacy subdirs apply depends on the CPU that
// runs the program (the remote's): the caller passes them (hwcapsSubdirs, searchSubdirs).
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { DF_1_NODEFLIB, EM_386, EM_AARCH64, EM_ARM, EM_X86_64, ElfDeps, ElfError } from './elf';
import { readElfDepsCached } from './elf-deps-cache';
import { LD_SO_CACHE_PATH, cacheFlagsFor, loadLdSoCache, lookupLdSoCache } from './ld-so-cache';
import { LinkMemo, SymlinkHop, walkSymlinks } from './symlink-walk';

export interface ResolveOptions {
  /** The command's environment: LD_LIBRARY_PATH is taken from it. */
  env?: Readonly<Record<string, string | undefined>>;
  /** The command's working directory, for relative search dirs; without it they are skipped. */
  cwd?: string;
  /** Setuid-like (AT_SECURE) start: the loader then ignores LD_LIBRARY_PATH. */
  secure?: boolean;
  ldSoCachePath?: string;
  /** Libraries every program loads first (after LD_PRELOAD); missing file = none. */
  ldSoPreloadPath?: string;
  /**
   * glibc-hwcaps subdirectories the CPU that runs the program supports, best first (e.g.
   * x86-64-v3, x86-64-v2): they choose among ld.so.cache entries and, unless searchSubdirs
   * is given, are tried as <dir>/glibc-hwcaps/<name>/ before each search dir.
   */
  hwcapsSubdirs?: readonly string[];
  /** Subdirectories tried, in order, in each search dir before the dir itself (see glibcSearchSubdirs). */
  searchSubdirs?: readonly string[];
  /** Overrides of what the loader's build and the kernel decide. */
  systemDirs?: readonly string[];
  lib?: string;
  platform?: string;
  maxObjects?: number;
  maxDepth?: number;
}

export interface PrefetchFile {
  /** The path string the loader opens. */
  path: string;
  role: 'interp' | 'library';
  /** The DT_NEEDED name that brought it in (null for the interpreter). */
  neededAs: string | null;
  /** Path of the object whose DT_NEEDED it is (null for the interpreter). */
  neededBy: string | null;
  /** Symlinks the kernel follows opening `path`, in order, for readlink answers. */
  links: SymlinkHop[];
  realPath: string | null;
  /** Set when the file was already loaded under another path: the loader opens and drops it. */
  sameAs?: string;
}

export interface LibraryClosure {
  interp: string | null;
  /** The interpreter first, then libraries in load order. */
  files: PrefetchFile[];
  /** Just the paths of `files`, in the same order. */
  prefetchPaths: string[];
  /** Names the loader will not find (it fails on them at run time). */
  missing: { name: string; neededBy: string }[];
  /** Candidate paths tried and found absent: the loader's negative lookups, in its order. */
  probes: string[];
  /** Search directories found missing (the loader stats each once, then skips it). */
  absentDirs: string[];
  /** True when maxObjects/maxDepth cut the walk short. */
  truncated: boolean;
}

export type ResolveError = ElfError | { code: 'INVALID_PATH' | 'OPEN_FAILED' | 'INTERNAL'; message: string; cause?: unknown };
export type ResolveResult = { ok: true; value: LibraryClosure } | { ok: false; error: ResolveError };

export const DEFAULT_MAX_OBJECTS = 1024;
export const DEFAULT_MAX_DEPTH = 64;

/** Debian's multiarch triplet for an ABI: its ld.so searches /lib/<triplet>, /usr/lib/<triplet>. */
export function multiarchTriplet(elf: Pick<ElfDeps, 'elfClass' | 'machine' | 'flags' | 'endian'>): string | null {
  switch (elf.machine) {
    case EM_X86_64:
      return elf.elfClass === 64 ? 'x86_64-linux-gnu' : 'x86_64-linux-gnux32';
    case EM_386:
      return 'i386-linux-gnu';
    case EM_AARCH64:
      return elf.elfClass === 64 ? 'aarch64-linux-gnu' : null;
    case EM_ARM:
      return elf.flags & 0x400 ? 'arm-linux-gnueabihf' : 'arm-linux-gnueabi';
    case 21: // EM_PPC64
      return elf.endian === 'little' ? 'powerpc64le-linux-gnu' : 'powerpc64-linux-gnu';
    case 22: // EM_S390
      return elf.elfClass === 64 ? 's390x-linux-gnu' : null;
    case 243: // EM_RISCV
      return elf.elfClass === 64 ? 'riscv64-linux-gnu' : null;
    default:
      return null;
  }
}

/** The system search path of Debian 12's glibc for this ABI (what `ld.so --help` lists). */
export function systemDirsFor(elf: Pick<ElfDeps, 'elfClass' | 'machine' | 'flags' | 'endian'>): string[] {
  const t = multiarchTriplet(elf);
  return t ? [`/lib/${t}/`, `/usr/lib/${t}/`, '/lib/', '/usr/lib/'] : ['/lib/', '/usr/lib/'];
}

/** $LIB as Debian's glibc expands it (its libdir under /usr), by ABI. */
export function dstLibFor(elf: Pick<ElfDeps, 'elfClass' | 'machine' | 'flags' | 'endian'>): string {
  const t = multiarchTriplet(elf);
  return t ? `lib/${t}` : 'lib';
}

/**
 * $PLATFORM as glibc 2.36 sets it on x86-64: "haswell" or "xeon_phi" on Intel CPUs with
 * those features (cpu-features.c), else the kernel's "x86_64". From /proc/cpuinfo's text.
 */
export function glibcX86Platform(cpuinfo: string): string {
  const vendor = /^vendor_id\s*:\s*(\S+)/m.exec(cpuinfo)?.[1];
  const flags = new Set((/^flags\s*:(.*)$/m.exec(cpuinfo)?.[1] ?? '').trim().split(/\s+/));
  if (vendor !== 'GenuineIntel') return 'x86_64';
  if (flags.has('avx512cd') && flags.has('avx512er') && flags.has('avx512pf')) return 'xeon_phi';
  // LZCNT shows as "abm" in /proc/cpuinfo.
  const haswell = ['avx2', 'fma', 'bmi1', 'bmi2', 'abm', 'movbe', 'popcnt'].every((f) => flags.has(f));
  return haswell ? 'haswell' : 'x86_64';
}

let localX86Platform: string | undefined;
function x86Platform(): string {
  if (localX86Platform === undefined) {
    try {
      localX86Platform = glibcX86Platform(readFileSync('/proc/cpuinfo', 'utf8'));
    } catch {
      localX86Platform = 'x86_64';
    }
  }
  return localX86Platform;
}

/** $PLATFORM for a process of this ABI (this machine's CPU stands in for the remote's). */
export function dstPlatformFor(elf: Pick<ElfDeps, 'elfClass' | 'machine'>): string {
  switch (elf.machine) {
    case EM_X86_64:
      return x86Platform();
    case EM_386:
      return 'i686';
    case EM_AARCH64:
      return 'aarch64';
    default:
      return '';
  }
}

/**
 * The subdirectories glibc 2.36 (Debian 12) tries inside every search dir, in its order:
 * the glibc-hwcaps ones, then the legacy ones made of "tls", the platform and the legacy
 * hwcap names (every ordered subset, largest first, with and then without "tls"). Which
 * names apply depends on the CPU that runs the program: `ld.so --help` there lists them.
 */
export function glibcSearchSubdirs(opts: { hwcaps: readonly string[]; platform?: string | null; legacyHwcaps?: readonly string[]; tls?: boolean }): string[] {
  const out = opts.hwcaps.map((h) => `glibc-hwcaps/${h}`);
  const parts = [...(opts.platform ? [opts.platform] : []), ...(opts.legacyHwcaps ?? [])].slice(0, 8);
  const n = parts.length;
  const combos: string[] = [];
  for (let mask = (1 << n) - 1; mask >= 0; mask--) {
    combos.push(parts.filter((_p, i) => mask & (1 << (n - 1 - i))).join('/'));
  }
  const withTls = opts.tls === false ? [] : combos.map((c) => (c ? `tls/${c}` : 'tls'));
  for (const c of [...withTls, ...combos]) if (c !== '' && !out.includes(c)) out.push(c);
  return out;
}

const DST = /\$(?:\{(ORIGIN|LIB|PLATFORM)\}|(ORIGIN|LIB|PLATFORM)(?![A-Za-z0-9_]))/g;

/** Expand $ORIGIN/$LIB/$PLATFORM (and ${...}); null when $ORIGIN is needed but unknown. */
export function expandDst(s: string, values: { origin: string | null; lib: string; platform: string }): string | null {
  let unknown = false;
  const out = s.replace(DST, (_m, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare;
    if (name === 'ORIGIN') {
      if (values.origin === null) unknown = true;
      return values.origin ?? '';
    }
    return name === 'LIB' ? values.lib : values.platform;
  });
  return unknown ? null : out;
}

interface LoadedObject {
  path: string;
  deps: ElfDeps;
  loader: LoadedObject | null;
  depth: number;
  /** Directory for $ORIGIN. */
  origin: string | null;
}

interface Walk {
  opts: ResolveOptions;
  main: LoadedObject;
  lib: string;
  platform: string;
  cwd: string | null;
  probes: string[];
  probed: Set<string>;
  /** Search dirs (with subdir) known to exist or not: the loader skips missing ones after one miss. */
  dirExists: Map<string, boolean>;
}

/** Split a search path into directory prefixes ending in "/", as the loader builds them. */
function searchDirs(list: string, seps: RegExp, origin: string | null, w: Walk): string[] {
  const dirs: string[] = [];
  for (const raw of list.split(seps)) {
    let d = expandDst(raw, { origin, lib: w.lib, platform: w.platform });
    if (d === null) continue;
    if (d === '') d = '.'; // an empty element is the current directory
    if (!d.startsWith('/')) {
      if (w.cwd === null) continue;
      d = `${w.cwd.replace(/\/+$/, '')}/${d}`;
    }
    d = d.length > 1 ? d.replace(/\/+$/, '') : d;
    const withSlash = d === '/' ? '/' : `${d}/`;
    if (!dirs.includes(withSlash)) dirs.push(withSlash);
  }
  return dirs;
}

type Candidate = { kind: 'found'; path: string; fileId: string; deps: ElfDeps } | { kind: 'absent' } | { kind: 'unusable' };

/** Open a candidate as the loader would: absent, unusable (wrong ABI, not ELF), or found. */
async function tryCandidate(p: string, w: Walk): Promise<Candidate> {
  const r = await readElfDepsCached(p);
  if (!r.ok) {
    if (r.error.errno === 'ENOENT' || r.error.errno === 'ENOTDIR') {
      if (!w.probed.has(p)) {
        w.probed.add(p);
        w.probes.push(p);
      }
      return { kind: 'absent' };
    }
    return { kind: 'unusable' };
  }
  const res = r.value.result;
  if (!res.ok) return { kind: 'unusable' };
  const m = w.main.deps;
  const d = res.value;
  if (d.elfClass !== m.elfClass || d.endian !== m.endian || d.machine !== m.machine) return { kind: 'unusable' };
  return { kind: 'found', path: p, fileId: r.value.fileId, deps: d };
}

async function searchIn(dirs: string[], name: string, w: Walk): Promise<(Candidate & { kind: 'found' }) | null> {
  const subdirs = w.opts.searchSubdirs ?? (w.opts.hwcapsSubdirs ?? []).map((h) => `glibc-hwcaps/${h}`);
  for (const dir of dirs) {
    for (const where of [...subdirs.map((sub) => `${dir}${sub}/`), dir]) {
      if (w.dirExists.get(where) === false) continue;
      const c = await tryCandidate(`${where}${name}`, w);
      if (c.kind === 'found') return c;
      // Like ld.so: after a miss, look whether the directory is there at all, once.
      if (!w.dirExists.has(where)) w.dirExists.set(where, await isDirectory(where));
    }
  }
  return null;
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isDirectory();
  } catch {
    return false;
  }
}

/** Where the loader finds DT_NEEDED `name` of object `o`, or null. */
async function findLibrary(name: string, o: LoadedObject, w: Walk): Promise<(Candidate & { kind: 'found' }) | null> {
  const dstValues = { origin: o.origin, lib: w.lib, platform: w.platform };
  if (name.includes('/')) {
    let p = expandDst(name, dstValues);
    if (p === null) return null;
    if (!p.startsWith('/')) {
      if (w.cwd === null) return null;
      p = `${w.cwd.replace(/\/+$/, '')}/${p}`;
    }
    const c = await tryCandidate(p, w);
    return c.kind === 'found' ? c : null;
  }

  if (o.deps.runpath === null) {
    let didMain = false;
    for (let l: LoadedObject | null = o; l; l = l.loader) {
      if (l.deps.rpath === null || l.deps.runpath !== null) continue;
      const hit = await searchIn(searchDirs(l.deps.rpath, /:/, l.origin, w), name, w);
      if (hit) return hit;
      if (l === w.main) didMain = true;
    }
    const m = w.main;
    if (!didMain && m.deps.rpath !== null && m.deps.runpath === null) {
      const hit = await searchIn(searchDirs(m.deps.rpath, /:/, m.origin, w), name, w);
      if (hit) return hit;
    }
  }

  const llp = w.opts.env?.LD_LIBRARY_PATH;
  if (llp !== undefined && llp !== '' && !w.opts.secure) {
    const hit = await searchIn(searchDirs(llp, /[:;]/, w.main.origin, w), name, w);
    if (hit) return hit;
  }

  if (o.deps.runpath !== null) {
    const hit = await searchIn(searchDirs(o.deps.runpath, /:/, o.origin, w), name, w);
    if (hit) return hit;
  }

  if (o.deps.flags1 & DF_1_NODEFLIB) return null;

  const cache = await loadLdSoCache(w.opts.ldSoCachePath ?? LD_SO_CACHE_PATH);
  if (cache.ok) {
    const p = lookupLdSoCache(cache.value, name, cacheFlagsFor(w.main.deps), w.opts.hwcapsSubdirs ?? []);
    if (p !== null) {
      const c = await tryCandidate(p, w);
      if (c.kind === 'found') return c;
    }
  }

  const sys = w.opts.systemDirs ? searchDirs(w.opts.systemDirs.join(':'), /:/, null, w) : systemDirsFor(w.main.deps);
  return searchIn(sys, name, w);
}

/** `neededBy` of libraries from LD_PRELOAD or /etc/ld.so.preload. */
export const PRELOAD = '(preload)';
export const LD_SO_PRELOAD_PATH = '/etc/ld.so.preload';

/** LD_PRELOAD (ignored in secure mode), then /etc/ld.so.preload: the loader's order. */
async function preloadNames(opts: ResolveOptions): Promise<string[]> {
  const names: string[] = [];
  const env = opts.env?.LD_PRELOAD;
  if (env && !opts.secure) names.push(...env.split(/[ :]+/).filter((n) => n !== ''));
  try {
    const fh = await fsp.open(opts.ldSoPreloadPath ?? LD_SO_PRELOAD_PATH, 'r');
    try {
      const buf = Buffer.alloc(64 * 1024);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      names.push(...buf.toString('utf8', 0, bytesRead).split(/[\s:]+/).filter((n) => n !== ''));
    } finally {
      await fh.close().catch(() => undefined);
    }
  } catch {
    // No preload file: the usual case.
  }
  return names.slice(0, 256);
}

/**
 * The interpreter and shared libraries ld.so will open to start the ELF program or library
 * at absolute path `objectPath`, in load order. `deps` may be passed if already parsed.
 */
export async function resolveLibraryClosure(objectPath: string, opts: ResolveOptions = {}, deps?: ElfDeps): Promise<ResolveResult> {
  try {
    return await resolve(objectPath, opts, deps);
  } catch (err) {
    // Prefetching is an optimisation: a bug here must not take the file server down.
    return { ok: false, error: { code: 'INTERNAL', message: `library resolution of ${objectPath} failed: ${String(err)}`, cause: err } };
  }
}

async function resolve(objectPath: string, opts: ResolveOptions, deps?: ElfDeps): Promise<ResolveResult> {
  if (!path.isAbsolute(objectPath)) {
    return { ok: false, error: { code: 'INVALID_PATH', message: `${objectPath} is not an absolute path` } };
  }
  const mainWalk = await walkSymlinks(objectPath);
  let mainFileId: string | null = null;
  if (!deps) {
    const r = await readElfDepsCached(objectPath);
    if (!r.ok) return { ok: false, error: { code: 'OPEN_FAILED', message: r.error.message, cause: r.error.cause } };
    if (!r.value.result.ok) return { ok: false, error: r.value.result.error };
    deps = r.value.result.value;
    mainFileId = r.value.fileId;
  }
  // The executable's $ORIGIN comes from /proc/self/exe (symlinks resolved); a library's from
  // the path it was opened by.
  const mainOrigin = mainWalk.realPath ? path.dirname(mainWalk.realPath) : path.dirname(objectPath);
  const main: LoadedObject = { path: objectPath, deps, loader: null, depth: 0, origin: mainOrigin };
  const w: Walk = {
    opts,
    main,
    lib: opts.lib ?? dstLibFor(deps),
    platform: opts.platform ?? dstPlatformFor(deps),
    cwd: opts.cwd && path.isAbsolute(opts.cwd) ? opts.cwd : null,
    probes: [],
    probed: new Set(),
    dirExists: new Map(),
  };
  const maxObjects = opts.maxObjects ?? DEFAULT_MAX_OBJECTS;
  const maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;

  const byName = new Map<string, LoadedObject>();
  const byFile = new Map<string, LoadedObject>();
  const remember = (o: LoadedObject, fileId: string | null, ...names: (string | null)[]) => {
    for (const n of names) if (n !== null && !byName.has(n)) byName.set(n, o);
    if (fileId !== null && !byFile.has(fileId)) byFile.set(fileId, o);
  };
  remember(main, mainFileId, objectPath, deps.soname);

  // Symlink walks do not change the resolution: run them together at the end.
  const pending: Omit<PrefetchFile, 'links' | 'realPath'>[] = [];
  const addFile = (f: Omit<PrefetchFile, 'links' | 'realPath'>) => {
    pending.push(f);
  };

  let interp: string | null = deps.interp;
  if (interp !== null) {
    if (!interp.startsWith('/')) interp = w.cwd ? path.join(w.cwd, interp) : null;
  }
  if (interp !== null) {
    addFile({ path: interp, role: 'interp', neededAs: null, neededBy: null });
    // ld.so is loaded already: DT_NEEDED entries naming it (libc's) match its soname.
    const r = await readElfDepsCached(interp);
    const parsed = r.ok && r.value.result.ok ? r.value.result.value : null;
    const ldso: LoadedObject = { path: interp, deps: parsed ?? deps, loader: null, depth: 0, origin: path.dirname(interp) };
    remember(ldso, r.ok ? r.value.fileId : null, interp, parsed?.soname ?? null);
  }

  const missing: LibraryClosure['missing'] = [];
  let truncated = false;
  let loadedCount = 0;
  const queue: LoadedObject[] = [main];
  // Preloaded libraries are loaded by the executable before its DT_NEEDED; a missing one is
  // skipped with a warning by ld.so, not fatal.
  const preloads = await preloadNames(opts);
  const needsOf = (o: LoadedObject): { name: string; preload: boolean }[] => {
    const needed = o.deps.needed.map((name) => ({ name, preload: false }));
    return o === main ? [...preloads.map((name) => ({ name, preload: true })), ...needed] : needed;
  };
  for (let qi = 0; qi < queue.length; qi++) {
    const o = queue[qi]!;
    for (const { name, preload } of needsOf(o)) {
      if (byName.has(name)) continue;
      if (loadedCount >= maxObjects) {
        truncated = true;
        break;
      }
      const hit = await findLibrary(name, o, w);
      if (!hit) {
        missing.push({ name, neededBy: preload ? PRELOAD : o.path });
        continue;
      }
      const same = byFile.get(hit.fileId) ?? byName.get(hit.path);
      if (same) {
        remember(same, null, name);
        addFile({ path: hit.path, role: 'library', neededAs: name, neededBy: o.path, sameAs: same.path });
        continue;
      }
      const lib: LoadedObject = { path: hit.path, deps: hit.deps, loader: o, depth: o.depth + 1, origin: path.dirname(hit.path) };
      remember(lib, hit.fileId, name, hit.path, hit.deps.soname);
      loadedCount++;
      addFile({ path: hit.path, role: 'library', neededAs: name, neededBy: preload ? PRELOAD : o.path });
      if (lib.depth < maxDepth) queue.push(lib);
      else if (lib.deps.needed.length > 0) truncated = true;
    }
  }

  const memo: LinkMemo = new Map();
  const walks = await Promise.all(pending.map((f) => walkSymlinks(f.path, memo)));
  const files: PrefetchFile[] = pending.map((f, i) => ({ ...f, links: walks[i]!.links, realPath: walks[i]!.realPath }));
  const absentDirs = [...w.dirExists].filter(([, exists]) => !exists).map(([d]) => d);
  return { ok: true, value: { interp, files, prefetchPaths: files.map((f) => f.path), missing, probes: w.probes, absentDirs, truncated } };
}
