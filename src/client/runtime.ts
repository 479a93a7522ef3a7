// The runtime shipped to the remote: a directory (node, its shared libraries and dynamic loader,
// fuse-kernel.node, agent.js, outrun-helper) described by manifest.json. It is built by
// scripts/build-runtime.mjs into dist/runtime/ and is content-addressed by its manifest id.

import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OutrunError } from './errors';
import { shellQuote } from './shell-quote';

export interface RuntimeFile {
  sha256: string;
  size: number;
  /** Permission bits, e.g. 0o755 (493). */
  mode: number;
}

export interface LocalRuntime {
  /** Absolute path of the local runtime directory (dist/runtime). */
  dir: string;
  /** Content id: first 32 hex chars of sha256(canonical JSON of files). */
  id: string;
  /** `uname -m` spelling of the architecture the runtime was built for: x86_64, aarch64. */
  machine: string;
  /** Relative path (forward slashes) => file facts. */
  files: Record<string, RuntimeFile>;
  /** Basename of the dynamic loader shipped in lib/, e.g. ld-linux-x86-64.so.2. */
  loader: string;
}

export const MANIFEST_VERSION = 1;

/** JSON with object keys sorted at every level and no whitespace. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** The runtime id: identical file contents, sizes and modes give the identical id. */
export function manifestId(files: Record<string, RuntimeFile>): string {
  return createHash('sha256').update(canonicalJson(files)).digest('hex').slice(0, 32);
}

/** `uname -m` spelling of a Node `process.arch`, or undefined if outrun has no runtime for it. */
export function unameMachine(arch: string = process.arch): string | undefined {
  switch (arch) {
    case 'x64':
      return 'x86_64';
    case 'arm64':
      return 'aarch64';
    default:
      return undefined;
  }
}

/** dist/runtime, next to the compiled dist/src/client/runtime.js. */
export function defaultRuntimeDir(): string {
  return path.resolve(__dirname, '../../runtime');
}

const LOADER_RE = /^lib\/(ld-[^/]*\.so(?:\.[0-9]+)*)$/;

