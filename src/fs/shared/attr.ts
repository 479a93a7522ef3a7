// Conversions between local stat results and wire attributes.
import type { BigIntStats } from 'node:fs';
import { pb } from '../../wire/schema';

const NS_PER_S = 1_000_000_000n;

function timespec(ns: bigint): pb.Timespec.$Properties {
  let sec = ns / NS_PER_S;
  let nsec = ns % NS_PER_S;
  if (nsec < 0n) {
    nsec += NS_PER_S;
    sec -= 1n;
  }
  return { sec: Number(sec), nsec: Number(nsec) };
}

export function attrFromStats(st: BigIntStats): pb.Attr.$Properties {
  return {
    ino: Number(st.ino),
    dev: Number(st.dev),
    mode: Number(st.mode),
    nlink: Number(st.nlink),
    uid: Number(st.uid),
    gid: Number(st.gid),
    rdev: Number(st.rdev),
    size: Number(st.size),
    blocks: Number(st.blocks),
    blksize: Number(st.blksize),
    atime: timespec(st.atimeNs),
    mtime: timespec(st.mtimeNs),
    ctime: timespec(st.ctimeNs),
  };
}

/** Milliseconds since the epoch (what fuse-native's stat arrays carry). */
export function timespecToMs(ts: pb.Timespec.$Properties | null | undefined): number {
  if (!ts) return 0;
  return Number(ts.sec ?? 0) * 1000 + Math.floor(Number(ts.nsec ?? 0) / 1_000_000);
}

/** A wire Timespec from milliseconds since the epoch. */
export function timespecFromMs(ms: number): pb.Timespec.$Properties {
  const sec = Math.floor(ms / 1000);
  return { sec, nsec: Math.round((ms - sec * 1000) * 1_000_000) };
}
