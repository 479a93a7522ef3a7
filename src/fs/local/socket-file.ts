// Makes a unix socket file at a path, for a remote bind(2) on the mount (the kernel asks the
// filesystem for a socket inode; the remote kernel then owns the socket itself). Node has
// no mknod: listen on a temporary name next to the target, hard-link the target to it, and
// close (which removes the temporary name). Socket addresses are limited to 107 bytes, so a
// directory too deep for that gets ENAMETOOLONG.
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { createServer } from 'node:net';

const SUN_PATH_MAX = 107;

export class SocketPathTooLong extends Error {
  readonly code = 'ENAMETOOLONG';
}

export async function makeSocketFile(p: Buffer, perm: number): Promise<void> {
  const dir = p.subarray(0, Math.max(1, p.lastIndexOf(0x2f))).toString('utf8');
  const tmp = `${dir === '/' ? '' : dir}/.outrun-socket-${randomBytes(6).toString('hex')}`;
  if (Buffer.byteLength(tmp) > SUN_PATH_MAX || Buffer.from(dir, 'utf8').length !== p.lastIndexOf(0x2f)) {
    throw new SocketPathTooLong('socket path too long');
  }
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(tmp, () => resolve());
  });
  try {
    await fsp.link(tmp, p);
    await fsp.chmod(p, perm);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await fsp.rm(tmp, { force: true });
  }
}
