// End to end: `make -j2 CC="outrun box cc"` through one master builds the same objects and
// program as `make -j2` locally (differential, byte for byte): many short concurrent runs,
// each reading what an earlier one wrote (the link step reads every object).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CLI, SSH_CONFIG, outrun, waitBoxClean } from './harness';

const FILES = 8;
const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

function project(dir: string): void {
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'util.h'), 'int f0(int);\n' + Array.from({ length: FILES }, (_, i) => `int f${i}(int);`).join('\n') + '\n');
  for (let i = 0; i < FILES; i++) {
    writeFileSync(path.join(dir, `f${i}.c`), `#include "util.h"\nint f${i}(int x) { return ${i > 0 ? `f${i - 1}(x) + ` : ''}x * ${i + 3}; }\n`);
  }
  writeFileSync(path.join(dir, 'main.c'), `#include <stdio.h>\n#include "util.h"\nint main(void) { printf("%d\\n", f${FILES - 1}(2)); return 0; }\n`);
  const objs = [...Array.from({ length: FILES }, (_, i) => `f${i}.o`), 'main.o'].join(' ');
  writeFileSync(path.join(dir, 'Makefile'), `prog: ${objs}\n\t$(CC) -o $@ ${objs}\n%.o: %.c util.h\n\t$(CC) -O1 -c $< -o $@\n`);
}

test('make -j2 CC="outrun box cc" through one master builds what make -j2 builds locally', { timeout: 300_000 }, async () => {
  const base = mkdtempSync(path.join(tmpdir(), 'outrun-make-'));
  chmodSync(base, 0o700);
  const sock = path.join(base, 'm.sock');
  const cc = `${process.execPath} ${CLI} -F ${SSH_CONFIG} -S ${sock} -o ControlPersist=60 box cc`;
  try {
    project(path.join(base, 'local'));
    project(path.join(base, 'remote'));
    const local = spawnSync('make', ['-j2', 'CC=cc'], { cwd: path.join(base, 'local'), encoding: 'utf8' });
    assert.equal(local.status, 0, local.stderr);
    const remote = spawnSync('make', ['-j2', `CC=${cc}`], { cwd: path.join(base, 'remote'), encoding: 'utf8', timeout: 240_000 });
    assert.equal(remote.status, 0, remote.stderr);
    const built = readdirSync(path.join(base, 'local')).filter((f) => f.endsWith('.o') || f === 'prog').sort();
    assert.equal(built.length, FILES + 2);
    assert.deepEqual(readdirSync(path.join(base, 'remote')).filter((f) => f.endsWith('.o') || f === 'prog').sort(), built);
    for (const f of built) assert.equal(sha(path.join(base, 'remote', f)), sha(path.join(base, 'local', f)), `${f} is the same`);
    const run = spawnSync(path.join(base, 'remote', 'prog'), { encoding: 'utf8' });
    assert.equal(run.stdout, spawnSync(path.join(base, 'local', 'prog'), { encoding: 'utf8' }).stdout);
  } finally {
    await outrun(['-F', SSH_CONFIG, '-S', sock, '-O', 'exit', 'box']);
    rmSync(base, { recursive: true, force: true });
  }
  assert.equal(await waitBoxClean(), '');
});
