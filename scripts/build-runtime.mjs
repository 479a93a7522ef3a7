#!/usr/bin/env node
// Builds the runtime that outrun ships to a bare remote, into dist/runtime/ (this machine's
// architecture) or dist/runtime-<machine>/ (another one, e.g. dist/runtime-aarch64 on x86_64):
//
//   node                      copy of the local node binary (process.execPath); for another
//                             architecture, Node from the npm registry's per-platform package
//   lib/<ld.so>               the dynamic loader (basename of node's PT_INTERP)
//   lib/*.so*                 every shared library node needs (ldd on this machine; for another
//                             architecture, the DT_NEEDED closure from Debian's cross libraries)
//   fuse-kernel.node          the agent's FUSE addon, from scripts/build-addon.sh (rerun here
//                             only when dist/runtime-addon/fuse-kernel.node is older than its sources)
//   agent.js                  esbuild bundle of src/remote/agent.ts
//   outrun-helper             static binary from scripts/build-helper.sh (rerun here only when
//                             dist/runtime-helper/outrun-helper is older than its sources)
//   manifest.json             { version, id, machine, files: { rel: { sha256, size, mode } } }
//
// The id is the first 32 hex chars of sha256(canonical JSON of files): identical content gives
// the identical id (src/client/runtime.ts computes it the same way and checks it on load).
//
// Usage: node scripts/build-runtime.mjs [--machine=M] [--agent-entry=FILE] [--agent-bundle=FILE] [--helper=FILE] [--out=DIR]
//   --machine      build for M (x86_64, aarch64: scripts/runtime-targets.mjs), default this machine
//   --agent-entry  bundle FILE instead of src/remote/agent.ts (testing)
//   --agent-bundle take an already bundled agent.js (an installed package has no esbuild)
//   --helper       take a prebuilt outrun-helper instead of running scripts/build-helper.sh
// Importable: `import { buildRuntime } from './build-runtime.mjs'`.

import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { NODE_VERSION, TARGETS, machineOfArch } from './runtime-targets.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MANIFEST_VERSION = 1;
const CACHE_NAME = '.build-cache.json';

class BuildError extends Error {}

