#!/usr/bin/env node
// npm's postinstall for outrun: makes an installed package complete.
//
// - The packed package ships the agent bundle (dist/runtime/agent.js), the static helper and the
//   prebuilt addons, not the runtime's node binary and libraries (~100 MB, and they must be this
//   machine's): they are assembled here into dist/runtime by build-runtime.mjs, with no compiler
//   and no esbuild.
//   A clone has src/ and builds everything in `prepare` instead.
// - A global install (npm install -g) also gets its bash completion at
//   PREFIX/share/bash-completion/completions/outrun (npm itself links the man page).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const say = (msg) => console.error(`outrun postinstall: ${msg}`);

async function assembleRuntime() {
  if (fs.existsSync(path.join(ROOT, 'src'))) return; // a clone: `prepare` runs the whole build
  const { buildRuntime } = await import('./build-runtime.mjs');
  const r = await buildRuntime({
    agentBundle: path.join(ROOT, 'dist/runtime/agent.js'),
    helper: path.join(ROOT, 'dist/runtime-helper/outrun-helper'),
    log: say,
  });
  say(`runtime ${r.id} (${r.machine}) assembled from this machine's node: ${(r.bytes / 1e6).toFixed(1)} MB`);
}

function installCompletion() {
  if (process.env.npm_config_global !== 'true' || !process.env.npm_config_prefix) return;
  const dir = path.join(process.env.npm_config_prefix, 'share/bash-completion/completions');
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(path.join(ROOT, 'completion/outrun.bash'), path.join(dir, 'outrun'));
}

try {
  await assembleRuntime();
  installCompletion();
} catch (err) {
  say(`failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
