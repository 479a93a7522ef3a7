// scripts/bench-main.mjs: the benchmark harness of outrun (entry: scripts/bench; see BENCHMARKS.md).
//
// For each selected workload, in one run against the test box, interleaved run by run:
//   native            the workload run locally
//   ssh box true      (workload `true` only) the cost of one plain ssh session
//   sshfs + chroot    local "/" mounted on the box by sshfs over SSH (passive mode: the local
//                     sftp-server talks to `ssh box sshfs -o passive`), /proc,/sys,/dev bound in,
//                     `chroot` into it; cold = first run on a fresh mount, warm = second run on it
//   outrun            first-ever run (remote runtime cache removed first, upload included),
//                     then cold (the box's persistent cache /var/cache/outrun/fs emptied first,
//                     the runtime kept) and warm (the run right after: served from that cache),
//                     all direct (-S none); then through a live master (-o ControlPersist),
//                     started by one untimed run after the others
// Each figure is the median of --runs N (default 5). With --rtt MS everything that crosses the
// SSH link goes through scripts/delay-relay.mjs, which adds MS ms of round-trip delay.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  foreignActivity, fmtNum, fmtRatio, installSignalHandlers, isInterrupted, killGroup, loadavg, maxOf, mdTable, median,
  minOf, onCleanup, ownTree, run, runCleanups, shjoin, sleep, startBackground, waitExit,
} from './bench-lib.mjs';
import { BENCH_DIR, CFILES, WORKLOAD_ENV, WORKLOADS, findWorkload, parseDd, removeFixtures, setCfiles } from './bench-workloads.mjs';
import { SFTP_SERVER, SSHFS_OPTS, mountPeer } from './bench-sshfs.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'dist/src/client/cli.js');
const BOX_CONFIG = join(ROOT, '.testbox/ssh_config');
// The box's address (its testbox slot decides it), read from the ssh_config `scripts/testbox up` wrote.
const BOX_ADDR = existsSync(BOX_CONFIG)
  ? (/^\s*HostName\s+(\S+)/m.exec(readFileSync(BOX_CONFIG, 'utf8'))?.[1] ?? '10.213.0.2')
  : '10.213.0.2';
const MD = join(ROOT, 'BENCHMARKS.md');
const TIME = '/usr/bin/time';

const USAGE = `usage: scripts/bench [--runs N] [--rtt MS] [--only NAME[,NAME...]] [options]

Benchmarks outrun against native, a plain ssh session and sshfs + chroot, on the test box
(scripts/testbox up first; npm run build first). Prints a markdown table per workload and
writes it into BENCHMARKS.md.

  --runs N          runs per figure (median; default 5)
  --rtt MS          add MS ms of round-trip delay to the SSH link (scripts/delay-relay.mjs)
  --only NAMES      workloads, comma-separated or repeated: ${WORKLOADS.map((w) => w.name).join(', ')}
                    (default: all)
  --cfiles N        .c files of the generated C project for \`make\` (default ${CFILES}; 300 costs
                    ~2.5 min per outrun run today)
  --no-first-run    do not measure outrun's first-ever run (which removes /var/cache/outrun on the box)
  --no-count        do not count RPCs / SFTP requests (one extra logged run per variant)
  --no-sshfs        skip the sshfs + chroot peer
  --no-md           print only; do not touch BENCHMARKS.md
  --allow-stale-dist  measure even if dist is older than src/ (default: refuse)
  --keep            keep the fixtures in ${BENCH_DIR}
  --quiet-wait S    wait up to S s for other outrun/test processes on this machine to end (default 120)
  --max-minutes M   time budget: later runs are skipped once it is spent (default 45)
`;

