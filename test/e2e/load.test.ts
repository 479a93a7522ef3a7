// End to end, load: 16 outrun sessions against one box at once. Each writes its own files
// and verifies them, while all of them read the same shared files; every byte must be right,
// the remote runtime cache must still be whole afterwards, and each agent's peak memory
// (VmHWM, read on the box while the sessions run) must stay bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { boxShell, onBox, waitBoxClean } from './harness';

const SESSIONS = 16;
/** Peak resident memory allowed per agent. Measured: 133 MiB at most (16 sessions, 2 cores); the bound leaves room. */
const AGENT_HWM_LIMIT_KIB = 256 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test(`${SESSIONS} concurrent sessions: all bytes right, runtime cache intact, agent memory bounded`, { timeout: 10 * 60_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'outrun-load-'));
  try {
    const shared = [randomBytes(2 * 1024 * 1024 + 5), randomBytes(300 * 1024 + 1)];
    shared.forEach((b, i) => writeFileSync(path.join(dir, `shared-${i}`), b));
    // Each session: read both shared files twice, write two files of its own, read them
    // back, and record the peak memory of every agent alive on the box at that moment.
    const script = (i: number) =>
      [
        'set -e',
        'for n in 1 2; do sha256sum shared-0 shared-1 | cut -d" " -f1; done',
        `head -c ${1_048_576 + i * 777} /dev/urandom > own-${i}-a`,
        `seq 1 ${20_000 + i} > own-${i}-b`,
        `sha256sum own-${i}-a own-${i}-b | cut -d" " -f1`,
        // [x]: the shell's own command line must not match.
        `for p in /proc/[0-9]*; do case "$(tr "\\0" " " < $p/cmdline 2>/dev/null)" in *outrun-helpe[r]*) ;; *ld-linu[x]*agent.js*) grep VmHWM $p/status | sed "s/^/hwm /";; esac; done`,
      ].join('\n');
    const results = await Promise.all(
      Array.from({ length: SESSIONS }, (_, i) => onBox(['sh', '-c', script(i)], { cwd: dir, timeoutMs: 8 * 60_000 })),
    );
    const hwms: number[] = [];
    results.forEach((r, i) => {
      assert.equal(r.status, 0, `session ${i}: ${r.stderr}`);
      const lines = r.stdout.toString().trim().split('\n');
      const sums = lines.filter((l) => !l.startsWith('hwm '));
      assert.deepEqual(sums.slice(0, 4), [sha(shared[0]!), sha(shared[1]!), sha(shared[0]!), sha(shared[1]!)], `session ${i}`);
      const a = readFileSync(path.join(dir, `own-${i}-a`));
      const b = readFileSync(path.join(dir, `own-${i}-b`));
      assert.equal(a.length, 1_048_576 + i * 777);
      assert.deepEqual(sums.slice(4), [sha(a), sha(b)], `session ${i}`);
      for (const l of lines.filter((l) => l.startsWith('hwm '))) hwms.push(Number(/(\d+) kB/.exec(l)![1]));
    });
    assert.ok(hwms.length >= SESSIONS, `read the peak memory of ${hwms.length} agents`);
    const peak = Math.max(...hwms);
    console.log(`load: ${SESSIONS} sessions, agent VmHWM max ${Math.round(peak / 1024)} MiB over ${hwms.length} readings`);
    assert.ok(peak < AGENT_HWM_LIMIT_KIB, `an agent peaked at ${peak} kB`);
    // The runtime cache: one finished runtime, no temp directories, its files all present.
    const cache = boxShell('cd /var/cache/outrun/runtime && ls -A').trim().split('\n');
    assert.equal(cache.filter((n) => n.startsWith('.')).length, 0, cache.join(' '));
    for (const id of cache) assert.equal(boxShell(`test -x /var/cache/outrun/runtime/${id}/node && test -s /var/cache/outrun/runtime/${id}/agent.js && echo ok`).trim(), 'ok');
    assert.equal(await waitBoxClean(15_000), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
