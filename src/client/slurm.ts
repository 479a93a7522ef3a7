// `outrun slurm://[user@]login[/partition] cmd...`: Slurm places the command. outrun logs in
// to the login node as for `outrun login cmd` (probe, runtime upload: the home is shared, so
// the compute nodes see it), then holds an allocation there and runs every node-bound program
// of the session (the agent's channel, the command's, the signal execs) as a step of that job
// on one of its nodes: `srun --jobid=N -w NODE -N1 -n1 --overlap -u --quiet PROGRAM`
// (-u: unbuffered, binary safe on stdout, stdin a pipe, stderr apart; never --pty, which
// merges stderr into stdout).
//
// The allocation is held by `salloc` in the foreground on an exec channel of its own, its
// shell only printing the job and waiting for its stdin to end: closing the channel, or the
// connection dying whatever the reason (outrun killed with SIGKILL included), ends the shell,
// and salloc relinquishes the job by itself. An explicit `scancel` follows on every orderly way out.
// Inside an existing allocation (SLURM_JOB_ID here, or -o SlurmJob=ID) nothing is allocated
// or cancelled: the steps go to a node of that job (the least used by outrun's runs there).
import type { Client, ClientChannel } from 'ssh2';
import { OutrunError } from './errors';
import { execChannel } from './command-channel';
import { shellQuote, shellQuoteArg } from './shell-quote';
import { TailLines } from './agent-session';

/** Exit statuses of Slurm's own outcomes (README, Exit status). */
export const SlurmStatus = {
  /** Slurm would not allocate (bad partition, bad option, account): nothing ran. */
  REFUSED: 253,
  /** The allocation stayed pending past salloc's --immediate bound: nothing ran. */
  PENDING: 252,
  /** The node the command ran on failed: how the command ended is unknown. */
  NODE_FAILED: 251,
  /** The job's time limit ended the command (as timeout(1) and --timeout). */
  TIME_LIMIT: 124,
} as const;

/** Turns a command line for the remote's shell into one that runs it as a step on the node. */
export type RemoteExec = (command: string) => string;

export interface SlurmPlacement {
  jobId: string;
  node: string;
  /** Whether outrun allocated the job (and must end it). */
  own: boolean;
  remoteExec: RemoteExec;
  /** Slurm's own verdict on the run, read when it ended (undefined: nothing to say). */
  verdict(): Promise<OutrunError | undefined>;
  /** Ends the allocation (own jobs only); every way out. */
  release(): Promise<void>;
}

/** Shell-splits -o SlurmOptions (quotes '' and "", backslashes; no expansion of any kind). */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let cur: string | null = null;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      if (cur !== null) words.push(cur);
      cur = null;
      i++;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new OutrunError('USAGE', `-o SlurmOptions: unterminated ' in '${text}'`);
      cur = (cur ?? '') + text.slice(i + 1, end);
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      while (j < text.length && text[j] !== '"') {
        if (text[j] === '\\' && j + 1 < text.length && '"\\$`'.includes(text[j + 1])) j++;
        s += text[j++];
      }
      if (j >= text.length) throw new OutrunError('USAGE', `-o SlurmOptions: unterminated " in '${text}'`);
      cur = (cur ?? '') + s;
      i = j + 1;
    } else if (c === '\\' && i + 1 < text.length) {
      cur = (cur ?? '') + text[i + 1];
      i += 2;
    } else {
      cur = (cur ?? '') + c;
      i++;
    }
  }
  if (cur !== null) words.push(cur);
  return words;
}

/** Runs one short command on the login node: its status and output. */
export function execOnce(conn: Client, command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return execChannel(conn, command, false).then(
    (ch) =>
      new Promise((resolve) => {
        let stdout = '';
        let stderr = '';
        let code: number | null = null;
        ch.on('data', (d: Buffer) => (stdout += d.toString()));
        ch.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        ch.on('exit', (c: number | null) => (code = c));
        ch.on('close', () => resolve({ code, stdout, stderr }));
      }),
  );
}

/** The step wrapper for one node of a job. */
export function stepCommand(jobId: string, node: string): RemoteExec {
  return (command) => shellQuote(['srun', `--jobid=${jobId}`, '-w', node, '-N1', '-n1', '--overlap', '-u', '--quiet', '--quiet', '/bin/sh', '-c', command]);
}

const MARK = 'OUTRUN-SLURM-JOB';

/**
 * Allocates one node with salloc (held on a channel of its own), or places the run in an
 * existing job. Failures are OutrunErrors with Slurm's line and the statuses above.
 */
