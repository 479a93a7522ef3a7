// End to end: `outrun slurm://cluster cmd` against the test cluster (scripts/testcluster up:
// login node `cluster`, compute nodes outrun-node1..3 in partition debug, a shared home). Not
// part of scripts/run-tests.mjs: run it by hand with the cluster up,
//   scripts/testcluster up && node --test dist/test/e2e/slurm.test.js
// The command runs on a compute node, not the login node; concurrent runs spread over the
// nodes; files go both ways; statuses pass through; Slurm's own refusals and a busy partition
// give their line and status; an existing allocation is used, not another; nothing is left
// behind (no job, no outrun program on any node).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ROOT, SSH_CONFIG, outrun, waitEmpty } from './harness';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const NODES = ['outrun-node1', 'outrun-node2', 'outrun-node3'];
const onSlurm = (args: string[], env?: NodeJS.ProcessEnv) => outrun(['-F', SSH_CONFIG, ...args], { env: env ?? withoutJob(), timeoutMs: 90_000 });

/** The local environment without an allocation of its own (the suite may run inside one). */
function withoutJob(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.SLURM_JOB_ID;
  return env;
}

function cluster(script: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ssh', ['-F', SSH_CONFIG, '-o', 'BatchMode=yes', 'cluster', script], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** What outrun left on the cluster: jobs, and outrun programs on each node. */
function leftovers(): string {
  const jobs = cluster('squeue -h -o "%i %j %T"').stdout.trim();
  const procs = NODES.map((n) => {
    const r = spawnSync(path.join(ROOT, 'scripts/testcluster'), ['exec', n.replace(/^outrun-/, ''), 'pgrep', '-af', 'outrun-helper|agent.js'], { encoding: 'utf8' });
    return r.stdout.trim() ? `${n}: ${r.stdout.trim()}` : '';
  }).filter(Boolean);
  return [jobs && `jobs: ${jobs}`, ...procs].filter(Boolean).join('\n');
}

const waitClean = (ms = 10_000) => waitEmpty(leftovers, ms, 300);

describe('slurm://: Slurm places the command', { timeout: 600_000 }, () => {
  let dir = '';
  before(() => {
    const r = cluster('sinfo -h -o "%P %a %D"');
    assert.equal(r.status, 0, `the test cluster is not up (ssh -F .testbox/ssh_config cluster sinfo: ${r.stderr.trim() || `status ${r.status}`}); start it with scripts/testcluster up`);
    dir = mkdtempSync(path.join(tmpdir(), 'outrun-slurm-e2e-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the command runs on a compute node, not the login node', async () => {
    const r = await onSlurm(['slurm://cluster', 'uname', '-n']);
    assert.equal(r.status, 0, r.stderr);
    assert.ok(NODES.includes(r.stdout.toString().trim()), `ran on ${r.stdout.toString().trim()}`);
    assert.equal(await waitClean(), '');
  });

  test('6 concurrent runs land on at least two compute nodes', async () => {
    const rs = await Promise.all(Array.from({ length: 6 }, () => onSlurm(['slurm://cluster', 'uname', '-n'])));
    for (const r of rs) assert.equal(r.status, 0, r.stderr);
    const names = new Set(rs.map((r) => r.stdout.toString().trim()));
    for (const n of names) assert.ok(NODES.includes(n), `ran on ${n}`);
    assert.ok(names.size >= 2, `all on ${[...names].join(',')}`);
    assert.equal(await waitClean(), '');
  });

  test('a file written there lands here, a file here is read there', async () => {
    const input = randomBytes(3 << 20);
    writeFileSync(path.join(dir, 'in.bin'), input);
    const out = path.join(dir, 'out.bin');
    const r = await onSlurm(['slurm://cluster', 'sh', '-c', `sha256sum ${dir}/in.bin && head -c 2000000 /dev/urandom > ${out} && sha256sum ${out}`]);
    assert.equal(r.status, 0, r.stderr);
    const [inSum, outSum] = r.stdout.toString().trim().split('\n').map((l) => l.split(' ')[0]);
    assert.equal(inSum, sha256(input));
    const written = readFileSync(out);
    assert.equal(written.length, 2_000_000);
    assert.equal(outSum, sha256(written));
  });

  test('stdin, stdout and stderr pass through, binary safe; the exit status is the command\'s', async () => {
    const data = randomBytes(1 << 20);
    const r = await outrun(['-F', SSH_CONFIG, 'slurm://cluster', 'sh', '-c', 'cat; echo err >&2; exit 7'], { input: data, env: withoutJob(), timeoutMs: 90_000 });
    assert.equal(r.status, 7, r.stderr);
    assert.equal(sha256(r.stdout), sha256(data));
    // srun's own "task 0: Exited with exit code 7" is not added to the command's stderr.
    assert.equal(r.stderr, 'err\n');
    assert.equal(await waitClean(), '');
  });

  test('a bad partition: one line, status 253', async () => {
    const r = await onSlurm(['slurm://cluster/nope', 'true']);
    assert.equal(r.status, 253, r.stderr);
    assert.equal(r.stderr, 'outrun: Slurm refused the allocation: Invalid partition name specified; check the partition (sinfo lists them)\n');
    assert.equal(await waitClean(), '');
  });

  test('-t is refused with one line', async () => {
    const r = await onSlurm(['-t', 'slurm://cluster', 'true']);
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^outrun: slurm:\/\/ runs have no terminal \(-t\) yet/);
  });

  test('all nodes taken: --immediate=2 gives up with one line, status 252; inside that allocation the runs use its nodes', async () => {
    const held = cluster('salloc --no-shell -N3 --exclusive 2>&1');
    const job = /Granted job allocation (\d+)/.exec(held.stdout)?.[1];
    assert.ok(job, held.stdout);
    try {
      const r = await onSlurm(['-o', 'SlurmOptions=--immediate=2', 'slurm://cluster', 'true']);
      assert.equal(r.status, 252, r.stderr);
      assert.match(r.stderr, /^outrun: the Slurm allocation was still pending when salloc gave up: /);
      assert.equal(r.stderr.split('\n').length, 2, r.stderr);
      // Ctrl-C while the job is pending: it is cancelled, not left in the queue.
      const { spawn } = await import('node:child_process');
      const waiting = spawn(process.execPath, [path.join(ROOT, 'dist/src/client/cli.js'), '-F', SSH_CONFIG, 'slurm://cluster', 'true'], { env: withoutJob(), stdio: 'ignore' });
      const end = Date.now() + 15_000;
      while (!/PENDING/.test(cluster('squeue -h -o %T').stdout) && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
      waiting.kill('SIGINT');
      assert.equal(await new Promise((r) => waiting.on('close', (code, sig) => r(code ?? sig))), 'SIGINT');
      assert.equal(cluster('squeue -h -t PD -o %i').stdout.trim(), '');
      // SLURM_JOB_ID here (as inside `salloc -N3 make -j`): steps of that job, spread over its nodes.
      const rs = await Promise.all(Array.from({ length: 6 }, () => onSlurm(['slurm://cluster', 'uname', '-n'], { ...withoutJob(), SLURM_JOB_ID: job })));
      for (const x of rs) assert.equal(x.status, 0, x.stderr);
      // The least used node each time (counted under a lock): 2 runs on each of the 3.
      assert.equal(new Set(rs.map((x) => x.stdout.toString().trim())).size, 3);
      const gone = await onSlurm(['-o', 'SlurmJob=99999', 'slurm://cluster', 'true']);
      assert.equal(gone.status, 253);
      assert.match(gone.stderr, /^outrun: the Slurm job 99999 has no nodes to run on: .*Invalid job id specified/);
      // The job is ours to end, not outrun's: it is still there.
      assert.match(cluster(`squeue -h -j ${job} -o %T`).stdout, /RUNNING/);
    } finally {
      cluster(`scancel ${job}`);
    }
    assert.equal(await waitClean(), '');
  });

  test('make -j4 CC="outrun slurm://cluster cc" builds the same objects as cc here', async () => {
    const src = path.join(dir, 'make');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(path.join(src, 'ref'), { recursive: true });
    const objs = [1, 2, 3, 4, 5, 6].map((i) => {
      writeFileSync(path.join(src, `f${i}.c`), `int f${i}(int x) { return x * ${i} + 1; }\n`);
      return `f${i}.o`;
    });
    writeFileSync(path.join(src, 'Makefile'), `all: ${objs.join(' ')}\n%.o: %.c\n\t$(CC) -O2 -c $< -o $@\n`);
    const local = spawnSync('make', ['-s', '-C', src, 'CC=cc'], { encoding: 'utf8' });
    assert.equal(local.status, 0, local.stderr);
    for (const o of objs) writeFileSync(path.join(src, 'ref', o), readFileSync(path.join(src, o)));
    for (const o of objs) rmSync(path.join(src, o));
    const cc = `${process.execPath} ${path.join(ROOT, 'dist/src/client/cli.js')} -F ${SSH_CONFIG} slurm://cluster cc`;
    const remote = spawnSync('make', ['-s', '-j4', '-C', src, `CC=${cc}`], { encoding: 'utf8', env: withoutJob(), timeout: 180_000 });
    assert.equal(remote.status, 0, remote.stderr);
    for (const o of objs) assert.equal(sha256(readFileSync(path.join(src, o))), sha256(readFileSync(path.join(src, 'ref', o))), o);
    assert.equal(await waitClean(), '');
  });

  test('a killed outrun leaves no job behind (the allocation ends with the connection)', async () => {
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, [path.join(ROOT, 'dist/src/client/cli.js'), '-F', SSH_CONFIG, 'slurm://cluster', 'sh', '-c', 'echo started; sleep 60'], { env: withoutJob(), stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.kill('SIGKILL');
    assert.equal(await waitClean(15_000), '');
  });
});