function canonicalJson(value) {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const keys = Object.keys(value).filter((k) => value[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
}

function sha256File(file) {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 << 20);
    for (;;) {
      const n = fs.readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

/** The PT_INTERP of an ELF file (the dynamic loader it asks for), or undefined if static. */
function elfInterpreter(file) {
  const fd = fs.openSync(file, 'r');
  try {
    const hdr = Buffer.alloc(64);
    fs.readSync(fd, hdr, 0, 64, 0);
    if (hdr.readUInt32BE(0) !== 0x7f454c46) throw new BuildError(`${file} is not an ELF file`);
    const is64 = hdr[4] === 2;
    const le = hdr[5] === 1;
    const u16 = (b, o) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const u32 = (b, o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const uN = (b, o) => (is64 ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : u32(b, o));
    const phoff = uN(hdr, is64 ? 0x20 : 0x1c);
    const phentsize = u16(hdr, is64 ? 0x36 : 0x2a);
    const phnum = u16(hdr, is64 ? 0x38 : 0x2c);
    const ph = Buffer.alloc(phentsize * phnum);
    fs.readSync(fd, ph, 0, ph.length, phoff);
    for (let i = 0; i < phnum; i++) {
      const e = ph.subarray(i * phentsize);
      if (u32(e, 0) !== 3 /* PT_INTERP */) continue;
      const off = uN(e, is64 ? 0x08 : 0x04);
      const size = uN(e, is64 ? 0x20 : 0x10);
      const s = Buffer.alloc(size);
      fs.readSync(fd, s, 0, size, off);
      return s.toString('latin1').replace(/\0.*$/s, '');
    }
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** Shared libraries `file` needs, as { soname: realPath }; names listed in `allowMissing` may be
 * unresolved. The loader itself and the vDSO are left out. */
function sharedLibraries(file, loaderBase, allowMissing) {
  let out;
  try {
    out = execFileSync('ldd', [file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new BuildError(`ldd ${file} failed: ${String(err.stderr || err.message).trim()}`);
  }
  const libs = {};
  for (const raw of out.split('\n')) {
    const line = raw.trim();
    if (!line || /statically linked/.test(line)) continue;
    let m = /^(\S+) => not found$/.exec(line);
    if (m) {
      if (allowMissing.includes(m[1])) continue;
      throw new BuildError(`${file} needs ${m[1]}, which is not installed on this machine`);
    }
    m = /^(\S+) => (\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (m) {
      if (m[1] !== loaderBase && path.basename(m[2]) !== loaderBase) libs[m[1]] = fs.realpathSync(m[2]);
      continue;
    }
    if (/^\S+ \(0x[0-9a-f]+\)$/.test(line)) continue; // vdso or the loader itself
    throw new BuildError(`cannot understand ldd output for ${file}: ${line}`);
  }
  return libs;
}

function readJson(file, fallback) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return fallback;
  }
}

function writeAtomic(file, data, mode = 0o644) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, data, { mode });
  fs.chmodSync(tmp, mode);
  fs.renameSync(tmp, file);
}

/** esbuild plugin: native addons stay outside the bundle (the FUSE addon is loaded by path;
 * optional ones, e.g. ssh2's sshcrypto.node, are loaded in try/catch by their packages). */
function nativeAddonsPlugin() {
  return {
    name: 'outrun-native-addons',
    setup(build) {
      build.onResolve({ filter: /\.node$/ }, (args) => ({ path: args.path, external: true }));
    },
  };
}

async function bundleAgent(entry) {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: false,
    sourcemap: false,
    write: false,
    outfile: 'agent.js',
    absWorkingDir: ROOT,
    nodePaths: [path.join(ROOT, 'node_modules')],
    plugins: [nativeAddonsPlugin()],
    logLevel: 'warning',
  });
  return Buffer.from(result.outputFiles[0].contents);
}

/** `out`, (re)built by scripts/`scriptName` unless it is already newer than that script and
 * every file in `srcRel` (scripts/build.mjs builds both native pieces first). `env` and `args`
 * go to the script (a cross compiler in CC, an output path). */
function builtFromSources(scriptName, srcRel, outRel, { env, args = [] } = {}) {
  const script = path.join(ROOT, 'scripts', scriptName);
  const out = path.join(ROOT, outRel);
  const srcDir = path.join(ROOT, srcRel);
  // An installed package has the output but neither the script nor the sources: it is used as is.
  const inputs = [script, ...(fs.existsSync(srcDir) ? fs.readdirSync(srcDir).map((f) => path.join(srcDir, f)) : [])].filter(
    (f) => fs.existsSync(f),
  );
  const outMtime = fs.existsSync(out) ? fs.statSync(out).mtimeMs : -1;
  if (inputs.some((f) => fs.statSync(f).mtimeMs > outMtime)) {
    try {
      execFileSync('bash', [script, ...args], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, ...env } });
    } catch (err) {
      throw new BuildError(`scripts/${scriptName} failed (${err.status != null ? `exit ${err.status}` : err.message})`);
    }
    if (!fs.existsSync(out)) throw new BuildError(`scripts/${scriptName} did not produce ${outRel}`);
  }
  return out;
}

/** The names in `file`'s DT_NEEDED entries (readelf reads an ELF file of any architecture). */
function neededLibraries(file) {
  let out;
  try {
    out = execFileSync('readelf', ['-dW', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new BuildError(`readelf -d ${file} failed: ${String(err.stderr || err.message).trim()} (Debian: apt-get install binutils)`);
  }
  return [...out.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
}

/** The shared libraries `files` need, transitively, found in `dirs` (a cross toolchain's
 * libraries), as { soname: realPath }; the loader itself is left out. */
function crossLibraries(files, dirs, loaderBase, hint) {
  const libs = {};
  const queue = [...files];
  while (queue.length > 0) {
    for (const name of neededLibraries(queue.shift())) {
      if (name === loaderBase || libs[name]) continue;
      const found = dirs.map((d) => path.join(d, name)).find((f) => fs.existsSync(f));
      if (!found) throw new BuildError(`${name} is not in ${dirs.join(' or ')}: ${hint}`);
      libs[name] = fs.realpathSync(found);
      queue.push(libs[name]);
    }
  }
  return libs;
}

/** Node for `target` from the npm registry's per-platform package, checked against the pinned
 * integrity and kept in node_modules/.cache (a second build downloads nothing). */
function foreignNode(target) {
  const dir = path.join(ROOT, 'node_modules/.cache/outrun-node', `${target.nodePackage}-${NODE_VERSION}`);
  const bin = path.join(dir, 'package/bin/node');
  if (fs.existsSync(bin)) return bin;
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const spec = `${target.nodePackage}@${NODE_VERSION}`;
  try {
    execFileSync('npm', ['pack', spec, '--pack-destination', dir, '--silent'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    throw new BuildError(`npm pack ${spec} failed: ${String(err.stderr || err.message).trim()} (the npm registry must be reachable)`);
  }
  const tgz = fs.readdirSync(dir).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new BuildError(`npm pack ${spec} produced no tarball`);
  const integrity = `sha512-${createHash('sha512').update(fs.readFileSync(path.join(dir, tgz))).digest('base64')}`;
  if (integrity !== target.nodeIntegrity) {
    throw new BuildError(`${spec} from the registry has integrity ${integrity}, expected ${target.nodeIntegrity} (scripts/runtime-targets.mjs)`);
  }
  execFileSync('tar', ['-xzf', tgz, 'package/bin/node'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
  fs.rmSync(path.join(dir, tgz));
  return bin;
}

/** Where a foreign runtime's pieces come from: { nodeBin, interpSrc, fuseAddon, helper, libs }. */
function foreignPieces(machine, target, helperOverride) {
  const cc = `${target.triple}-gcc`;
  const hint = `install ${target.debianPackages.join(' ')} (scripts/system-packages build does), or build only this machine's runtime with OUTRUN_RUNTIME_TARGETS=local`;
  try {
    execFileSync(cc, ['--version'], { stdio: 'ignore' });
  } catch {
    throw new BuildError(`cannot build the ${machine} runtime: ${cc} is missing; ${hint}`);
  }
  const nodeBin = foreignNode(target);
  const interp = elfInterpreter(nodeBin);
  if (!interp) throw new BuildError(`${nodeBin} is statically linked: expected a dynamic node`);
  const dirs = [`/usr/${target.triple}/lib`, `/usr/lib/${target.triple}`];
  const interpSrc = dirs.map((d) => path.join(d, path.basename(interp))).find((f) => fs.existsSync(f));
  if (!interpSrc) throw new BuildError(`the ${machine} loader ${path.basename(interp)} is not in ${dirs.join(' or ')}: ${hint}`);
  const env = { CC: cc };
  const fuseAddon = builtFromSources('build-addon.sh', 'src/remote/fuse-addon', `dist/runtime-addon-${machine}/fuse-kernel.node`, {
    env,
    args: ['--fuse-only', path.join(ROOT, `dist/runtime-addon-${machine}/fuse-kernel.node`)],
  });
  const helper = helperOverride
    ? path.resolve(helperOverride)
    : builtFromSources('build-helper.sh', 'src/remote/helper', `dist/runtime-helper-${machine}/outrun-helper`, {
        env,
        args: [path.join(ROOT, `dist/runtime-helper-${machine}/outrun-helper`)],
      });
  const libs = crossLibraries([nodeBin, fuseAddon], dirs, path.basename(interp), hint);
  return { nodeBin, interpSrc: fs.realpathSync(interpSrc), loaderBase: path.basename(interp), fuseAddon, helper, libs };
}

/** This machine's pieces: its own node, loader and libraries (ldd), addon and helper. */
function localPieces(helperOverride) {
  const fuseAddon = builtFromSources('build-addon.sh', 'src/remote/fuse-addon', 'dist/runtime-addon/fuse-kernel.node');
  const nodeBin = fs.realpathSync(process.execPath);
  const interp = elfInterpreter(nodeBin);
  if (!interp) throw new BuildError(`${nodeBin} is statically linked: expected a dynamic node`);
  const loaderBase = path.basename(interp);
  const libs = {};
  for (const f of [nodeBin, fuseAddon]) {
    for (const [name, src] of Object.entries(sharedLibraries(f, loaderBase, []))) libs[name] ??= src;
  }
  const helper = helperOverride
    ? path.resolve(helperOverride)
    : builtFromSources('build-helper.sh', 'src/remote/helper', 'dist/runtime-helper/outrun-helper');
  return { nodeBin, interpSrc: fs.realpathSync(interp), loaderBase, fuseAddon, helper, libs };
}

/**
 * Build dist/runtime (or dist/runtime-<machine> for `machine`, another architecture). Returns { dir, id, machine, files, copied, reused, bytes, ms }.
 * @param {{ machine?: string, agentEntry?: string, agentBundle?: string, helper?: string, outDir?: string, log?: (s: string) => void }} [opts]
 */
export async function buildRuntime(opts = {}) {
  const t0 = Date.now();
  const local = machineOfArch(process.arch);
  if (process.platform !== 'linux' || !local) {
    throw new BuildError(`the outrun runtime can only be built on Linux x64 or arm64, not ${process.platform}-${process.arch}`);
  }
  const machine = opts.machine ?? local;
  const target = TARGETS[machine];
  if (!target) throw new BuildError(`no runtime target ${machine}: choose one of ${Object.keys(TARGETS).join(', ')}`);
  const outDir = path.resolve(opts.outDir ?? path.join(ROOT, machine === local ? 'dist/runtime' : `dist/runtime-${machine}`));
  const agentEntry = path.resolve(opts.agentEntry ?? path.join(ROOT, 'src/remote/agent.ts'));
  if (!opts.agentBundle && !fs.existsSync(agentEntry)) {
    throw new BuildError(`${path.relative(ROOT, agentEntry)} does not exist yet, so the agent cannot be bundled`);
  }

  // 1. Sources: what goes where, and with which mode.
  const pieces = machine === local ? localPieces(opts.helper) : foreignPieces(machine, target, opts.helper);
  /** rel => { src, mode } */
  const sources = new Map();
  sources.set('node', { src: pieces.nodeBin, mode: 0o755 });
  sources.set(`lib/${pieces.loaderBase}`, { src: pieces.interpSrc, mode: 0o755 });
  sources.set('fuse-kernel.node', { src: fs.realpathSync(pieces.fuseAddon), mode: 0o644 });
  for (const [name, src] of Object.entries(pieces.libs)) sources.set(`lib/${name}`, { src, mode: 0o644 });
  const helper = pieces.helper;
  if (!fs.existsSync(helper)) throw new BuildError(`outrun-helper ${helper} does not exist`);
  if (elfInterpreter(helper)) opts.log?.(`build-runtime: warning: ${helper} is not a static binary`);
  sources.set('outrun-helper', { src: fs.realpathSync(helper), mode: 0o755 });

  // 2. Copy (or reuse) everything into outDir.
  fs.mkdirSync(outDir, { recursive: true });
  const cachePath = path.join(outDir, CACHE_NAME);
  const oldCache = readJson(cachePath, {});
  const cache = {};
  const files = {};
  let copied = 0;
  let reused = 0;
  for (const [rel, { src, mode }] of sources) {
    const dest = path.join(outDir, rel);
    const st = fs.statSync(src);
    const prev = oldCache[rel];
    let sha256;
    let destSt;
    try {
      destSt = fs.statSync(dest);
    } catch {
      destSt = undefined;
    }
    if (prev && prev.src === src && prev.size === st.size && prev.mtimeMs === st.mtimeMs && destSt?.size === st.size) {
      sha256 = prev.sha256;
      reused++;
    } else {
      fs.mkdirSync(path.dirname(dest), { recursive: true });
      fs.rmSync(dest, { force: true });
      fs.copyFileSync(src, dest);
      sha256 = sha256File(dest);
      copied++;
    }
    fs.chmodSync(dest, mode);
    cache[rel] = { src, size: st.size, mtimeMs: st.mtimeMs, sha256 };
    files[rel] = { sha256, size: st.size, mode };
  }

  // 3. The agent bundle: rewritten only when its content changed.
  const agent = opts.agentBundle ? fs.readFileSync(opts.agentBundle) : await bundleAgent(agentEntry);
  const agentDest = path.join(outDir, 'agent.js');
  let oldAgent;
  try {
    oldAgent = fs.readFileSync(agentDest);
  } catch {
    oldAgent = undefined;
  }
  if (!oldAgent || !oldAgent.equals(agent)) writeAtomic(agentDest, agent, 0o644);
  fs.chmodSync(agentDest, 0o644);
  files['agent.js'] = { sha256: createHash('sha256').update(agent).digest('hex'), size: agent.length, mode: 0o644 };

  // 4. Remove what an earlier build left that is no longer part of the runtime.
  const keep = new Set([...Object.keys(files), 'manifest.json', CACHE_NAME]);
  const sweep = (dir, prefix) => {
    for (const ent of fs.readdirSync(dir, { withFileTypes: true })) {
      const rel = prefix + ent.name;
      if (ent.isDirectory()) {
        sweep(path.join(dir, ent.name), `${rel}/`);
        if (fs.readdirSync(path.join(dir, ent.name)).length === 0) fs.rmdirSync(path.join(dir, ent.name));
      } else if (!keep.has(rel)) {
        fs.rmSync(path.join(dir, ent.name), { force: true });
      }
    }
  };
  sweep(outDir, '');

  // 5. The manifest.
  const sorted = Object.fromEntries(Object.keys(files).sort().map((k) => [k, files[k]]));
  const id = createHash('sha256').update(canonicalJson(sorted)).digest('hex').slice(0, 32);
  writeAtomic(path.join(outDir, 'manifest.json'), `${JSON.stringify({ version: MANIFEST_VERSION, id, machine, files: sorted }, null, 2)}\n`);
  writeAtomic(cachePath, `${JSON.stringify(cache)}\n`);

  const bytes = Object.values(files).reduce((a, f) => a + f.size, 0);
  return { dir: outDir, id, machine, files: sorted, copied, reused, bytes, ms: Date.now() - t0 };
}

async function main() {
  const opts = { log: (s) => console.error(s) };
  for (const arg of process.argv.slice(2)) {
    const m = /^--(machine|agent-entry|agent-bundle|helper|out)=(.+)$/.exec(arg);
    if (!m) {
      console.error(`build-runtime: unknown argument ${arg}\nusage: node scripts/build-runtime.mjs [--machine=M] [--agent-entry=FILE] [--agent-bundle=FILE] [--helper=FILE] [--out=DIR]`);
      process.exit(2);
    }
    opts[{ machine: 'machine', 'agent-entry': 'agentEntry', 'agent-bundle': 'agentBundle', helper: 'helper', out: 'outDir' }[m[1]]] = m[2];
  }
  try {
    const r = await buildRuntime(opts);
    const n = Object.keys(r.files).length;
    console.log(
      `build-runtime: ${path.relative(process.cwd(), r.dir) || '.'} id ${r.id} (${r.machine}), ${n} files, ` +
        `${(r.bytes / 1e6).toFixed(1)} MB, ${r.copied} copied, ${r.reused} reused, agent.js ` +
        `${(r.files['agent.js'].size / 1e3).toFixed(0)} kB, ${r.ms} ms`,
    );
  } catch (err) {
    if (err instanceof BuildError) {
      console.error(`build-runtime: ${err.message}`);
    } else {
      console.error('build-runtime: failed:', err);
    }
    process.exit(1);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  await main();
}
