#!/usr/bin/env node
// The bench's C project built with `make -jN CC="outrun ... cc"`, side by side in one run: cc
// here, one box (through a master, as a build would use it), a pool of the three boxes, and
// the Slurm test cluster; every build's objects compared with the local build's (sha256).
// Needs `scripts/testbox up --boxes 3` and `scripts/testcluster up`; prints a Markdown table
// for BENCHMARKS.md with the command that produced it.
//
//   node scripts/bench-make-cc.mjs [--files N] [--jobs N] [--runs N]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CPROJ, findWorkload, setCfiles } from './bench-workloads.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const CLI = path.join(ROOT, 'dist/src/client/cli.js');
const CFG = path.join(ROOT, '.testbox/ssh_config');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const files = opt('files', 40);
const jobs = opt('jobs', 4);
const runs = opt('runs', 2);

const outrun = (...a) => `node ${CLI} -F ${CFG} ${a.join(' ')}`;
const VARIANTS = [
  { name: 'local cc', cc: 'cc' },
  { name: 'one box (master)', cc: `${outrun('-o', 'ControlPersist=120', 'box')} cc`, exit: outrun('-O', 'exit', 'box') },
  {
    name: 'pool 2/box,2/box2,2/box3 (masters)',
    cc: `${outrun('-o', 'ControlPersist=120', '-S', '2/box,2/box2,2/box3')} cc`,
    exit: ['box', 'box2', 'box3'].map((h) => outrun('-O', 'exit', h)).join('; '),
  },
  { name: 'Slurm cluster (slurm://cluster)', cc: `${outrun('slurm://cluster')} cc` },
];

const sh = (cmd) => spawnSync('sh', ['-c', cmd], { cwd: CPROJ, encoding: 'utf8' });
/** Every object and the linked program, by sha256. */
const objects = () =>
  Object.fromEntries(
    [...readdirSync(path.join(CPROJ, 'obj')).filter((f) => f.endsWith('.o')).sort().map((f) => `obj/${f}`), 'prog'].map((f) => [
      f,
      createHash('sha256').update(readFileSync(path.join(CPROJ, f))).digest('hex'),
    ]),
  );

setCfiles(files);
await findWorkload('make').setup();
let reference;
const rows = [];
for (const v of VARIANTS) {
  const times = [];
  let same = true;
  // One untimed build first: warms caches, starts masters, installs runtimes.
  for (let k = 0; k <= runs; k++) {
    if (sh('make clean').status !== 0) throw new Error('make clean failed');
    const t0 = performance.now();
    const r = sh(`make -j${jobs} CC='${v.cc}'`);
    const s = (performance.now() - t0) / 1000;
    if (r.status !== 0) throw new Error(`${v.name}: make failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
    const objs = objects();
    reference ??= objs;
    if (JSON.stringify(objs) !== JSON.stringify(reference)) same = false;
    if (k > 0) times.push(s);
  }
  if (v.exit) sh(v.exit);
  const best = Math.min(...times);
  rows.push({ name: v.name, times, best, same });
  console.error(`${v.name}: ${times.map((t) => t.toFixed(2)).join(', ')} s${same ? '' : ' (OBJECTS DIFFER)'}`);
}
const local = rows[0].best;
console.log(`\`node scripts/bench-make-cc.mjs --files ${files} --jobs ${jobs} --runs ${runs}\`: \`make -j${jobs}\` of ${files} C files + main.c, best of ${runs} after one untimed build\n`);
console.log('| build | runs (s) | best | × local | objects |');
console.log('| --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(`| ${r.name} | ${r.times.map((t) => t.toFixed(2)).join(', ')} | ${r.best.toFixed(2)} s | ${(r.best / local).toFixed(1)} | ${r.same ? 'same as local' : 'DIFFER'} |`);
}
process.exit(rows.every((r) => r.same) ? 0 : 1);
