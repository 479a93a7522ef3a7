import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { OutrunError } from '../../src/client/errors';
import {
  agentCommand,
  canonicalJson,
  defaultRuntimeDir,
  loadLocalRuntime,
  loadRuntimes,
  manifestId,
  RuntimeFile,
} from '../../src/client/runtime';

const H = (c: string) => c.repeat(64);
const files: Record<string, RuntimeFile> = {
  node: { sha256: H('a'), size: 100, mode: 0o755 },
  'agent.js': { sha256: H('b'), size: 10, mode: 0o644 },
  'lib/ld-linux-x86-64.so.2': { sha256: H('c'), size: 5, mode: 0o755 },
  'lib/libc.so.6': { sha256: H('d'), size: 7, mode: 0o644 },
  'fuse-kernel.node': { sha256: H('e'), size: 3, mode: 0o644 },
  'outrun-helper': { sha256: H('f'), size: 9, mode: 0o755 },
};

function reversed<T>(o: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(o).reverse());
}

test('canonical JSON sorts keys at every level', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 2 }], c: 'x' } }), '{"a":{"c":"x","d":[2,{"y":2,"z":1}]},"b":1}');
});

test('manifest id is stable: key order does not matter', () => {
  const id = manifestId(files);
  assert.match(id, /^[0-9a-f]{32}$/);
  const shuffled = Object.fromEntries(
    Object.entries(reversed(files)).map(([k, f]) => [k, { mode: f.mode, size: f.size, sha256: f.sha256 }]),
  );
  assert.equal(manifestId(shuffled), id);
  // Pinned: a change here means every remote cache is invalidated; do it only on purpose.
  assert.equal(manifestId({ node: { sha256: H('a'), size: 1, mode: 493 } }), manifestId(JSON.parse('{"node":{"mode":493,"size":1,"sha256":"' + H('a') + '"}}')));
});

test('manifest id changes with content, size, mode and name', () => {
  const id = manifestId(files);
  assert.notEqual(manifestId({ ...files, node: { ...files.node!, sha256: H('0') } }), id);
  assert.notEqual(manifestId({ ...files, node: { ...files.node!, size: 101 } }), id);
  assert.notEqual(manifestId({ ...files, node: { ...files.node!, mode: 0o700 } }), id);
  const renamed = { ...files, node2: files.node! };
  delete (renamed as Record<string, RuntimeFile>).node;
  assert.notEqual(manifestId(renamed), id);
});

function writeManifest(dir: string, m: unknown): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(m));
}

test('loadLocalRuntime reads a manifest and finds the loader', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-rt-'));
  try {
    writeManifest(dir, { version: 1, id: manifestId(files), machine: 'x86_64', files: reversed(files) });
    const rt = loadLocalRuntime(dir);
    assert.equal(rt.dir, dir);
    assert.equal(rt.id, manifestId(files));
    assert.equal(rt.machine, 'x86_64');
    assert.equal(rt.loader, 'ld-linux-x86-64.so.2');
    assert.deepEqual(rt.files, files);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loadRuntimes: dist/runtime and each dist/runtime-<machine> beside it, by machine', () => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-rts-'));
  try {
    const arm = { ...files, 'lib/ld-linux-aarch64.so.1': files['lib/ld-linux-x86-64.so.2']! };
    delete (arm as Record<string, RuntimeFile>)['lib/ld-linux-x86-64.so.2'];
    writeManifest(path.join(parent, 'runtime'), { version: 1, id: manifestId(files), machine: 'x86_64', files });
    // Not runtimes: no manifest (the addon's and helper's build dirs), or not a machine name.
    fs.mkdirSync(path.join(parent, 'runtime-addon'));
    fs.mkdirSync(path.join(parent, 'runtime-helper-aarch64'));
    assert.deepEqual(Object.keys(loadRuntimes(path.join(parent, 'runtime')).byMachine), ['x86_64']);
    writeManifest(path.join(parent, 'runtime-aarch64'), { version: 1, id: manifestId(arm), machine: 'aarch64', files: arm });
    const set = loadRuntimes(path.join(parent, 'runtime'));
    assert.equal(set.local.machine, 'x86_64');
    assert.deepEqual(Object.keys(set.byMachine).sort(), ['aarch64', 'x86_64']);
    assert.equal(set.byMachine.aarch64!.loader, 'ld-linux-aarch64.so.1');
    // A runtime in the wrong place is an error, not silently another architecture's.
    writeManifest(path.join(parent, 'runtime-riscv64'), { version: 1, id: manifestId(arm), machine: 'aarch64', files: arm });
    assert.throws(() => loadRuntimes(path.join(parent, 'runtime')), (e: unknown) => e instanceof OutrunError && /is for aarch64, not riscv64/.test(e.message));
  } finally {
    fs.rmSync(parent, { recursive: true, force: true });
  }
});

test('loadLocalRuntime: missing or inconsistent manifest => RUNTIME_MISSING', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-rt-'));
  const expectMissing = (re: RegExp) =>
    assert.throws(
      () => loadLocalRuntime(dir),
      (e: unknown) => e instanceof OutrunError && e.code === 'RUNTIME_MISSING' && /npm run build/.test(e.hint ?? '') && re.test(e.message),
    );
  try {
    expectMissing(/missing/);
    writeManifest(dir, { version: 1, id: '0'.repeat(32), machine: 'x86_64', files });
    expectMissing(/id does not match/);
    writeManifest(dir, { version: 1, id: manifestId({ ...files, '../x': files.node! }), machine: 'x86_64', files: { ...files, '../x': files.node } });
    expectMissing(/bad manifest entry/);
    fs.writeFileSync(path.join(dir, 'manifest.json'), '{');
    expectMissing(/corrupt/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the built runtime (if built) agrees with manifestId', (t) => {
  if (!fs.existsSync(path.join(defaultRuntimeDir(), 'manifest.json'))) {
    t.skip('dist/runtime not built');
    return;
  }
  const rt = loadLocalRuntime();
  for (const [rel, f] of Object.entries(rt.files)) {
    assert.equal(fs.statSync(path.join(rt.dir, rel)).size, f.size, rel);
  }
});

test('agentCommand is the documented command line, correctly quoted', () => {
  assert.equal(
    agentCommand('/var/cache/outrun/runtime/abc/', '/run/outrun/s1', 'ld-linux-x86-64.so.2'),
    '/var/cache/outrun/runtime/abc/outrun-helper agent /run/outrun/s1 -- ' +
      '/var/cache/outrun/runtime/abc/lib/ld-linux-x86-64.so.2 --library-path /var/cache/outrun/runtime/abc/lib ' +
      '/var/cache/outrun/runtime/abc/node --optimize-for-size /var/cache/outrun/runtime/abc/agent.js',
  );
  const cmd = agentCommand("/tmp/a b'c", '/tmp/s $x', 'ld.so');
  const r = spawnSync('/bin/sh', ['-c', `set -- ${cmd}; printf '%s\\n' "$@"`], { encoding: 'utf8' });
  assert.deepEqual(r.stdout.trimEnd().split('\n'), [
    "/tmp/a b'c/outrun-helper", 'agent', '/tmp/s $x', '--', "/tmp/a b'c/lib/ld.so", '--library-path',
    "/tmp/a b'c/lib", "/tmp/a b'c/node", '--optimize-for-size', "/tmp/a b'c/agent.js",
  ]);
});
