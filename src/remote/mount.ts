// Mounts the local tree with FUSE at the session's root directory and binds the remote's
// /proc, /sys and /dev into it. Runs inside the agent's private mount namespace, so every
// mount vanishes with the session, whatever way it ends.
import Fuse from 'fuse-native';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import type { FuseOps } from 'fuse-native';

export interface MountSettings {
  attrTimeoutS: number;
  entryTimeoutS: number;
  negativeTimeoutS: number;
  debug: boolean;
}

/** fuse-native only knows some libfuse options; the rest are appended here. */
class OutrunFuse extends Fuse {
  constructor(
    mnt: string,
    ops: FuseOps,
    private readonly extraOptions: string[],
    debug: boolean,
  ) {
    super(mnt, ops, {
      timeout: false, // the default 15 s per op would turn slow links into ETIMEDOUT
      allowOther: true, // the command runs as the local user's uid, not root
      defaultPermissions: true, // ... so the kernel must check modes (never allow_other alone)
      autoCache: true,
      fsname: 'outrun',
      subtype: 'outrun',
      debug,
    });
  }

  protected override _fuseOptions(): string {
    const base = super._fuseOptions();
    const extra = this.extraOptions.join(',');
    return base ? `${base},${extra}` : `-o${extra}`;
  }
}

export async function mountLocalTree(root: string, ops: FuseOps, s: MountSettings): Promise<void> {
  await mkdir(root, { mode: 0o755, recursive: true });
  const fuse = new OutrunFuse(
    root,
    ops,
    [
      'use_ino', // local inode numbers, so hard links and `find -samefile` behave
      'big_writes', // 128 KiB writes instead of 4 KiB (field notes: 5-10x)
      'max_read=131072',
      // The kernel reads ahead this far (128 KiB requests, several in flight) on sequential reads.
      'max_readahead=1048576',
      'suid', // local setuid programs keep their bit; writes still go through as the local user
      `attr_timeout=${s.attrTimeoutS}`,
      `entry_timeout=${s.entryTimeoutS}`,
      `negative_timeout=${s.negativeTimeoutS}`,
    ],
    s.debug,
  );
  await new Promise<void>((resolve, reject) => fuse.mount((err) => (err ? reject(err) : resolve())));
}

/** The helper binary does the bind mounts (Node cannot call mount(2)); never block on it. */
export function bindSystemDirs(helper: string, root: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(helper, ['bind', root], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('exit', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(stderr.trim() || `bind mounts failed (${signal ?? code})`)),
    );
  });
}
