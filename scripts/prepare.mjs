#!/usr/bin/env node
// npm's prepare for a clone (npm install, npm pack, npm install -g .): the whole build.
// `npm install -g .` runs prepare before the clone has any node_modules, so the build's own
// tools (tsc, esbuild, pbjs: devDependencies) are installed here first when they are missing.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

function run(cmd, args, env = process.env) {
  const r = spawnSync(cmd, args, { cwd: ROOT, stdio: 'inherit', env });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

run('bash', [path.join(ROOT, 'scripts/system-packages'), 'build']);
if (!fs.existsSync(path.join(ROOT, 'node_modules/.bin/tsc'))) {
  console.error('outrun prepare: installing the build tools (devDependencies) into this clone first');
  // Not the global install's settings: this is a plain local install of the clone's lock file.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^npm_config_(global|prefix|location|omit|include|production)$/i.test(k)),
  );
  const npm = process.env.npm_execpath ? [process.execPath, [process.env.npm_execpath]] : ['npm', []];
  run(npm[0], [...npm[1], 'ci', '--include=dev', '--no-audit', '--no-fund', '--ignore-scripts'], env);
}
run(process.execPath, [path.join(ROOT, 'scripts/build.mjs')]);