export async function placeOnSlurm(
  conn: Client,
  opts: { partition?: string; slurmOptions?: string; job?: string; log: (msg: string) => void },
): Promise<SlurmPlacement> {
  const { log } = opts;
  if (opts.job) return inExistingJob(conn, opts.job, log);
  const args = ['salloc', '-N1', ...(opts.partition ? ['-p', opts.partition] : []), ...splitWords(opts.slurmOptions ?? '')];
  // The shell runs on the login node (salloc's command is not a step): it says which job and
  // node, then holds the allocation until its stdin ends (the channel or the connection goes).
  const holder = `echo "${MARK} $SLURM_JOB_ID $SLURM_JOB_NODELIST"; exec cat >/dev/null`;
  const command = `${shellQuote([...args, '/bin/sh', '-c', holder])}`;
  log(`slurm: ${command}`);
  const ch = await execChannel(conn, command, false);
  const stderr = new TailLines();
  let said = '';
  let exited: number | null | undefined;
  const closed = new Promise<void>((resolve) => {
    ch.on('exit', (c: number | null) => (exited = c));
    ch.on('close', () => resolve());
  });
  ch.stderr.on('data', (d: Buffer) => {
    stderr.push(d);
    log(`slurm: ${d.toString().trim()}`);
  });
  // A signal while the job is pending (salloc: Pending job allocation N) cancels it first:
  // salloc would otherwise wait in the queue until it is granted (and then give it back).
  let pendingId: string | undefined;
  ch.stderr.on('data', () => (pendingId ??= /Pending job allocation (\d+)/.exec(stderr.lastWith('Pending job allocation') ?? '')?.[1]));
  const onSignal = (sig: NodeJS.Signals) => {
    dropSignals();
    const raise = () => process.kill(process.pid, sig);
    if (!pendingId) return raise();
    void Promise.race([execOnce(conn, shellQuote(['scancel', pendingId])).catch(() => undefined), new Promise((r) => setTimeout(r, 2000))]).then(raise);
  };
  const handlers = new Map((['SIGINT', 'SIGTERM', 'SIGHUP'] as const).map((sig) => [sig, () => onSignal(sig)]));
  const dropSignals = () => handlers.forEach((h, sig) => process.off(sig, h));
  handlers.forEach((h, sig) => process.on(sig, h));
  const granted = await new Promise<{ jobId: string; node: string } | undefined>((resolve) => {
    ch.on('data', (d: Buffer) => {
      said += d.toString();
      const m = new RegExp(`${MARK} (\\d+) (\\S+)\\n`).exec(said);
      if (m) resolve({ jobId: m[1], node: m[2] });
    });
    void closed.then(() => resolve(undefined));
  }).finally(dropSignals);
  if (!granted) throw refusal(stderr, exited);
  const { jobId, node } = granted;
  log(`slurm: job ${jobId} on ${node}`);
  let released: Promise<void> | undefined;
  return {
    jobId,
    node,
    own: true,
    remoteExec: stepCommand(jobId, node),
    verdict: () => jobVerdict(conn, jobId, node, stderr),
    release: () =>
      (released ??= (async () => {
        ch.end();
        await execOnce(conn, shellQuote(['scancel', jobId])).catch(() => undefined);
        await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
        ch.close();
      })()),
  };
}

/** What salloc said when it gave no allocation, as one line and status. */
function refusal(stderr: TailLines, code: number | null | undefined): OutrunError {
  // salloc: error: Job submit/allocate failed: Invalid partition name specified
  const partition = stderr.lastWith('Invalid partition name specified');
  if (partition) return new OutrunError('SLURM_REFUSED', `Slurm refused the allocation: ${clean(partition)}`, { hint: 'check the partition (sinfo lists them)', exitStatus: SlurmStatus.REFUSED });
  // Pending past --immediate=N (salloc 22.05, exact lines):
  //   salloc: Pending job allocation N
  //   salloc: job N queued and waiting for resources
  //   salloc: error: Unable to allocate resources: Connection timed out
  // and, for nodes named with -w that are taken: "... Requested nodes are busy".
  const queued = stderr.lastWith('queued and waiting for resources') ?? stderr.lastWith('Pending job allocation');
  const unable = stderr.lastWith('Unable to allocate resources');
  const busy = stderr.lastWith('Requested nodes are busy');
  if (busy || (queued && unable))
    return new OutrunError('SLURM_PENDING', `the Slurm allocation was still pending when salloc gave up: ${clean(busy ?? unable!)}`, {
      hint: 'the nodes are busy; a larger --immediate=SECONDS in -o SlurmOptions waits longer, none waits as long as it takes',
      exitStatus: SlurmStatus.PENDING,
    });
  const last = stderr.lastWith('error') ?? stderr.last();
  if (code === 127 || (last && /salloc: (command )?not found/.test(last)))
    return new OutrunError('SLURM_REFUSED', `the login node has no salloc: ${last ?? 'command not found'}`, { hint: 'is this a Slurm login node?', exitStatus: SlurmStatus.REFUSED });
  return new OutrunError('SLURM_REFUSED', `Slurm gave no allocation (salloc status ${code ?? 'unknown'}): ${last ? clean(last) : 'no message'}`, { exitStatus: SlurmStatus.REFUSED });
}

