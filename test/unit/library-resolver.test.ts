import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readlinkSync, realpathSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { readElfDepsFromFile } from '../../src/fs/local/elf';
import { LibraryClosure, PRELOAD, ResolveOptions, dstPlatformFor, expandDst, glibcSearchSubdirs, glibcX86Platform, resolveLibraryClosure, systemDirsFor } from '../../src/fs/local/library-resolver';
import { EM_X86_64 } from '../../src/fs/local/elf';
import { walkSymlinks } from '../../src/fs/local/symlink-walk';

/** $PLATFORM on this machine, as the loader will expand it (checked against ldd below). */
const PLATFORM = dstPlatformFor({ elfClass: 64, machine: EM_X86_64 });
import { buildElf } from './elf-builder';

interface LddView {
  libs: { name: string; path: string | null }[];
  interp: string | null;
}

/** ldd is the oracle here (tests only): what the real loader resolves, in load order. */
function ldd(file: string, env: Record<string, string> = {}): LddView {
  const out = execFileSync('ldd', [file], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env } });
  // readelf tells the interpreter line from a library named by path (both lack "=>").
  const interp = execFileSync('readelf', ['-lW', file], { encoding: 'utf8' }).match(/program interpreter: (.*)\]/)?.[1] ?? null;
  const view: LddView = { libs: [], interp: null };
  for (const raw of out.split('\n')) {
    const l = raw.trim();
    if (l === '' || l.startsWith('linux-vdso')) continue;
    // A preload that cannot be found is reported and skipped: "ERROR: ld.so: object 'x' ...".
    const skipped = l.match(/^ERROR: ld\.so: object '([^']+)' .* cannot be preloaded/);
    if (skipped) {
      view.libs.push({ name: skipped[1]!, path: null });
      continue;
    }
    const m = l.match(/^(\S+) => (?:not found|(\S+) \(0x[0-9a-f]+\))$/);
    if (m) {
      view.libs.push({ name: m[1]!, path: m[2] ?? null });
      continue;
    }
    const p = l.split(' ')[0]!;
    if (p === interp) view.interp = p;
    else view.libs.push({ name: p, path: p });
  }
  return view;
}

function closure(r: Awaited<ReturnType<typeof resolveLibraryClosure>>): LibraryClosure {
  assert.ok(r.ok, r.ok ? '' : `${r.error.code}: ${r.error.message}`);
  return r.value;
}

/** Our answer in ldd's shape: loaded libraries in order, then the names not found. */
function asLdd(c: LibraryClosure): LddView {
  const libs = c.files.filter((f) => f.role === 'library' && !f.sameAs).map((f) => ({ name: f.neededAs!, path: f.path }));
  return { libs, interp: c.interp };
}

function assertMatchesLdd(c: LibraryClosure, o: LddView, label: string) {
  const oracleFound = o.libs.filter((l) => l.path !== null && l.path !== o.interp);
  assert.deepEqual(asLdd(c).libs, oracleFound, `${label}: libraries and order`);
  assert.deepEqual(
    c.missing.map((m) => m.name).sort(),
    o.libs.filter((l) => l.path === null).map((l) => l.name).sort(),
    `${label}: names not found`,
  );
  if (o.interp !== null) assert.equal(c.interp, o.interp, `${label}: interpreter`);
  if (c.interp !== null) {
    assert.equal(c.files[0]!.role, 'interp');
    assert.equal(c.files[0]!.path, c.interp);
  }
}

for (const prog of ['/bin/ls', '/usr/bin/python3', '/usr/bin/ffmpeg']) {
  test(`${prog}: the closure is ldd's, in ldd's order, interpreter first`, async (t) => {
    if (!existsSync(prog)) {
      t.skip(`${prog} is not installed here`);
      return;
    }
    const c = closure(await resolveLibraryClosure(prog, { env: {} }));
    assertMatchesLdd(c, ldd(prog), prog);
    assert.ok(c.files.length >= 2);
    assert.equal(c.truncated, false);
    assert.deepEqual(c.prefetchPaths, c.files.map((f) => f.path));
  });
}

