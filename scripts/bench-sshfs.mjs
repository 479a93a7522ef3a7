// scripts/bench-sshfs.mjs: the peer of scripts/bench: the local "/" mounted on the box with sshfs
// over SSH in reverse ("passive", formerly "slave") mode, then chroot into it.
//
//   local /usr/lib/openssh/sftp-server  <- fifo/pipe ->  ssh box 'sshfs -o passive :/ MNT'
//
// The mount lives in a private mount namespace on the box (unshare -m), so nothing leaks into the
// box's own namespace and everything goes with the sshfs process; workloads enter it with
// `nsenter -t PID -m chroot MNT /usr/bin/env -i -C CWD VAR=... ARGV` after /proc, /sys and /dev are
// bound in (rbind). Unmount: `umount -l MNT` in that namespace, then the sshfs process is ended.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { onCleanup, run, shjoin, shq, sleep, startBackground, killGroup, waitExit } from './bench-lib.mjs';

export const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
export const SSHFS_OPTS = 'passive,no_contain_symlinks';

let seq = 0;

/**
 * Mounts the local "/" on the box. sshConfig: the config the data path uses (through the delay
 * relay with --rtt); adminConfig: direct, for the untimed set-up and tear-down commands.
 * logRequests: run sftp-server with -e -l DEBUG3 and count its answers (one per SFTP request).
 */
export async function mountPeer({ sshConfig, adminConfig, tmpDir, logRequests = false }) {
  const n = ++seq;
  const mnt = `/mnt/outrun-bench-${process.pid}-${n}`;
  const fifo = join(tmpDir, `sftp-fifo-${n}`);
  const mk = spawnSync('mkfifo', [fifo]);
  if (mk.status !== 0) throw new Error(`mkfifo ${fifo} failed`);

  const remote = `mkdir -p ${mnt} && exec unshare -m --propagation private sh -c ${shq(
    `echo OUTRUN_BENCH_SSHFS_PID $$ >&2; exec sshfs -f -o ${SSHFS_OPTS} :/ ${mnt}`,
  )}`;
  const sftp = [SFTP_SERVER, ...(logRequests ? ['-e', '-l', 'DEBUG3'] : [])];
  const ssh = ['ssh', '-F', sshConfig, '-o', 'BatchMode=yes', '-o', 'ServerAliveInterval=10', 'box', remote];
  // sh connects the two directly (no copy through this process): sftp-server reads the fifo,
  // ssh writes it.
  const script = `${shjoin(sftp)} <"$1" | ${shjoin(ssh)} >"$1"`;
  const child = startBackground(['/bin/sh', '-c', script, 'sh', fifo], { stdio: ['ignore', 'ignore', 'pipe'] });

  let requests = 0;
  let remotePid;
  let partial = '';
  let stderrTail = '';
  const pidSeen = new Promise((resolve) => {
    child.stderr.on('data', (d) => {
      const s = partial + d.toString('utf8');
      const lines = s.split('\n');
      partial = lines.pop();
      for (const l of lines) {
        if (/request \d+: sent/.test(l)) requests++;
        else {
          const m = /^OUTRUN_BENCH_SSHFS_PID (\d+)/.exec(l);
          if (m) {
            remotePid = Number(m[1]);
            resolve(true);
          } else stderrTail = (stderrTail + l + '\n').slice(-2000);
        }
      }
    });
    child.on('close', () => resolve(false));
  });

  const admin = (script, timeoutS = 30) => run(['ssh', '-F', adminConfig, '-o', 'BatchMode=yes', 'box', script], { timeoutS });

  let unmounted = false;
  const unmount = onCleanup(async () => {
    unmounted = true;
    if (remotePid) {
      await admin(
        `nsenter -t ${remotePid} -m umount -l ${mnt} 2>/dev/null; kill ${remotePid} 2>/dev/null; ` +
          `i=0; while kill -0 ${remotePid} 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; ` +
          `kill -9 ${remotePid} 2>/dev/null; rmdir ${mnt} 2>/dev/null; true`,
      ).catch(() => undefined);
    } else {
      await admin(`rmdir ${mnt} 2>/dev/null; true`).catch(() => undefined);
    }
    if (!(await waitExit(child, 5000))) {
      killGroup(child, 'SIGTERM');
      if (!(await waitExit(child, 2000))) killGroup(child, 'SIGKILL');
    }
    rmSync(fifo, { force: true });
  });

  const ok = await Promise.race([pidSeen, sleep(30_000).then(() => false)]);
  if (!ok) {
    await unmount();
    throw new Error(`sshfs did not start on the box: ${stderrTail.trim().split('\n').slice(-3).join(' / ')}`);
  }
  // Wait (bounded) until the FUSE mount is there, then bind /proc, /sys, /dev into it.
  const r = await admin(
    `i=0; until nsenter -t ${remotePid} -m mountpoint -q ${mnt}; do i=$((i+1)); [ $i -gt 150 ] && { echo "no mount at ${mnt}" >&2; exit 1; }; sleep 0.1; done; ` +
      `nsenter -t ${remotePid} -m sh -c 'mount --rbind /proc ${mnt}/proc && mount --rbind /sys ${mnt}/sys && mount --rbind /dev ${mnt}/dev'`,
    60,
  );
  if (r.status !== 0) {
    await unmount();
    throw new Error(`sshfs mount set-up failed: ${r.stderr.trim()} ${stderrTail.trim().split('\n').slice(-3).join(' / ')}`);
  }

  return {
    mnt,
    get pid() {
      return remotePid;
    },
    /** SFTP requests answered so far (only with logRequests). */
    requests: () => requests,
    alive: () => !unmounted && child.exitCode === null && child.signalCode === null,
    /** The ssh command line that runs ARGV in CWD with ENV, chrooted into the mount. */
    commandFor(argv, cwd, env) {
      const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
      const inner = ['nsenter', '-t', String(remotePid), '-m', 'chroot', mnt, '/usr/bin/env', '-i', '-C', cwd, ...envArgs, ...argv];
      return ['ssh', '-F', sshConfig, '-o', 'BatchMode=yes', 'box', shjoin(inner)];
    },
    unmount,
  };
}