function parseArgs(argv) {
  const o = { runs: 5, rtt: 0, only: [], firstRun: true, count: true, sshfs: true, md: true, keep: false, quietWait: 120, maxMinutes: 45 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    const num = (min) => {
      const v = Number(val());
      if (!Number.isFinite(v) || v < min) throw new Error(`${a} needs a number >= ${min}`);
      return v;
    };
    if (a === '--runs') o.runs = Math.floor(num(1));
    else if (a === '--rtt') o.rtt = num(0);
    else if (a === '--only') o.only.push(...val().split(',').filter(Boolean));
    else if (a === '--cfiles') o.cfiles = Math.floor(num(1));
    else if (a === '--no-first-run') o.firstRun = false;
    else if (a === '--no-count') o.count = false;
    else if (a === '--no-sshfs') o.sshfs = false;
    else if (a === '--no-md') o.md = false;
    else if (a === '--keep') o.keep = true;
    else if (a === '--allow-stale-dist') o.stale = true;
    else if (a === '--quiet-wait') o.quietWait = num(0);
    else if (a === '--max-minutes') o.maxMinutes = num(1);
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return o;
}

const log = (s) => process.stderr.write(`bench: ${s}\n`);
/** Runs whose result failed its workload's check (wrong bytes, rows or lines): the bench exits 1. */
let wrongResults = 0;

function boxUp() {
  const r = spawnSync(join(ROOT, 'scripts/testbox'), ['status'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === `up ${BOX_ADDR}`;
}

function hasLocal(cmd) {
  return spawnSync('/bin/sh', ['-c', `command -v ${cmd}`], { env: WORKLOAD_ENV, stdio: 'ignore' }).status === 0;
}

function runtimeId() {
  try {
    return JSON.parse(readFileSync(join(ROOT, 'dist/runtime/manifest.json'), 'utf8')).id;
  } catch {
    return '?';
  }
}

function machine() {
  const sh = (c) => {
    try {
      return execFileSync('/bin/sh', ['-c', c], { encoding: 'utf8', cwd: ROOT }).trim();
    } catch {
      return '?';
    }
  };
  const cpu = sh("awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo");
  const mem = sh("awk '/^MemTotal/ { printf \"%.0f GiB\", $2 / 1048576 }' /proc/meminfo");
  const commit = sh('git rev-parse --short HEAD');
  const dirty = sh('git status --porcelain -- src proto scripts/build.mjs scripts/build-runtime.mjs scripts/build-helper.sh | head -1');
  let runtime = '?';
  try {
    runtime = JSON.parse(readFileSync(join(ROOT, 'dist/runtime/manifest.json'), 'utf8')).id.slice(0, 12);
  } catch {
    /* unknown */
  }
  return {
    text: `nproc ${sh('nproc')}, kernel ${sh('uname -r')}, ${cpu}, ${mem} RAM; outrun ${commit}${dirty ? ' (+ uncommitted changes)' : ''} (runtime ${runtime}), node ${process.version}`,
  };
}

/** A temporary ssh_config whose `box` goes through the relay; HostKeyAlias keeps key checking. */
function relayConfig(port, dir) {
  const text = readFileSync(BOX_CONFIG, 'utf8')
    .replace(/^(\s*)HostName\s+.*$/m, `$1HostName 127.0.0.1\n$1HostKeyAlias ${BOX_ADDR}`)
    .replace(/^(\s*)Port\s+.*$/m, `$1Port ${port}`);
  if (!/HostKeyAlias/.test(text) || !text.includes(`Port ${port}`)) throw new Error(`cannot rewrite ${BOX_CONFIG} for the relay`);
  const f = join(dir, 'ssh_config.relay');
  writeFileSync(f, text, { mode: 0o600 });
  return f;
}

async function startRelay(rtt, dir) {
  const child = startBackground([process.execPath, join(ROOT, 'scripts/delay-relay.mjs'), '--rtt', String(rtt), '--target', `${BOX_ADDR}:22`, '--max-seconds', '3600']);
  const stop = onCleanup(async () => {
    child.stdin.end();
    if (!(await waitExit(child, 2000))) killGroup(child, 'SIGKILL');
  });
  const port = await new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('the delay relay did not start')), 10_000);
    child.stdout.on('data', (d) => {
      buf += d;
      const m = /^(\d+)\n/.exec(buf);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    child.on('close', () => reject(new Error('the delay relay exited')));
  });
  child.stderr.on('data', (d) => process.stderr.write(`relay: ${d}`));
  return { port, config: relayConfig(port, dir), stop };
}

// ---------------------------------------------------------------------------------------------------

class Section {
  constructor(w) {
    this.w = w;
    this.samples = {}; // variant -> [{ seconds, rate, rss }]
    this.errors = {}; // variant -> first error text
    this.counts = {}; // variant -> number
    this.methods = undefined; // outrun RPC method -> count
    this.notes = [];
    this.foreignSamples = 0;
    this.totalSamples = 0;
    this.stdoutMismatch = 0;
    this.wrong = 0; // runs whose result failed the workload's verify
  }
  add(variant, s) {
    (this.samples[variant] ??= []).push(s);
  }
  fail(variant, text) {
    this.errors[variant] ??= text;
    this.add(variant, { seconds: NaN, rate: NaN, rss: NaN });
  }
  med(variant, key) {
    return median((this.samples[variant] ?? []).map((s) => s[key]));
  }
}

async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${e.message}\n${USAGE}`);
    process.exit(2);
  }
  const cmdline = ['scripts/bench', ...process.argv.slice(2)].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a}'`)).join(' ');
  installSignalHandlers();
  if (o.cfiles) setCfiles(o.cfiles);

  if (process.getuid() !== 0) throw new Error('run as root (scripts/testbox status needs it)');
  if (!existsSync(CLI)) throw new Error(`${CLI} missing: run npm run build first`);
  if (!existsSync(BOX_CONFIG) || !boxUp()) throw new Error('the test box is not up: scripts/testbox up (nothing was sent anywhere)');

  const selected = [];
  for (const n of o.only.length ? o.only : WORKLOADS.map((w) => w.name)) {
    const w = findWorkload(n);
    if (!w) throw new Error(`unknown workload ${n} (have: ${WORKLOADS.map((x) => x.name).join(', ')})`);
    if (!selected.includes(w)) selected.push(w);
  }

  const tmp = mkdtempSync(join(tmpdir(), 'outrun-bench-'));
  onCleanup(async () => rmSync(tmp, { recursive: true, force: true }));
  if (!o.keep) onCleanup(async () => removeFixtures());

  const admin = (script, timeoutS = 60) => run(['ssh', '-F', BOX_CONFIG, '-o', 'BatchMode=yes', 'box', script], { timeoutS });

  // The peer needs sftp-server here and sshfs + util-linux on the box.
  let sshfsWhy = '';
  if (!o.sshfs) sshfsWhy = 'skipped (--no-sshfs)';
  else if (!existsSync(SFTP_SERVER)) sshfsWhy = `skipped: ${SFTP_SERVER} missing here (apt-get install openssh-sftp-server)`;
  else {
    const r = await admin('command -v sshfs && command -v nsenter && command -v unshare && test -e /dev/fuse');
    if (r.status !== 0) sshfsWhy = 'skipped: the box lacks sshfs, nsenter, unshare or /dev/fuse (rebuild it: scripts/testbox build)';
  }
  if (sshfsWhy) log(`sshfs peer ${sshfsWhy}`);
  const haveTime = existsSync(TIME);
  const help = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' });
  const statsFlag = /--stats/.test(`${help.stdout}${help.stderr}`);
  // dist must be built from what is checked out: the tables name the commit.
  const srcNewer = spawnSync('/bin/sh', ['-c', `find src proto -newer ${CLI} -type f | head -3`], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  const lastSrcCommit = Number(spawnSync('git', ['log', '-1', '--format=%ct', '--', 'src', 'proto'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim());
  if (srcNewer || (lastSrcCommit && lastSrcCommit * 1000 > statSync(CLI).mtimeMs)) {
    if (!o.stale) throw new Error(`dist is older than the sources (${srcNewer.split('\n')[0] || 'a later commit'}): run npm run build (or pass --allow-stale-dist)`);
    log('warning: dist is older than the sources (--allow-stale-dist)');
  }

  let relay;
  let dataConfig = BOX_CONFIG;
  if (o.rtt > 0) {
    relay = await startRelay(o.rtt, tmp);
    dataConfig = relay.config;
    log(`delay relay on 127.0.0.1:${relay.port} (+${o.rtt} ms round trip) -> ${BOX_ADDR}:22`);
  }

  // Other outrun clients or test runs on this machine share its 2 cores and the box: wait (bounded).
  const t0wait = Date.now();
  for (let said = false; ; ) {
    const f = foreignActivity(ownTree());
    if (!f.length) break;
    if (Date.now() - t0wait > o.quietWait * 1000) {
      log(`other outrun/test processes still run after ${o.quietWait} s; measuring anyway (noted in the results)`);
      break;
    }
    if (!said) log(`waiting up to ${o.quietWait} s for other outrun/test processes to end: ${f[0]}${f.length > 1 ? ` (+${f.length - 1})` : ''}`);
    said = true;
    await sleep(2000);
  }

  const deadline = Date.now() + o.maxMinutes * 60_000;
  const mach = machine();
  let firstDone = !o.firstRun;
  let runtimeReady = false;
  const outputs = [];

  for (const w of selected) {
    if (isInterrupted()) break;
    if (!boxUp()) throw new Error('the test box went down; stopping (nothing more is sent)');
    const missing = w.needs.filter((c) => !hasLocal(c));
    if (missing.length) {
      log(`${w.name}: skipped, missing locally: ${missing.join(' ')}`);
      continue;
    }
    if (Date.now() > deadline) {
      log(`${w.name}: skipped, time budget (--max-minutes ${o.maxMinutes}) spent`);
      continue;
    }
    const sec = new Section(w);
    sec.load0 = loadavg();
    const rt0 = runtimeId();
    log(`${w.name}: preparing`);
    mkdirSync(BENCH_DIR, { recursive: true });
    await w.setup?.();
    // Local clean-up before a run (native, outrun); the sshfs runs clean through their mount.
    const before = async () => {
      if (!w.clean) return;
      const r = await run(w.clean, { cwd: w.cwd, env: WORKLOAD_ENV, timeoutS: 120 });
      if (r.status !== 0) throw new Error(`${shjoin(w.clean)} failed: ${r.stderr.trim()}`);
    };
    const cleanVia = (peer) => async () => {
      if (!w.clean) return;
      const r = await run(peer.commandFor(w.clean, w.cwd, WORKLOAD_ENV), { timeoutS: 300 });
      if (r.status !== 0) throw new Error(`${shjoin(w.clean)} through the sshfs mount failed: ${r.stderr.trim()}`);
    };

    // ---- how each variant runs one measurement ----------------------------------------------
    const rssFile = join(tmp, 'rss');
    const measure = async (variant, argv, { timeoutS = w.timeoutS, env = WORKLOAD_ENV, cwd = w.cwd, rss = false, expectStdout, prep = before } = {}) => {
      if (isInterrupted()) return;
      await prep();
      sec.totalSamples++;
      if (foreignActivity(ownTree()).length) sec.foreignSamples++;
      const full = rss && haveTime ? [TIME, '-f', '%M', '-o', rssFile, ...argv] : argv;
      rmSync(rssFile, { force: true });
      const r = await run(full, { cwd, env, timeoutS });
      if (r.status !== 0) {
        const why = r.timedOut ? `timed out after ${timeoutS} s` : `exit status ${r.status ?? r.signal}`;
        sec.fail(variant, `${why}: ${r.stderr.trim().split('\n').slice(-2).join(' / ').slice(0, 300)}`);
        log(`${w.name}/${variant}: FAILED (${why})`);
        return;
      }
      const s = { seconds: r.seconds, rate: NaN, rss: NaN };
      if (w.kind === 'rate') {
        const mbps = w.rate ? w.rate.parse(r.stderr) : parseDd(r.stderr)?.mbps;
        if (mbps !== undefined) s.rate = mbps;
        else sec.notes.push(`${variant}: ${w.rate ? 'the rate report' : "dd's report"} not found`);
      }
      // A run that produced wrong bytes is no measurement: it fails, loudly.
      const wrong = w.verify ? await w.verify() : undefined;
      if (wrong) {
        sec.wrong++;
        wrongResults++;
        sec.fail(variant, `WRONG RESULT: ${wrong}`);
        log(`${w.name}/${variant}: WRONG RESULT: ${wrong}`);
        return;
      }
      if (rss && haveTime) {
        try {
          const kb = Number(readFileSync(rssFile, 'utf8').trim().split('\n').pop());
          if (Number.isFinite(kb)) s.rss = kb / 1024;
        } catch {
          /* no rss */
        }
      }
      if (expectStdout !== undefined && r.stdout !== expectStdout) {
        sec.stdoutMismatch++;
        sec.errors[variant] ??= `stdout differs from native: ${JSON.stringify(r.stdout.slice(0, 80))} vs ${JSON.stringify(expectStdout.slice(0, 80))}`;
      }
      sec.add(variant, s);
      log(`${w.name}/${variant}: ${w.kind === 'rate' ? `${fmtNum(s.rate)} MB/s, ` : ''}${r.seconds.toFixed(3)} s`);
    };
    // Direct runs: no master is used even if one is there.
    const outrunArgv = (extra = ['-S', 'none']) => [process.execPath, CLI, ...extra, '-F', dataConfig, 'box', ...w.argv];
    const masterSock = join(tmp, `master-${w.name}.sock`);
    const masterArgv = () => outrunArgv(['-S', masterSock, '-o', 'ControlPersist=600']);
    const endMaster = () => run([process.execPath, CLI, '-S', masterSock, '-F', dataConfig, '-O', 'exit', 'box'], { timeoutS: 30 });
    const coldPrep = async () => {
      await before();
      const r = await admin('rm -rf /var/cache/outrun/fs');
      if (r.status !== 0) throw new Error('cannot empty the persistent cache on the box');
    };

    const measureAll = async () => {
      // ---- a first native run: checks the workload and warms the local caches -------------------
      await before();
      const warm = await run(w.argv, { cwd: w.cwd, env: WORKLOAD_ENV, timeoutS: w.timeoutS });
      if (warm.status !== 0) {
        log(`${w.name}: skipped, fails natively: ${warm.stderr.trim().split('\n').pop()}`);
        await before().catch(() => undefined);
        return false;
      }
      const expect = w.checkStdout ? warm.stdout : undefined;
      const wrong = w.verify ? await w.verify() : undefined;
      if (wrong) {
        wrongResults++;
        log(`${w.name}: skipped, WRONG RESULT natively: ${wrong}`);
        await before().catch(() => undefined);
        return false;
      }

      if (!runtimeReady && firstDone) {
        // No first-ever figure wanted: one untimed run, so that no timed run pays an upload
        // (a rebuilt dist has a new runtime id).
        runtimeReady = true;
        await before();
        await run(outrunArgv(), { cwd: w.cwd, env: WORKLOAD_ENV, timeoutS: w.timeoutS + 120 });
      }
      if (!firstDone) {
        firstDone = true;
        runtimeReady = true;
        log(`${w.name}: outrun first-ever run (removing /var/cache/outrun on the box)`);
        const r = await admin('rm -rf /var/cache/outrun');
        if (r.status === 0) await measure('first', outrunArgv(), { rss: true, expectStdout: expect, timeoutS: w.timeoutS + 120 });
        else sec.notes.push('could not remove /var/cache/outrun: no first-ever figure');
      }

      for (let i = 0; i < o.runs; i++) {
        if (isInterrupted()) break;
        if (Date.now() > deadline) {
          sec.notes.push(`stopped after ${i} of ${o.runs} runs: time budget (--max-minutes ${o.maxMinutes}) spent`);
          break;
        }
        log(`${w.name}: run ${i + 1}/${o.runs}`);
        await measure('native', w.argv, { expectStdout: expect });
        if (w.sshBaseline) await measure('ssh', ['ssh', '-F', dataConfig, '-o', 'BatchMode=yes', 'box', 'true'], { env: process.env });
        if (!sshfsWhy) {
          let peer;
          try {
            peer = await mountPeer({ sshConfig: dataConfig, adminConfig: BOX_CONFIG, tmpDir: tmp });
          } catch (e) {
            sec.fail('sshfsCold', e.message);
          }
          if (peer) {
            try {
              const argv = peer.commandFor(w.argv, w.cwd, WORKLOAD_ENV);
              // cold: a local clean is enough (nothing is cached on a fresh mount), and cleaning
              // through the mount would warm it; warm: clean through the mount.
              await measure('sshfsCold', argv, { env: process.env, expectStdout: expect });
              await measure('sshfsWarm', argv, { env: process.env, expectStdout: expect, prep: cleanVia(peer) });
            } finally {
              await peer.unmount();
            }
          }
        }
        // cold: the remote's persistent cache emptied (the runtime stays); warm: the run after.
        await measure('outCold', outrunArgv(), { rss: true, expectStdout: expect, prep: coldPrep });
        await measure('outWarm', outrunArgv(), { rss: true, expectStdout: expect });
      }

      // Through a master: apart from the loop above, whose cold runs empty the remote cache
      // under the master's agent. One untimed run starts it.
      if (!isInterrupted() && Date.now() < deadline) {
        log(`${w.name}: through a master (${o.runs} runs)`);
        const stopMaster = onCleanup(endMaster);
        await before();
        await run(masterArgv(), { cwd: w.cwd, env: WORKLOAD_ENV, timeoutS: w.timeoutS + 120 });
        for (let i = 0; i < o.runs && !isInterrupted() && Date.now() < deadline; i++) {
          if (w.sshBaseline) await measure('ssh', ['ssh', '-F', dataConfig, '-o', 'BatchMode=yes', 'box', 'true'], { env: process.env });
          await measure('outMaster', masterArgv(), { rss: true, expectStdout: expect });
        }
        await stopMaster();
      }

      // ---- counting: one logged run per variant (not timed) ------------------------------------
      if (o.count && !isInterrupted() && Date.now() < deadline) {
        log(`${w.name}: counting RPCs (outrun ${statsFlag ? '--stats' : '-vvv'}) and SFTP requests (sftp-server -l DEBUG3)`);
      await before();
      const methods = {};
      let n = 0;
      let stats;
      // Counted without the added delay: the number of RPCs does not depend on it. Cold (the
      // persistent cache emptied) first, then warm.
      await coldPrep();
      const countRun = () => run([process.execPath, CLI, statsFlag ? '--stats' : '-vvv', '-F', BOX_CONFIG, 'box', ...w.argv], {
        cwd: w.cwd,
        env: WORKLOAD_ENV,
        timeoutS: w.timeoutS * 2,
        onStderrLine: (l) => {
          let m = /^outrun: rpc (\S+) [\d.]+ ms/.exec(l);
          if (m) {
            n++;
            methods[m[1]] = (methods[m[1]] ?? 0) + 1;
            return;
          }
          m = /^outrun: stats: (\d+) RPCs, (\d+) round trips on the critical path/.exec(l);
          if (m) stats = { rpcs: Number(m[1]), critical: Number(m[2]) };
          m = /^outrun: stats: RPCs by kind: (.*)$/.exec(l);
          if (m) for (const [, k, c] of m[1].matchAll(/(\w+) (\d+)/g)) methods[k] = Number(c);
        },
      });
      for (const variant of ['outCold', 'outWarm']) {
        n = 0;
        stats = undefined;
        for (const k of Object.keys(methods)) delete methods[k];
        if (variant === 'outWarm') await before();
        const r = await countRun();
        if (r.status === 0) {
          sec.counts[variant] = stats ? `${stats.rpcs} (${stats.critical} critical)` : n;
          if (variant === 'outCold') sec.methods = { ...methods };
          else sec.methodsWarm = { ...methods };
        } else sec.notes.push(`RPC count run (${variant}) failed (${r.timedOut ? 'timed out' : `status ${r.status}`})`);
      }
      if (!sshfsWhy) {
          let peer;
          try {
            peer = await mountPeer({ sshConfig: BOX_CONFIG, adminConfig: BOX_CONFIG, tmpDir: tmp, logRequests: true });
            const argv = peer.commandFor(w.argv, w.cwd, WORKLOAD_ENV);
            await before();
            await sleep(300);
            const base = peer.requests();
            const a = await run(argv, { cwd: w.cwd, timeoutS: w.timeoutS * 2 });
            await sleep(300);
            const c1a = peer.requests();
            await cleanVia(peer)();
            await sleep(300);
            const c1 = peer.requests();
            const b = await run(argv, { cwd: w.cwd, timeoutS: w.timeoutS * 2 });
            await sleep(300);
            const c2 = peer.requests();
            if (a.status === 0) sec.counts.sshfsCold = c1a - base;
            if (b.status === 0) sec.counts.sshfsWarm = c2 - c1;
          } catch (e) {
            sec.notes.push(`SFTP request count failed: ${e.message}`);
          } finally {
            await peer?.unmount();
          }
        }
      }
      return true;
    };
    let ran = false;
    try {
      ran = await measureAll();
    } catch (e) {
      if (isInterrupted()) break;
      log(`${w.name}: stopped: ${e.message}`);
      sec.notes.push(`**stopped early: ${e.message}**`);
      ran = true;
    }
    if (!ran) continue;
    if (isInterrupted()) break; // no partial tables: the signal handler cleans up and exits
    await before().catch(() => undefined);
    sec.load1 = loadavg();
    if (runtimeId() !== rt0) sec.notes.push(`**dist was rebuilt during this section (runtime ${rt0.slice(0, 12)} -> ${runtimeId().slice(0, 12)}): figures mix two builds; run again**`);

    const block = render(sec, o, mach, cmdline, sshfsWhy);
    process.stdout.write(`\n${block.text}\n`);
    outputs.push(block);
    if (o.md) writeBlock(block);
  }

  if (isInterrupted()) await new Promise(() => undefined); // the signal handler exits
  await runCleanups();
  if (o.md && outputs.length) log(`results written to ${MD}`);
  if (wrongResults) {
    log(`error: ${wrongResults} run(s) produced WRONG RESULTS (see the FAILED rows and the log above)`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------------------------------------------

function render(sec, o, mach, cmdline, sshfsWhy) {
  const w = sec.w;
  const rate = w.kind === 'rate';
  const key = rate ? 'rate' : 'seconds';
  const med = (v) => sec.med(v, key);
  const native = med('native');
  const sCold = med('sshfsCold');
  const sWarm = med('sshfsWarm');
  // time: variant / reference (> 1 = slower); throughput: variant / reference (< 1 = slower)
  const ratio = (x, ref) => (Number.isFinite(x) && Number.isFinite(ref) && ref > 0 ? x / ref : NaN);
  const variants = [
    ['native', 'native (local)', sWarm],
    ['ssh', '`ssh box true` (one plain ssh session)', sWarm],
    ['sshfsCold', 'sshfs + chroot, cold (fresh mount)', sCold],
    ['sshfsWarm', 'sshfs + chroot, warm (2nd run on the mount)', sWarm],
    ['first', 'outrun, first-ever run (runtime upload)', sCold],
    ['outCold', 'outrun cold (empty remote cache; runtime present)', sCold],
    ['outWarm', 'outrun warm (2nd run: persistent cache)', sWarm],
    ['outMaster', 'outrun through a live master (-o ControlPersist)', sWarm],
  ];
  const header = rate
    ? ['variant', w.rate?.label ?? 'median MB/s (dd)', 'median wall s', 'min–max MB/s', '× native', '× sshfs', 'requests (outrun: RPCs, critical path)', 'outrun peak RSS']
    : ['variant', 'median s', 'min–max s', '× native', '× sshfs', 'requests (outrun: RPCs, critical path)', 'outrun peak RSS'];
  const rows = [];
  for (const [v, label, ref] of variants) {
    const ss = sec.samples[v];
    if (!ss && !sec.errors[v]) continue;
    const vals = (ss ?? []).map((s) => s[key]);
    const m = median(vals);
    const n = vals.filter(Number.isFinite).length;
    const nLabel = v === 'first' ? label : `${label}${n && n !== o.runs ? ` (n=${n})` : ''}`;
    const count = sec.counts[v] !== undefined ? String(sec.counts[v]) : '';
    const rss = v === 'first' || v === 'outCold' || v === 'outWarm' ? median((ss ?? []).map((s) => s.rss)) : NaN;
    const rssText = Number.isFinite(rss) ? `${rss.toFixed(0)} MiB` : '';
    const failed = !n ? `FAILED: ${sec.errors[v] ?? '?'}` : undefined;
    if (failed) {
      rows.push(rate ? [nLabel, failed, '', '', '', '', count, ''] : [nLabel, failed, '', '', '', count, '']);
      continue;
    }
    const range = n > 1 ? `${fmtNum(minOf(vals))}–${fmtNum(maxOf(vals))}` : '';
    const xNative = v === 'native' ? '1' : fmtRatio(ratio(m, native));
    const xSshfs = v === 'sshfsCold' || v === 'sshfsWarm' ? '1' : fmtRatio(ratio(m, ref));
    if (rate) rows.push([nLabel, fmtNum(m), fmtNum(sec.med(v, 'seconds')), range, xNative, xSshfs, count, rssText]);
    else rows.push([nLabel, fmtNum(m), range, xNative, xSshfs, count, rssText]);
  }
  const title = `### ${w.name}: ${w.title}${o.rtt ? `, added round trip ${o.rtt} ms` : ', no added delay'}`;
  const lines = [
    title,
    '',
    `\`${cmdline}\` on ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}; ${mach.text}; load average ${sec.load0} before, ${sec.load1} after.`,
    '',
    mdTable(header, rows),
    '',
  ];
  const notes = [];
  notes.push(
    `Workload argv: \`${shjoin(w.argv)}\` in \`${w.cwd}\`, environment \`PATH=${WORKLOAD_ENV.PATH} LC_ALL=C\` for every variant. ` +
      (rate
        ? (w.rate?.note ?? 'MB/s = 10^6 bytes/s from dd\'s own report (the transfer only); wall s includes session set-up. × ratios are throughput ratios (< 1 = slower).')
        : 'Times are wall seconds of the whole command, connection and set-up included; × ratios are time ratios (> 1 = slower).') +
      ' "× sshfs" compares cold rows (and the first-ever run) with sshfs cold, the other rows with sshfs warm.',
  );
  if (sshfsWhy) notes.push(`sshfs peer ${sshfsWhy}.`);
  if (w.verify) notes.push(sec.wrong ? `**${sec.wrong} runs produced a WRONG RESULT (failed rows above).**` : 'The result was checked after every measured run (see the title): right every time.');
  if (w.checkStdout) notes.push(sec.stdoutMismatch ? `**stdout differed from native in ${sec.stdoutMismatch} runs.**` : 'stdout was identical to native in every run.');
  if (sec.methods) {
    const top = Object.entries(sec.methods).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([m, c]) => `${m} ${c}`).join(', ');
    notes.push(`outrun RPCs by kind, cold (one extra run): ${top || 'none'}.`);
  }
  if (sec.methodsWarm) {
    const top = Object.entries(sec.methodsWarm).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([m, c]) => `${m} ${c}`).join(', ');
    notes.push(`outrun RPCs by kind, warm: ${top || 'none'}.`);
  }
  if (w.sshBaseline && Number.isFinite(med('ssh'))) {
    const vs = (v) => fmtRatio(ratio(med(v), med('ssh')));
    notes.push(`Against \`ssh box true\`: outrun cold ${vs('outCold')}, warm ${vs('outWarm')}, through a live master ${vs('outMaster')} (targets: a cold run at most 1.5×, through a master at most 0.25×).`);
  }
  for (const [v, e] of Object.entries(sec.errors)) if (sec.samples[v]?.some((s) => Number.isFinite(s.seconds))) notes.push(`${v}: some runs failed or differed: ${e}`);
  if (sec.foreignSamples) notes.push(`**Other outrun clients or test runs were active on this machine at ${sec.foreignSamples} of ${sec.totalSamples} measurements** (shared CPU and box: noisier figures).`);
  notes.push(...sec.notes);
  lines.push(...notes.map((n) => `- ${n}`));
  const size = w.name === 'make' ? `-${CFILES}files` : '';
  return { key: `${w.name}${size}@rtt${o.rtt}`, text: lines.join('\n') };
}

const MD_HEAD = `# Benchmarks

Produced by \`scripts/bench\`; see the top of \`scripts/bench-main.mjs\` for the method.

<!-- bench:results (scripts/bench replaces the blocks below, keyed by workload and added delay) -->
`;

function writeBlock(block) {
  let md = existsSync(MD) ? readFileSync(MD, 'utf8') : MD_HEAD;
  const begin = `<!-- bench:begin ${block.key} -->`;
  const end = `<!-- bench:end ${block.key} -->`;
  const full = `${begin}\n${block.text}\n${end}`;
  const i = md.indexOf(begin);
  const j = md.indexOf(end);
  if (i >= 0 && j > i) md = md.slice(0, i) + full + md.slice(j + end.length);
  else md = `${md.replace(/\n*$/, '\n')}\n${full}\n`;
  const tmpf = `${MD}.tmp.${process.pid}`;
  writeFileSync(tmpf, md);
  spawnSync('mv', ['-f', tmpf, MD]);
}

main().then(
  () => process.exit(0),
  async (e) => {
    process.stderr.write(`bench: error: ${e?.message ?? e}\n`);
    await runCleanups();
    process.exit(1);
  },
);
