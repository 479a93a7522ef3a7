// End to end: what the command is told about its data holds on the local disk. Every write
// it saw succeed is there when outrun returns; an fsync on the remote is an fsync (or
// fdatasync) of the local file, seen with strace on the local outrun process.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CLI, SSH_CONFIG } from './harness';

/** Runs outrun under strace (syscalls named in `calls`, all threads); returns status and the trace. */
function traced(calls: string, script: string, cwd: string) {
  const log = path.join(cwd, 'strace.log');
  const r = spawnSync(
    'strace',
    ['-f', '-qq', '-e', `trace=${calls}`, '-o', log, process.execPath, CLI, '-F', SSH_CONFIG, 'box', 'sh', '-c', script],
    { cwd, encoding: 'utf8', env: { ...process.env, PWD: cwd } },
  );
  const trace = readFileSync(log, 'utf8');
  rmSync(log);
  return { status: r.status, stderr: r.stderr, trace };
}

describe('data written through outrun', { timeout: 3 * 60_000 }, () => {
  test('fsync and fdatasync on the remote reach the local disk; plain writes do not sync', () => {
    const work = mkdtempSync(path.join(tmpdir(), 'outrun-fsync-'));
    try {
      const plain = traced('fsync,fdatasync', 'dd if=/dev/zero of=plain bs=64k count=4 2>/dev/null', work);
      assert.equal(plain.status, 0, plain.stderr);
      assert.doesNotMatch(plain.trace, /\b(fsync|fdatasync)\(/, 'nothing synced without being asked');

      const synced = traced('fsync,fdatasync', 'dd if=/dev/zero of=synced bs=64k count=4 conv=fsync 2>/dev/null', work);
      assert.equal(synced.status, 0, synced.stderr);
      assert.match(synced.trace, /\bfsync\(\d+\) += 0/);

      const dsynced = traced('fsync,fdatasync', 'dd if=/dev/zero of=dsynced bs=64k count=4 conv=fdatasync 2>/dev/null', work);
      assert.equal(dsynced.status, 0, dsynced.stderr);
      assert.match(dsynced.trace, /\bfdatasync\(\d+\) += 0/);
      for (const f of ['plain', 'synced', 'dsynced']) assert.equal(readFileSync(path.join(work, f)).length, 256 * 1024);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test('every write the command saw succeed is on the local disk when outrun returns', () => {
    const work = mkdtempSync(path.join(tmpdir(), 'outrun-writes-'));
    try {
      // Many files, many sizes, appends and overwrites in place; the command prints the
      // checksum of what it wrote, and exits at once after the last write.
      const script = [
        'set -e',
        'for i in $(seq 1 40); do head -c $((i * 4099)) /dev/urandom > f$i; done',
        'for i in $(seq 1 40); do printf "appended %s\\n" $i >> f$i; done',
        'printf XYZ | dd of=f7 bs=1 seek=5 conv=notrunc 2>/dev/null',
        'cat $(for i in $(seq 1 40); do echo f$i; done) | sha256sum',
      ].join('\n');
      const r = spawnSync(process.execPath, [CLI, '-F', SSH_CONFIG, 'box', 'sh', '-c', script], {
        cwd: work,
        encoding: 'utf8',
        env: { ...process.env, PWD: work },
      });
      assert.equal(r.status, 0, r.stderr);
      const h = createHash('sha256');
      for (let i = 1; i <= 40; i++) h.update(readFileSync(path.join(work, `f${i}`)));
      assert.equal(r.stdout.split(' ')[0], h.digest('hex'));
      assert.equal(readFileSync(path.join(work, 'f7')).subarray(5, 8).toString(), 'XYZ');
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