test('symlink hops are what readlink says and end at the real file', async () => {
  const prog = existsSync('/usr/bin/ffmpeg') ? '/usr/bin/ffmpeg' : '/bin/ls';
  const c = closure(await resolveLibraryClosure(prog, { env: {} }));
  let hops = 0;
  for (const f of c.files) {
    assert.equal(f.realPath, realpathSync(f.path), f.path);
    for (const h of f.links) {
      assert.equal(h.target, readlinkSync(h.path), h.path);
      hops++;
    }
  }
  // The interpreter path of x86-64 programs goes through at least one link on Debian 12.
  if (c.interp === '/lib64/ld-linux-x86-64.so.2') assert.ok(c.files[0]!.links.length >= 1);
  assert.ok(hops > 0);
});

test('maxObjects and maxDepth bound the walk and say so', async () => {
  const prog = existsSync('/usr/bin/ffmpeg') ? '/usr/bin/ffmpeg' : '/usr/bin/python3';
  const small = closure(await resolveLibraryClosure(prog, { env: {}, maxObjects: 3 }));
  assert.equal(small.truncated, true);
  assert.equal(small.files.filter((f) => f.role === 'library').length, 3);
  const shallow = closure(await resolveLibraryClosure(prog, { env: {}, maxDepth: 1 }));
  const direct = await readElfDepsFromFile(prog);
  assert.ok(direct.ok);
  // Depth 1: the program's own DT_NEEDED only (less any naming the already loaded ld.so).
  assert.deepEqual(
    shallow.files.filter((f) => f.role === 'library').map((f) => f.neededAs),
    direct.value.needed.filter((n) => !n.startsWith('ld-linux')),
  );
  assert.equal(shallow.truncated, true);
});

test('bad arguments and non-ELF files are error values', async () => {
  const rel = await resolveLibraryClosure('bin/ls');
  assert.equal(!rel.ok && rel.error.code, 'INVALID_PATH');
  const text = await resolveLibraryClosure('/etc/hostname');
  assert.equal(!text.ok && text.error.code, 'NOT_ELF');
  const gone = await resolveLibraryClosure('/nonexistent/outrun/prog');
  assert.equal(!gone.ok && gone.error.code, 'OPEN_FAILED');
});

test('$ORIGIN, $LIB, $PLATFORM and ${...} expand; an unknown origin drops the element', () => {
  const v = { origin: '/opt/app/bin', lib: 'lib/x86_64-linux-gnu', platform: 'x86_64' };
  assert.equal(expandDst('$ORIGIN/../$LIB:${PLATFORM}/x', v), '/opt/app/bin/../lib/x86_64-linux-gnu:x86_64/x');
  assert.equal(expandDst('$ORIGINAL/$LIBS', v), '$ORIGINAL/$LIBS');
  assert.equal(expandDst('$ORIGIN/lib', { ...v, origin: null }), null);
  assert.deepEqual(systemDirsFor({ elfClass: 64, machine: 62, flags: 0, endian: 'little' }), [
    '/lib/x86_64-linux-gnu/',
    '/usr/lib/x86_64-linux-gnu/',
    '/lib/',
    '/usr/lib/',
  ]);
});

