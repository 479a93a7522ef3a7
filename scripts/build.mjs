#!/usr/bin/env node
// The whole build, in order: message code from proto/, TypeScript, the static helper, and
// the runtimes shipped to remotes (which bundle the agent and include the helper): this
// machine's architecture's, then every other one in scripts/runtime-targets.mjs (cross-built).
// OUTRUN_RUNTIME_TARGETS=local builds only this machine's (no cross compiler, no download).
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => path.join(ROOT, 'node_modules', '.bin', name);
const run = (cmd, args) => execFileSync(cmd, args, { cwd: ROOT, stdio: 'inherit' });
const newer = (src, out) => !fs.existsSync(out) || fs.statSync(src).mtimeMs > fs.statSync(out).mtimeMs;

const proto = path.join(ROOT, 'proto/outrun.proto');
const gen = path.join(ROOT, 'src/wire/generated');
if (newer(proto, path.join(gen, 'outrun.d.ts'))) {
  fs.mkdirSync(gen, { recursive: true });
  // Static code with plain numbers for 64-bit fields (sizes and offsets stay below 2^53).
  run(bin('pbjs'), [
    '-t', 'static-module', '-w', 'commonjs', '--force-number',
    '--no-verify', '--no-convert', '--no-delimited', '--no-beautify',
    '-o', path.join(gen, 'outrun.js'), proto,
  ]);
  run(bin('pbts'), ['-o', path.join(gen, 'outrun.d.ts'), path.join(gen, 'outrun.js')]);
}
run(bin('tsc'), ['-p', 'tsconfig.json']);
// The library API's types (the package's "types"): its declarations only, from src/index.ts.
run(bin('tsc'), [
  '--declaration', '--emitDeclarationOnly', '--strict', '--skipLibCheck', '--esModuleInterop',
  '--target', 'es2022', '--module', 'commonjs', '--types', 'node',
  '--rootDir', 'src', '--outDir', 'dist/types', 'src/index.ts',
]);
// The command itself is one bundled file: resolving and reading some 300 modules (ssh2,
// grpc-js, protobufjs) cost more than the SSH handshake at every start. It stays at
// dist/src/client/cli.js (paths to dist/runtime are relative to it). ssh2's optional native
// helpers stay outside, as optional as they were.
const cli = path.join(ROOT, 'dist/src/client/cli.js');
const { buildSync } = await import('esbuild');
buildSync({
  entryPoints: [cli],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: `${cli}.bundle`,
  external: ['cpu-features', '*.node'],
  logLevel: 'warning',
});
fs.renameSync(`${cli}.bundle`, cli);
fs.chmodSync(cli, 0o755);
run('bash', [path.join(ROOT, 'scripts/build-helper.sh')]);
run('bash', [path.join(ROOT, 'scripts/build-addon.sh')]);
run(process.execPath, [path.join(ROOT, 'scripts/build-runtime.mjs')]);
const { TARGETS, machineOfArch } = await import('./runtime-targets.mjs');
const only = process.env.OUTRUN_RUNTIME_TARGETS;
if (only !== undefined && only !== 'local' && only !== 'all') {
  console.error(`build: OUTRUN_RUNTIME_TARGETS must be local or all, not ${JSON.stringify(only)}`);
  process.exit(2);
}
if (only !== 'local') {
  for (const machine of Object.keys(TARGETS).filter((m) => m !== machineOfArch(process.arch))) {
    run(process.execPath, [path.join(ROOT, 'scripts/build-runtime.mjs'), `--machine=${machine}`]);
  }
}
