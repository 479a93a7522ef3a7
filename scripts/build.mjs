#!/usr/bin/env node
// The whole build, in order: message code from proto/, TypeScript, the static helper, and
// the runtime shipped to remotes (which bundles the agent and includes the helper).
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
fs.chmodSync(path.join(ROOT, 'dist/src/client/cli.js'), 0o755);
run('bash', [path.join(ROOT, 'scripts/build-helper.sh')]);
run(process.execPath, [path.join(ROOT, 'scripts/build-runtime.mjs')]);