/** Read and check dist/runtime/manifest.json. */
export function loadLocalRuntime(distDir: string = defaultRuntimeDir()): LocalRuntime {
  const dir = path.resolve(distDir);
  const manifestPath = path.join(dir, 'manifest.json');
  const missing = (why: string, cause?: unknown): OutrunError =>
    new OutrunError('RUNTIME_MISSING', `the outrun runtime in ${dir} ${why}`, { hint: 'run npm run build', cause });
  let text: string;
  try {
    text = fs.readFileSync(manifestPath, 'utf8');
  } catch (err) {
    throw missing(
      (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing (no manifest.json)' : 'cannot be read',
      err,
    );
  }
  let m: { version?: unknown; id?: unknown; machine?: unknown; files?: unknown };
  try {
    m = JSON.parse(text);
  } catch (err) {
    throw missing('has a corrupt manifest.json', err);
  }
  if (m.version !== MANIFEST_VERSION) throw missing(`has manifest version ${String(m.version)}, expected ${MANIFEST_VERSION}`);
  if (typeof m.id !== 'string' || typeof m.machine !== 'string' || !m.files || typeof m.files !== 'object') {
    throw missing('has an incomplete manifest.json');
  }
  const files: Record<string, RuntimeFile> = {};
  for (const [rel, f] of Object.entries(m.files as Record<string, Partial<RuntimeFile>>)) {
    const ok =
      typeof f?.sha256 === 'string' &&
      /^[0-9a-f]{64}$/.test(f.sha256) &&
      Number.isSafeInteger(f.size) &&
      Number.isInteger(f.mode) &&
      !rel.startsWith('/') &&
      !rel.split('/').some((c) => c === '' || c === '.' || c === '..');
    if (!ok) throw missing(`has a bad manifest entry for ${JSON.stringify(rel)}`);
    files[rel] = { sha256: f.sha256!, size: f.size!, mode: f.mode! };
  }
  if (manifestId(files) !== m.id) throw missing('has a manifest whose id does not match its files');
  const loaders = Object.keys(files)
    .map((rel) => LOADER_RE.exec(rel)?.[1])
    .filter((x): x is string => x !== undefined);
  if (loaders.length !== 1) throw missing(`has ${loaders.length} dynamic loaders in lib/, expected 1`);
  for (const need of ['node', 'agent.js', 'outrun-helper', 'fuse-kernel.node']) {
    if (!files[need]) throw missing(`lacks ${need}`);
  }
  return { dir, id: m.id, machine: m.machine, files, loader: loaders[0]! };
}

/** The runtimes this outrun can ship, by architecture (uname -m): this machine's (dist/runtime)
 * and the cross-built ones beside it (dist/runtime-<machine>, scripts/runtime-targets.mjs). */
export interface RuntimeSet {
  /** This machine's: the one a chroot run's programs match. */
  local: LocalRuntime;
  byMachine: Record<string, LocalRuntime>;
}

export function runtimeSetOf(local: LocalRuntime, others: LocalRuntime[] = []): RuntimeSet {
  const byMachine: Record<string, LocalRuntime> = {};
  for (const rt of [...others, local]) byMachine[rt.machine] = rt;
  return { local, byMachine };
}

/** dist/runtime and every dist/runtime-<machine> that has a manifest (a broken one is an error,
 * an absent one just means that architecture is not supported by this build). */
export function loadRuntimes(distDir: string = defaultRuntimeDir()): RuntimeSet {
  const local = loadLocalRuntime(distDir);
  const parent = path.dirname(path.resolve(distDir));
  const base = path.basename(path.resolve(distDir));
  const others: LocalRuntime[] = [];
  for (const name of fs.readdirSync(parent)) {
    const m = new RegExp(`^${base}-([a-z0-9_]+)$`).exec(name);
    if (!m || m[1] === local.machine || !fs.existsSync(path.join(parent, name, 'manifest.json'))) continue;
    const rt = loadLocalRuntime(path.join(parent, name));
    if (rt.machine !== m[1]) throw new OutrunError('RUNTIME_MISSING', `the outrun runtime in ${rt.dir} is for ${rt.machine}, not ${m[1]}`, { hint: 'run npm run build' });
    others.push(rt);
  }
  return runtimeSetOf(local, others);
}

/** Each runtime's id and size, by architecture (what the probe and its judgement need). */
export function runtimeFacts(set: RuntimeSet): Record<string, { id: string; bytes: number }> {
  return Object.fromEntries(
    Object.entries(set.byMachine).map(([m, rt]) => [m, { id: rt.id, bytes: Object.values(rt.files).reduce((a, f) => a + f.size, 0) }]),
  );
}

/** The command line that starts the agent from a runtime directory on the remote. */
export function agentCommand(remoteDir: string, sessionDir: string, loaderName: string, as?: { uid: number; gid: number }): string {
  return shellQuote(agentArgv(remoteDir, sessionDir, loaderName, as));
}

/** The argv of agentCommand (what a relay runs, src/remote/relay.ts). */
export function agentArgv(remoteDir: string, sessionDir: string, loaderName: string, as?: { uid: number; gid: number }): string[] {
  const d = remoteDir.replace(/\/+$/, '');
  return [
    `${d}/outrun-helper`,
    'agent',
    sessionDir,
    // A rootless session: the local ids its user namespace maps to the login's.
    ...(as ? ['--as', `${as.uid}:${as.gid}`] : []),
    '--',
    `${d}/lib/${loaderName}`,
    '--library-path',
    `${d}/lib`,
    `${d}/node`,
    // V8 grows its heap by up to 4x the live data before a full collection; this caps it at
    // 2x. A `find /` of 440k names peaked at 347 MB with it and the trimmed node table, 762 MB
    // before both (scripts/bench-memory find).
    '--optimize-for-size',
    `${d}/agent.js`,
  ];
}

/** The argv that runs the runtime's node (through its own loader) on the remote. */
export function nodeArgv(remoteDir: string, loaderName: string): string[] {
  const d = remoteDir.replace(/\/+$/, '');
  return [`${d}/lib/${loaderName}`, '--library-path', `${d}/lib`, `${d}/node`];
}
