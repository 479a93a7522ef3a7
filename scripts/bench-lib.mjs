// scripts/bench-lib.mjs: process running with timeouts, timing, statistics, cleanup, markdown.
// Part of scripts/bench (see BENCHMARKS.md).
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

// ---- cleanup on every exit path -------------------------------------------------------------

const cleanups = []; // LIFO: async () => void
const running = new Set(); // child processes to kill on interrupt
let interrupted = false;

/** Registers a cleanup step; returns a function that runs it now (once) and unregisters it. */
export function onCleanup(fn) {
  let done = false;
  const step = async () => {
    if (done) return;
    done = true;
    const i = cleanups.indexOf(step);
    if (i >= 0) cleanups.splice(i, 1);
    await fn();
  };
  cleanups.push(step);
  return step;
}

export async function runCleanups() {
  while (cleanups.length) {
    const step = cleanups[cleanups.length - 1];
    try {
      await step();
    } catch (e) {
      process.stderr.write(`bench: cleanup step failed: ${e?.message ?? e}\n`);
    }
  }
}

export const isInterrupted = () => interrupted;

/** Ctrl-C / SIGTERM / SIGHUP: kill what runs, clean up (bounded), exit 130. */
export function installSignalHandlers() {
  const handler = (sig) => {
    if (interrupted) {
      process.stderr.write('bench: second signal, exiting without waiting for cleanup\n');
      process.exit(130);
    }
    interrupted = true;
    process.stderr.write(`bench: ${sig}: stopping, cleaning up (mounts on the box, relay, temp files) ...\n`);
    for (const c of running) killTree(c, 'SIGKILL');
    const hard = setTimeout(() => process.exit(130), 20_000);
    hard.unref();
    runCleanups().finally(() => process.exit(130));
  };
  for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => handler(s));
}

function killTree(child, sig) {
  try {
    if (child.__group) process.kill(-child.pid, sig);
    else child.kill(sig);
  } catch {
    /* already gone */
  }
}

// ---- running commands -------------------------------------------------------------------------

/**
 * Runs argv, returns { status, signal, seconds, stdout, stderr, timedOut }. stdout is kept whole
 * (workloads print little); stderr keeps its last 64 KiB unless opts.onStderrLine is given, which
 * sees every line instead (used to count RPC log lines without buffering megabytes).
 */
export function run(argv, opts = {}) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0], argv.slice(1), {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: !!opts.group,
    });
    child.__group = !!opts.group;
    running.add(child);
    const out = [];
    let err = Buffer.alloc(0);
    let partial = '';
    child.stdout.on('data', (d) => out.push(d));
    child.stderr.on('data', (d) => {
      if (opts.onStderrLine) {
        const s = partial + d.toString('utf8');
        const lines = s.split('\n');
        partial = lines.pop();
        for (const l of lines) opts.onStderrLine(l);
        if (partial.length > 1 << 20) partial = partial.slice(-4096);
      }
      err = Buffer.concat([err, d]);
      if (err.length > 65536) err = err.subarray(err.length - 65536);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killTree(child, 'SIGKILL');
    }, (opts.timeoutS ?? 300) * 1000);
    child.on('error', (e) => {
      clearTimeout(timer);
      running.delete(child);
      reject(e);
    });
    child.on('close', (status, signal) => {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      clearTimeout(timer);
      running.delete(child);
      if (opts.onStderrLine && partial) opts.onStderrLine(partial);
      resolve({ status, signal, seconds, timedOut, stdout: Buffer.concat(out).toString('utf8'), stderr: err.toString('utf8') });
    });
  });
}

/** Starts a long-running child (its own process group); the caller owns it. */
export function startBackground(argv, opts = {}) {
  const child = spawn(argv[0], argv.slice(1), {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: opts.stdio ?? ['pipe', 'pipe', 'pipe'],
    detached: true,
  });
  child.__group = true;
  running.add(child);
  child.on('close', () => running.delete(child));
  return child;
}

export function killGroup(child, sig = 'SIGTERM') {
  killTree(child, sig);
}

export function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** POSIX shell single-quoting. */
export const shq = (s) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${String(s).replace(/'/g, `'\\''`)}'`);
export const shjoin = (argv) => argv.map(shq).join(' ');

// ---- statistics -------------------------------------------------------------------------------

export function median(xs) {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return NaN;
  const m = v.length >> 1;
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
export const minOf = (xs) => Math.min(...xs.filter(Number.isFinite));
export const maxOf = (xs) => Math.max(...xs.filter(Number.isFinite));

// ---- other activity on this machine (noise) ----------------------------------------------------

/** Command lines of outrun clients or test runners that are not ours (scan of /proc). */
export function foreignActivity(ownPids) {
  const hits = [];
  let ents = [];
  try {
    ents = readdirSync('/proc');
  } catch {
    return hits;
  }
  for (const e of ents) {
    if (!/^\d+$/.test(e) || ownPids.has(Number(e))) continue;
    let cmd;
    try {
      cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
    } catch {
      continue;
    }
    if (/dist\/src\/client\/cli\.js|dist\/test\/|run-tests\.mjs/.test(cmd)) hits.push(`${e}: ${cmd.slice(0, 120)}`);
  }
  return hits;
}

/** Our own process tree (so that our children are not "foreign"). */
export function ownTree() {
  const me = process.pid;
  const parent = new Map();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(e), Number(f[1]));
    } catch {
      /* gone */
    }
  }
  const own = new Set([me]);
  for (const pid of parent.keys()) {
    let p = pid;
    for (let i = 0; i < 64 && p > 1; i++) {
      if (p === me) {
        own.add(pid);
        break;
      }
      p = parent.get(p) ?? 0;
    }
  }
  return own;
}

export const loadavg = () => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

// ---- formatting -------------------------------------------------------------------------------

export function fmtNum(x, digits = 3) {
  if (!Number.isFinite(x)) return 'n/a';
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toPrecision(digits);
}
export const fmtRatio = (x) => (Number.isFinite(x) ? `${x >= 10 ? x.toFixed(0) : x >= 0.1 ? x.toFixed(2) : x.toPrecision(2)}×` : '–');

export function mdTable(header, rows) {
  const esc = (c) => String(c).replace(/\|/g, '\\|');
  return [`| ${header.map(esc).join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}
