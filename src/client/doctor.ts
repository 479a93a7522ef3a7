// outrun --check [user@]host: probes the remote (the probe a run makes, remote-probe.ts) and
// prints one line per thing a run needs: "NAME: ok: WHAT" or "NAME: MISSING: WHAT; FIX". For a
// rootless login whose runtime is installed, FUSE in a user namespace is tried for real
// (outrun-helper try-userns). Exit 0 exactly when a run would work, 1 when an item is missing.
// With --no-chroot it judges that kind of run (another architecture then needs no emulation).
import type { Client } from 'ssh2';
import { OutrunError, ExitStatus } from './errors';
import { runtimeFacts, type RuntimeSet } from './runtime';
import { assess, cacheBaseOf, normalizeMachine, parseProbe, probeScript, type CheckItem, type RunMode } from './remote-probe';
import { describeExit, execCapture, sh } from './bootstrap';
import { shellQuote } from './shell-quote';

export async function runDoctor(conn: Client, runtimes: RuntimeSet, host: string, print: (line: string) => void, mode: RunMode = 'chroot'): Promise<number> {
  const facts = runtimeFacts(runtimes);
  const ids = Object.fromEntries(Object.entries(facts).map(([m, f]) => [m, f.id]));
  const out = await execCapture(conn, sh(probeScript(ids, runtimes.local.machine))).catch((err: Error) => {
    throw new OutrunError('SSH_LOST', `cannot run a command on ${host}: ${err.message}`, { cause: err });
  });
  const probe = parseProbe(out.stdout);
  if (!probe) {
    throw new OutrunError('UPLOAD_FAILED', `cannot inspect ${host}: its shell did not run the probe (${describeExit(out)})`, {
      hint: 'check that the remote account has a working POSIX sh',
    });
  }
  const items = assess({ probe, host, localMachine: runtimes.local.machine, runtimes: facts, mode });
  const runtime = runtimes.byMachine[normalizeMachine(probe.machine)];
  // The real thing, where it can be tried: the installed helper mounts FUSE in a user namespace.
  const userns = items.findIndex((i) => i.name === 'FUSE in a user namespace');
  if (userns >= 0 && runtime && items[userns]!.ok && probe.complete && items.every((i) => i.ok || i.name === 'FUSE in a user namespace')) {
    const dir = `${cacheBaseOf(probe.uid, probe.home)}/runtime/${runtime.id}`;
    const r = await execCapture(conn, shellQuote([`${dir}/outrun-helper`, 'try-userns', dir]));
    const why = r.stderr.trim().split('\n').pop()?.replace(/^outrun-helper: /, '') ?? '';
    items[userns] =
      r.code === 0
        ? { name: 'FUSE in a user namespace', ok: true, detail: `tried: mounted in a user namespace on Linux ${probe.kernel}` }
        : { name: 'FUSE in a user namespace', ok: false, detail: `tried: ${why || describeExit(r)}`, fix: 'log in as root, or have its admin allow unprivileged user namespaces and FUSE' };
  } else if (userns >= 0 && items[userns]!.ok) {
    items[userns] = { ...items[userns]!, detail: `${items[userns]!.detail} (not tried: the runtime is not installed yet)` };
  }
  for (const item of items) print(line(item));
  const missing = items.filter((i) => !i.ok).length;
  print(missing === 0 ? 'outrun: a run would work' : `outrun: a run would not work (${missing} missing)`);
  return missing === 0 ? 0 : ExitStatus.CHECK_MISSING;
}

function line(i: CheckItem): string {
  return i.ok ? `${i.name}: ok: ${i.detail}` : `${i.name}: MISSING: ${i.detail}${i.fix ? `; ${i.fix}` : ''}`;
}