// Programs and libraries built here with gcc, to test search-order rules against the loader.
let dir = '';
function gcc(args: string[]) {
  execFileSync('gcc', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}
function write(name: string, text: string) {
  writeFileSync(path.join(dir, name), text);
}

before(() => {
  dir = realpathSync(mkdtempSync(path.join(tmpdir(), 'outrun-ldres-')));
  for (const d of ['lib', 'alt', 'deep', 'lib2', 'bad', 'lib/x86_64-linux-gnu', PLATFORM, 'links']) mkdirSync(path.join(dir, d), { recursive: true });
  write('demo.c', 'int demo(void){return 0;}\n');
  write('b.c', 'int b(void){return 0;}\n');
  write('a.c', 'int b(void);int a(void){return b();}\n');
  write('main_demo.c', 'int demo(void);int main(void){return demo();}\n');
  write('main_a.c', 'int a(void);int main(void){return a();}\n');
  gcc(['-shared', '-fPIC', '-Wl,-soname,libdemo.so', '-o', 'lib/libdemo.so', 'demo.c']);
  gcc(['-shared', '-fPIC', '-Wl,-soname,libdemo.so', '-o', 'alt/libdemo.so', 'demo.c']);
  gcc(['-shared', '-fPIC', '-Wl,-soname,libdemo.so', '-o', 'lib/x86_64-linux-gnu/libdemo.so', 'demo.c']);
  gcc(['-shared', '-fPIC', '-Wl,-soname,libdemo.so', '-o', `${PLATFORM}/libdemo.so`, 'demo.c']);
  gcc(['-shared', '-fPIC', '-Wl,-soname,libb.so', '-o', 'deep/libb.so', 'b.c']);
  gcc(['-shared', '-fPIC', '-Wl,-soname,liba.so', '-o', 'lib/liba.so', 'a.c', '-Ldeep', '-lb']);
  gcc(['-shared', '-fPIC', '-Wl,-soname,liba.so', '-Wl,--enable-new-dtags,-rpath,/nonexistent-outrun', '-o', 'lib2/liba.so', 'a.c', '-Ldeep', '-lb']);
  const exe = (out: string, main: string, libdir: string, lib: string, flags: string[]) =>
    gcc(['-o', out, main, `-L${libdir}`, `-l${lib}`, ...flags]);
  exe('exe_rpath', 'main_demo.c', 'lib', 'demo', ['-Wl,--disable-new-dtags,-rpath,$ORIGIN/lib']);
  exe('exe_runpath', 'main_demo.c', 'lib', 'demo', ['-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib']);
  exe('exe_chain_rpath', 'main_a.c', 'lib', 'a', ['-Wl,-rpath-link,deep', '-Wl,--disable-new-dtags,-rpath,$ORIGIN/lib:$ORIGIN/deep']);
  exe('exe_chain_runpath', 'main_a.c', 'lib', 'a', ['-Wl,-rpath-link,deep', '-Wl,--enable-new-dtags,-rpath,$ORIGIN/lib:$ORIGIN/deep']);
  exe('exe_chain_librunpath', 'main_a.c', 'lib2', 'a', ['-Wl,-rpath-link,deep', '-Wl,--disable-new-dtags,-rpath,$ORIGIN/lib2:$ORIGIN/deep']);
  exe('exe_lib_token', 'main_demo.c', 'lib', 'demo', ['-Wl,--disable-new-dtags,-rpath,$ORIGIN/$LIB']);
  exe('exe_platform_token', 'main_demo.c', 'lib', 'demo', ['-Wl,--disable-new-dtags,-rpath,${ORIGIN}/$PLATFORM']);
  // A library with no soname linked by path: DT_NEEDED then holds that path.
  gcc(['-shared', '-fPIC', '-o', path.join(dir, 'deep/libbypath.so'), 'demo.c']);
  gcc(['-o', 'exe_bypath', 'main_demo.c', path.join(dir, 'deep/libbypath.so')]);
  // A dependency deleted after linking.
  gcc(['-shared', '-fPIC', '-Wl,-soname,libgone.so', '-o', 'alt/libgone.so', 'demo.c']);
  gcc(['-o', 'exe_gone', 'main_demo.c', '-Lalt', '-lgone', '-Wl,--disable-new-dtags,-rpath,$ORIGIN/lib']);
  unlinkSync(path.join(dir, 'alt/libgone.so'));
  // A 32-bit file under the right name: the loader passes over it.
  writeFileSync(path.join(dir, 'bad/libdemo.so'), buildElf({ cls: 32, soname: 'libdemo.so' }).buf);
  symlinkSync(path.join(dir, 'exe_rpath'), path.join(dir, 'links/exe_rpath'));
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function checkAgainstLdd(exe: string, opts: ResolveOptions = {}): Promise<LibraryClosure> {
  const file = path.join(dir, exe);
  const env = Object.fromEntries(Object.entries(opts.env ?? {}).filter((e): e is [string, string] => e[1] !== undefined));
  const c = closure(await resolveLibraryClosure(file, { ...opts, env }));
  assertMatchesLdd(c, ldd(file, env), exe);
  return c;
}

function libPath(c: LibraryClosure, name: string): string | null {
  return c.files.find((f) => f.neededAs === name)?.path ?? null;
}

test('DT_RPATH and DT_RUNPATH with $ORIGIN are told apart and searched', async () => {
  const r = await readElfDepsFromFile(path.join(dir, 'exe_rpath'));
  assert.ok(r.ok);
  assert.equal(r.value.rpath, '$ORIGIN/lib');
  assert.equal(r.value.runpath, null);
  const n = await readElfDepsFromFile(path.join(dir, 'exe_runpath'));
  assert.ok(n.ok);
  assert.equal(n.value.runpath, '$ORIGIN/lib');
  assert.equal(n.value.rpath, null);
  assert.equal(libPath(await checkAgainstLdd('exe_rpath'), 'libdemo.so'), `${dir}/lib/libdemo.so`);
  assert.equal(libPath(await checkAgainstLdd('exe_runpath'), 'libdemo.so'), `${dir}/lib/libdemo.so`);
});

test('LD_LIBRARY_PATH comes after DT_RPATH but before DT_RUNPATH', async () => {
  const env = { LD_LIBRARY_PATH: `${dir}/alt` };
  assert.equal(libPath(await checkAgainstLdd('exe_rpath', { env }), 'libdemo.so'), `${dir}/lib/libdemo.so`);
  assert.equal(libPath(await checkAgainstLdd('exe_runpath', { env }), 'libdemo.so'), `${dir}/alt/libdemo.so`);
  // Secure (setuid) starts ignore it.
  const secure = closure(await resolveLibraryClosure(path.join(dir, 'exe_runpath'), { env, secure: true }));
  assert.equal(libPath(secure, 'libdemo.so'), `${dir}/lib/libdemo.so`);
});

test('a candidate of the wrong class is passed over', async () => {
  const env = { LD_LIBRARY_PATH: `${dir}/bad:${dir}/alt` };
  const c = await checkAgainstLdd('exe_runpath', { env });
  assert.equal(libPath(c, 'libdemo.so'), `${dir}/alt/libdemo.so`);
});

test("the executable's DT_RPATH serves its libraries' dependencies; DT_RUNPATH does not", async () => {
  const viaRpath = await checkAgainstLdd('exe_chain_rpath');
  assert.equal(libPath(viaRpath, 'libb.so'), `${dir}/deep/libb.so`);
  assert.deepEqual(viaRpath.missing, []);
  const viaRunpath = await checkAgainstLdd('exe_chain_runpath');
  assert.deepEqual(viaRunpath.missing, [{ name: 'libb.so', neededBy: `${dir}/lib/liba.so` }]);
  // A library with its own DT_RUNPATH ignores every DT_RPATH, the executable's included.
  const libRunpath = await checkAgainstLdd('exe_chain_librunpath');
  assert.deepEqual(libRunpath.missing.map((m) => m.name), ['libb.so']);
  assert.ok(libRunpath.probes.includes('/nonexistent-outrun/libb.so'));
});

test("$PLATFORM on x86-64 is glibc's: haswell or xeon_phi on Intel CPUs with their features, else x86_64", () => {
  const cpu = (vendor: string, flags: string) => `processor\t: 0\nvendor_id\t: ${vendor}\nflags\t\t: ${flags}\n`;
  const haswell = 'fpu sse2 popcnt movbe fma avx2 bmi1 bmi2 abm';
  assert.equal(glibcX86Platform(cpu('GenuineIntel', haswell)), 'haswell');
  assert.equal(glibcX86Platform(cpu('GenuineIntel', `${haswell} avx512cd avx512bw`)), 'haswell');
  assert.equal(glibcX86Platform(cpu('GenuineIntel', `${haswell} avx512cd avx512er avx512pf`)), 'xeon_phi');
  assert.equal(glibcX86Platform(cpu('GenuineIntel', haswell.replace(' abm', ''))), 'x86_64');
  assert.equal(glibcX86Platform(cpu('AuthenticAMD', haswell)), 'x86_64');
  assert.equal(glibcX86Platform(''), 'x86_64');
});

test('$LIB and $PLATFORM expand as Debian 12 glibc does', async () => {
  assert.equal(libPath(await checkAgainstLdd('exe_lib_token'), 'libdemo.so'), `${dir}/lib/x86_64-linux-gnu/libdemo.so`);
  assert.equal(libPath(await checkAgainstLdd('exe_platform_token'), 'libdemo.so'), `${dir}/${PLATFORM}/libdemo.so`);
});

test('a DT_NEEDED holding a path is opened as is', async () => {
  const c = await checkAgainstLdd('exe_bypath');
  assert.equal(libPath(c, `${dir}/deep/libbypath.so`), `${dir}/deep/libbypath.so`);
});

test('a missing library is reported with the paths the loader probes for it', async () => {
  const c = await checkAgainstLdd('exe_gone');
  assert.deepEqual(c.missing, [{ name: 'libgone.so', neededBy: `${dir}/exe_gone` }]);
  assert.ok(c.probes.includes(`${dir}/lib/libgone.so`));
  assert.ok(c.probes.includes('/lib/x86_64-linux-gnu/libgone.so'));
  assert.ok(c.probes.includes('/usr/lib/libgone.so'));
});

test("a symlinked executable's $ORIGIN is its real directory, as /proc/self/exe gives it", async () => {
  const link = path.join(dir, 'links/exe_rpath');
  const c = closure(await resolveLibraryClosure(link, { env: {} }));
  assert.equal(libPath(c, 'libdemo.so'), `${dir}/lib/libdemo.so`);
  // The real loader agrees: run through the link it finds the library (links/lib does not exist).
  execFileSync(link, [], { env: { PATH: '/usr/bin:/bin' } });
  const w = await walkSymlinks(link);
  assert.deepEqual(w.links, [{ path: link, target: path.join(dir, 'exe_rpath') }]);
});

test('symlink walks stop on loops and missing components', async () => {
  symlinkSync('loop-b', path.join(dir, 'links/loop-a'));
  symlinkSync('loop-a', path.join(dir, 'links/loop-b'));
  const loop = await walkSymlinks(path.join(dir, 'links/loop-a'));
  assert.equal(loop.error, 'ELOOP');
  assert.equal(loop.realPath, null);
  assert.equal(loop.links.length, 40);
  const missing = await walkSymlinks(path.join(dir, 'nope/x'));
  assert.equal(missing.error, 'ENOENT');
  const notDir = await walkSymlinks(path.join(dir, 'demo.c/x'));
  assert.equal(notDir.error, 'ENOTDIR');
});

test('a file loaded again under another name is opened but not walked again', async () => {
  // Linked against two distinct files; afterwards alt/libalias.so becomes a symlink to
  // deep/libbypath.so, so the program needs one file as "libalias.so" (found through its
  // RPATH) and again by the library's path.
  gcc(['-shared', '-fPIC', '-o', 'alt/libalias.so', 'demo.c']);
  gcc(['-o', 'exe_twice', 'main_demo.c', '-Wl,--no-as-needed', '-Lalt', '-lalias', path.join(dir, 'deep/libbypath.so'), '-Wl,--disable-new-dtags,-rpath,$ORIGIN/alt']);
  unlinkSync(path.join(dir, 'alt/libalias.so'));
  symlinkSync('../deep/libbypath.so', path.join(dir, 'alt/libalias.so'));
  const r = await readElfDepsFromFile(path.join(dir, 'exe_twice'));
  assert.ok(r.ok);
  assert.deepEqual(r.value.needed.slice(0, 2), ['libalias.so', `${dir}/deep/libbypath.so`]);
  const c = await checkAgainstLdd('exe_twice');
  const libs = c.files.filter((f) => f.role === 'library' && f.neededBy === `${dir}/exe_twice`);
  assert.equal(libs[0]!.path, `${dir}/alt/libalias.so`);
  assert.deepEqual(libs[0]!.links, [{ path: `${dir}/alt/libalias.so`, target: '../deep/libbypath.so' }]);
  assert.equal(libs[1]!.path, `${dir}/deep/libbypath.so`);
  assert.equal(libs[1]!.sameAs, `${dir}/alt/libalias.so`);
});

/** This machine's loader's own account of the subdirectories it searches (`ld.so --help`). */
function loaderSubdirs(): { hwcaps: string[]; platform: string | null; legacy: string[]; tls: boolean } {
  const help = execFileSync('/lib64/ld-linux-x86-64.so.2', ['--help'], { encoding: 'utf8' });
  const section = (title: string) => (help.split(title)[1] ?? '').split('\n\n')[0]!.split('\n').slice(1);
  const searched = (lines: string[]) => lines.filter((l) => /searched\)/.test(l)).map((l) => l.trim());
  const hwcaps = searched(section('Subdirectories of glibc-hwcaps directories')).map((l) => l.split(' ')[0]!);
  const legacyLines = searched(section('Legacy HWCAP subdirectories'));
  const platform = legacyLines.find((l) => l.includes('AT_PLATFORM'))?.split(' ')[0] ?? null;
  const tls = legacyLines.some((l) => l.startsWith('tls '));
  const legacy = legacyLines.filter((l) => !l.includes('AT_PLATFORM') && !l.startsWith('tls ')).map((l) => l.split(' ')[0]!);
  return { hwcaps, platform, legacy, tls };
}

test("the negative probes are the loader's own tries, in order (LD_DEBUG=libs as oracle)", async () => {
  const sub = loaderSubdirs();
  const searchSubdirs = glibcSearchSubdirs({ hwcaps: sub.hwcaps, platform: sub.platform, legacyHwcaps: sub.legacy, tls: sub.tls });
  const opts = { env: {}, hwcapsSubdirs: sub.hwcaps, searchSubdirs };
  const traced = (exe: string) => {
    const run = spawnSync(exe, [], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', LD_DEBUG: 'libs' } });
    // The loader tries a few paths twice (legacy subdirs repeat); probes list each once.
    return { status: run.status, tried: [...new Set([...run.stderr.matchAll(/trying file=(\S+)/g)].map((m) => m[1]!))] };
  };
  // A program that starts: every absent file it tried, and nothing else, is a probe.
  const good = traced(path.join(dir, 'exe_rpath'));
  assert.equal(good.status, 0);
  const c = closure(await resolveLibraryClosure(path.join(dir, 'exe_rpath'), opts));
  const absentTried = good.tried.filter((p) => !existsSync(p));
  assert.ok(absentTried.length > 4);
  assert.deepEqual(c.probes, absentTried);
  assert.ok(c.absentDirs.includes(`${dir}/lib/tls/`));
  // A program missing a library: the loader stops at it; up to there the tries agree.
  const bad = traced(path.join(dir, 'exe_gone'));
  assert.equal(bad.status, 127);
  const g = closure(await resolveLibraryClosure(path.join(dir, 'exe_gone'), opts));
  assert.deepEqual(g.probes.slice(0, bad.tried.length), bad.tried);
});

test('LD_PRELOAD libraries load first, then /etc/ld.so.preload ones, before DT_NEEDED', async () => {
  const env = { LD_PRELOAD: `${dir}/deep/libb.so libnot-there-outrun.so` };
  const c = await checkAgainstLdd('exe_rpath', { env, ldSoPreloadPath: path.join(dir, 'no-preload-file') });
  const libs = c.files.filter((f) => f.role === 'library');
  assert.deepEqual(libs[0], { ...libs[0], path: `${dir}/deep/libb.so`, neededBy: PRELOAD });
  assert.equal(libs[1]!.neededAs, 'libdemo.so');
  assert.deepEqual(c.missing, [{ name: 'libnot-there-outrun.so', neededBy: PRELOAD }]);
  const preloadFile = path.join(dir, 'ld.so.preload');
  writeFileSync(preloadFile, `${dir}/alt/libdemo.so\n`);
  const f = closure(await resolveLibraryClosure(path.join(dir, 'exe_rpath'), { env: { LD_PRELOAD: `${dir}/deep/libb.so` }, ldSoPreloadPath: preloadFile }));
  const order = f.files.filter((x) => x.role === 'library').map((x) => x.path);
  // alt/libdemo.so (soname libdemo.so) is loaded by the preload: DT_NEEDED libdemo.so reuses it.
  assert.deepEqual(order.slice(0, 2), [`${dir}/deep/libb.so`, `${dir}/alt/libdemo.so`]);
  assert.ok(!order.includes(`${dir}/lib/libdemo.so`));
  const secure = closure(await resolveLibraryClosure(path.join(dir, 'exe_rpath'), { env, secure: true, ldSoPreloadPath: preloadFile }));
  assert.ok(!secure.files.some((x) => x.path === `${dir}/deep/libb.so`));
});
