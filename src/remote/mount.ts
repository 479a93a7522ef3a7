// Mounts the local tree with FUSE at the session's root directory and binds the remote's
// /proc, /sys and /dev into it. Runs inside the agent's private mount namespace, so every
// mount vanishes with the session, whatever way it ends.
import { spawn } from 'node:child_process';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import type { PathOps } from '../fs/agent/path-ops';
import type { Counters } from '../fs/agent/counters';
import { FuseNodes, type NodeSettings } from '../fs/agent/fuse-nodes';
import { FuseConnection, errnoName, loadKernelAddon } from './fuse/connection';

export interface MountSettings extends NodeSettings {
  /** Pass reads of files kept whole in the persistent cache through to their blob. */
  passthrough: boolean;
  onError?(op: string, err: unknown): void;
}

export interface MountedTree {
  nodes: FuseNodes;
  connection: FuseConnection;
  /** Figures of the addon (for --stats). */
  counters(): Record<string, number>;
}

const MS_NODEV = 4;
/** The kernel gives up on INIT answers after this; so do we. */
const INIT_TIMEOUT_MS = 10_000;
/** Sequential reads ahead of the reader, per file (the kernel's default is 128 KiB). */
const READ_AHEAD_KB = 4096;

export async function mountLocalTree(root: string, ops: PathOps, s: MountSettings, counters: Counters): Promise<MountedTree> {
  await mkdir(root, { mode: 0o755, recursive: true });
  const addon = loadKernelAddon();
  const fd = addon.openDevice();
  let connection!: FuseConnection;
  const nodes = new FuseNodes(
    ops,
    {
      negotiated: () => connection.negotiated,
      notify: (m) => connection.notify(m),
      backingOpen: (fileFd) => addon.backingOpen(fd, fileFd),
      backingClose: (id) => void addon.backingClose(fd, id),
      attrSet: (id, out, ttl) => addon.attrSet(id, out, ttl),
      attrDrop: (id) => addon.attrDrop(id),
      passthroughHold: (id, blob) => addon.passthroughHold(id, blob),
      passthroughAdopt: (id, blob, backingId) => addon.passthroughAdopt(fd, id, blob, backingId) === 1,
      passthroughRelease: (id) => addon.passthroughRelease(id),
      passthroughTakeOpens: (id) => addon.passthroughTakeOpens(id),
      passthroughStop: (id) => addon.passthroughStop(id),
    },
    s,
    counters,
  );
  connection = new FuseConnection(addon, fd, nodes.handlers(), {
    passthrough: s.passthrough,
    count: (op) => counters.inc(`fuse.${op}`),
    onError: s.onError,
  });
  // allow_other: the command runs as the local user's uid, not root; so the kernel must
  // check modes (default_permissions: never allow_other alone). setuid programs keep their
  // bit (no nosuid); device files do not work (nodev).
  // user_id/group_id: the mount's owner, the agent itself (root, or in a rootless session the
  // ids the login maps to).
  const data = `fd=${fd},rootmode=40000,user_id=${process.getuid?.() ?? 0},group_id=${process.getgid?.() ?? 0},allow_other,default_permissions`;
  try {
    addon.mount(root, data, MS_NODEV);
  } catch (err) {
    addon.close(fd);
    const e = err as Error & { errno?: number };
    throw new Error(`mount ${root}: ${e.errno ? errnoName(e.errno) : e.message}`);
  }
  connection.start();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    connection.ready,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('the kernel sent no FUSE INIT')), INIT_TIMEOUT_MS))),
  ]).finally(() => clearTimeout(timer));
  await raiseReadAhead(root);
  const counters_ = () => {
    const [served, held, opens] = addon.attrStats();
    return { 'fuse.getattr-native': served, 'fuse.attrs-held': held, 'fuse.open-native': opens };
  };
  return { nodes, connection, counters: counters_ };
}

/** The mount's backing device info: more read-ahead than the kernel's 128 KiB (best effort). */
async function raiseReadAhead(root: string): Promise<void> {
  try {
    // Asynchronous on purpose: a synchronous call into our own mount would deadlock.
    const st = await stat(root);
    const major = Math.floor(st.dev / 256) & 0xfff;
    const minor = (st.dev & 0xff) | ((st.dev >> 12) & 0xfff00);
    await writeFile(`/sys/class/bdi/${major}:${minor}/read_ahead_kb`, String(READ_AHEAD_KB));
  } catch {
    // Not ours to change (sysfs read-only, say): the kernel's default stays.
  }
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
