// End to end: host pools (-S sshlogins, @NAME) over the three native boxes (scripts/testbox up
// --boxes 3: box, box2, box3, each with its own hostname). Concurrent runs are separate local
// outrun processes, as `make -jN CC="outrun -S ..."` starts them; each reports the box's name
// and when it started and ended there (the boxes share this machine's clock), so the tests
// assert where each run went and that no box ever ran more than its slots at once. Each test
// has a state directory of its own (XDG_RUNTIME_DIR), so one test's skipped host does not
// bend the next's placement.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { ROOT, SSH_CONFIG, boxShell, outrun, waitBoxClean } from './harness';
import { run } from '../../src/index';

const BOXES = ['box', 'box2', 'box3'] as const;
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
/** What each run prints: the box's name, then its start and end (epoch ns) there. */
const REPORT = 'n=$(uname -n); s=$(date +%s%N); sleep 2; echo "$n $s $(date +%s%N)"';

function testbox(...args: string[]): void {
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/testbox'), ...args], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, `scripts/testbox ${args.join(' ')}: ${r.stderr}`);
}

describe('host pools', { timeout: 600_000 }, () => {
  const names = new Map<string, string>();
  let state: string;
  let env: NodeJS.ProcessEnv;
  const states: string[] = [];
  before(() => {
    for (const b of BOXES) names.set(b, boxShell('uname -n', b).trim());
    assert.equal(new Set(names.values()).size, 3, `three boxes with names of their own (scripts/testbox up --boxes 3): ${[...names.values()]}`);
  });
  const fresh = () => {
    state = mkdtempSync(path.join(tmpdir(), 'outrun-pool-'));
    states.push(state);
    env = { ...process.env, XDG_RUNTIME_DIR: state, XDG_CONFIG_HOME: path.join(state, 'config') };
  };
  after(() => states.forEach((d) => rmSync(d, { recursive: true, force: true })));

  /** `count` concurrent outrun processes on `pool`; each run's box, start and end. */
  async function concurrent(pool: string, count: number, extra: string[] = []) {
    const runs = await Promise.all(
      Array.from({ length: count }, () => outrun(['-F', SSH_CONFIG, ...extra, '-S', pool, 'sh', '-c', REPORT], { env })),
    );
    return runs.map((r) => {
      assert.equal(r.status, 0, r.stderr);
      const [name, s, e] = r.stdout.toString().trim().split(' ');
      return { name: name!, start: Number(s), end: Number(e), stderr: r.stderr };
    });
  }
  /** The most runs that ran at the same time on a box. */
  const peak = (runs: { name: string; start: number; end: number }[], name: string) => {
    const on = runs.filter((r) => r.name === name);
    return Math.max(0, ...on.map((r) => on.filter((o) => o.start < r.end && r.start < o.end).length));
  };

  test('6 concurrent runs on 1/box,1/box2,1/box3: each box exactly twice, one at a time (two rounds)', async () => {
    fresh();
    const runs = await concurrent('1/box,1/box2,1/box3', 6);
    for (const b of BOXES) {
      assert.equal(runs.filter((r) => r.name === names.get(b)).length, 2, `${b}: ${JSON.stringify(runs.map((r) => r.name))}`);
      assert.equal(peak(runs, names.get(b)!), 1, `${b} ran one at a time`);
    }
    // Two rounds: the second three started only after the first three ended.
    const byStart = [...runs].sort((a, b) => a.start - b.start);
    assert.ok(Math.min(...byStart.slice(3).map((r) => r.start)) >= Math.min(...byStart.slice(0, 3).map((r) => r.end)), 'two rounds');
    assert.equal(await waitBoxClean(), '');
  });

  test('slots hold across concurrent local processes: 2/box takes at most two at once', async () => {
    fresh();
    const runs = await concurrent('2/box', 5);
    assert.ok(runs.every((r) => r.name === names.get('box')));
    assert.equal(peak(runs, names.get('box')!), 2);
  });

  test('a box taken down is skipped with its line; the run goes on elsewhere; the skip holds for later runs', async () => {
    fresh();
    testbox('stop-box', '2');
    try {
      const r = await outrun(['-F', SSH_CONFIG, '-v', '-S', '1/box2,1/box3', 'uname', '-n'], { env });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.toString().trim(), names.get('box3'));
      assert.match(r.stderr, /^outrun: box2 skipped for 60 s: cannot connect to \S+ port \d+: /m);
      assert.match(r.stderr, /^outrun: pool: box3 chosen: slot 1 of 1, 0 other runs of yours there, /m);
      // The next run (another process) does not try box2 again within the minute.
      const again = await outrun(['-F', SSH_CONFIG, '-v', '-S', '1/box2,1/box3', 'uname', '-n'], { env });
      assert.equal(again.stdout.toString().trim(), names.get('box3'));
      assert.doesNotMatch(again.stderr, /box2 skipped/);
      assert.doesNotMatch(again.stderr, /pool: box2 chosen/);
      // Only box2: it is tried all the same (a stale skip must not fail a run), and 255.
      const none = await outrun(['-F', SSH_CONFIG, '-S', '1/box2', 'true'], { env });
      assert.equal(none.status, 255, none.stderr);
      assert.match(none.stderr, /^outrun: no host of the pool could be reached: box2: cannot connect to \S+ port \d+: /m);
    } finally {
      testbox('start-box', '2');
    }
    assert.equal(boxShell('uname -n', 'box2').trim(), names.get('box2'));
  });

  test('@NAME from the config file, --stats names the host; ":" runs here; the API reports the host', async () => {
    fresh();
    mkdirSync(path.join(state, 'config/outrun'), { recursive: true });
    writeFileSync(path.join(state, 'config/outrun/config'), '# test pools\npool two 1/box3, 1/box2\npool here :\n');
    const r = await outrun(['-F', SSH_CONFIG, '--stats', '@two', 'uname', '-n'], { env });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.toString().trim(), names.get('box3'));
    assert.match(r.stderr, /^outrun: stats: pool: the command ran on box3 \(slot 1 of 1, 0 other runs of yours there, /m);
    const here = await outrun(['-F', SSH_CONFIG, '@here', 'uname', '-n'], { env });
    assert.equal(here.stdout.toString().trim(), hostname());
    const bad = await outrun(['-F', SSH_CONFIG, '@nope', 'true'], { env });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^outrun: @nope: no pool of that name in \S+config\/outrun\/config; add a line: pool nope /);
    // The library API: a pool destination, the chosen host in the result; a local file read there.
    const data = randomBytes(300_001);
    const dir = mkdtempSync(path.join(tmpdir(), 'outrun-pool-data-'));
    try {
      writeFileSync(path.join(dir, 'in.bin'), data);
      const a = await run({ destination: '1/box2', argv: ['sha256sum', 'in.bin'], configFile: SSH_CONFIG, cwd: dir, env, stdout: 'pipe' });
      assert.equal(a.host, 'box2');
      assert.equal(a.stdout!.toString().split(' ')[0], sha256(data));
      assert.equal(readFileSync(path.join(dir, 'in.bin')).length, 300_001);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