const clean = (line: string) => line.replace(/^salloc: (error: )?/, '').replace(/^(Job submit\/allocate failed|Unable to allocate resources): /, '');

/**
 * Slurm's word on a job after a run: its state (scontrol) and what salloc said. A run whose
 * node failed is never reported as a success, whatever srun's status was (srun may exit 0).
 */
async function jobVerdict(conn: Client, jobId: string, node: string, salloc?: TailLines): Promise<OutrunError | undefined> {
  const r = await execOnce(conn, shellQuote(['scontrol', '-o', 'show', 'job', jobId])).catch(() => undefined);
  const state = /JobState=(\S+)/.exec(r?.stdout ?? '')?.[1];
  const reason = /Reason=(\S+)/.exec(r?.stdout ?? '')?.[1];
  // salloc: Job N has exceeded its time limit and its allocation has been revoked.
  // slurmstepd: error: *** STEP N.M ON NODE CANCELLED AT ... DUE TO TIME LIMIT ***
  if (state === 'TIMEOUT' || salloc?.lastWith('exceeded its time limit'))
    return new OutrunError('SLURM_TIME_LIMIT', `the Slurm job ${jobId}'s time limit ran out on ${node}: the command was ended`, { hint: 'a longer --time in -o SlurmOptions', exitStatus: SlurmStatus.TIME_LIMIT });
  // srun: error: Node failure on NODE   /   salloc: error: Node failure on NODE
  if (state === 'NODE_FAIL' || salloc?.lastWith('Node failure') || (reason && /NodeDown|NODE_FAIL/i.test(reason)))
    return new OutrunError('SLURM_NODE_FAILED', `the Slurm node ${node} failed during the run (job ${jobId}, ${state ?? 'state unknown'}); how the command ended is not known`, { exitStatus: SlurmStatus.NODE_FAILED });
  return undefined;
}

/** A run inside an allocation made elsewhere: a node of it, the least used by our runs. */
async function inExistingJob(conn: Client, jobId: string, log: (msg: string) => void): Promise<SlurmPlacement> {
  if (!/^[0-9]+$/.test(jobId)) throw new OutrunError('USAGE', `bad Slurm job id '${jobId}'`);
  // Asked again when the answer is empty: one of 6 concurrent runs once got nothing (a busy slurmctld).
  const ask = () => execOnce(conn, `squeue -h -j ${shellQuoteArg(jobId)} -o %N && scontrol show hostnames "$(squeue -h -j ${shellQuoteArg(jobId)} -o %N)"`);
  const nodesOf = (x: { stdout: string }) => x.stdout.split('\n').slice(1).map((l) => l.trim()).filter(Boolean);
  let r = await ask();
  for (let tries = 0; tries < 3 && (r.code !== 0 || nodesOf(r).length === 0); tries++) {
    await new Promise((res) => setTimeout(res, 300));
    r = await ask();
  }
  const nodes = nodesOf(r);
  if (r.code !== 0 || nodes.length === 0)
    throw new OutrunError('SLURM_REFUSED', `the Slurm job ${jobId} has no nodes to run on: ${(r.stderr.trim().split('\n').pop() ?? '').replace(/^squeue: error: /, '') || `not running (squeue status ${r.code})`}`, {
      hint: 'is the allocation still there (squeue)?',
      exitStatus: SlurmStatus.REFUSED,
    });
  const node = await leastUsed(jobId, nodes);
  log(`slurm: in job ${jobId}, on ${node.name} (of ${nodes.join(',')})`);
  return {
    jobId,
    node: node.name,
    own: false,
    remoteExec: stepCommand(jobId, node.name),
    verdict: () => jobVerdict(conn, jobId, node.name),
    release: async () => node.free(),
  };
}

/** Runs one node holds at most, as far as the count below goes (a slot each: pool/slots.ts). */
const RUNS_PER_NODE = 1024;

/**
 * The node of the job with the fewest outrun runs of ours on it now: each run holds a slot of
 * its node (the pool's flock(2) slots, shared by every outrun process of this user), and the
 * count and the take are one step under the job's lock, so concurrent runs (a make -j) spread.
 */
async function leastUsed(jobId: string, nodes: string[]): Promise<{ name: string; free: () => void }> {
  const { HostSlots, underLock } = await import('./pool/slots');
  return underLock(`slurm ${jobId}`, () => {
    const slots = new Map(nodes.map((n) => [n, new HostSlots(`slurm ${jobId} ${n}`)]));
    const held = new Map(nodes.map((n) => [n, slots.get(n)!.held(RUNS_PER_NODE)]));
    const name = [...nodes].sort((a, b) => held.get(a)! - held.get(b)! || nodes.indexOf(a) - nodes.indexOf(b))[0]!;
    const slot = slots.get(name)!.tryTake(RUNS_PER_NODE);
    if (!slot) throw new OutrunError('INTERNAL', `no slot left on ${name} (${RUNS_PER_NODE} runs there)`);
    return { name, free: slot.release };
  });
}

export type { ClientChannel };
