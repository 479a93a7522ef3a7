// Positional reads that fill the buffer: a FileHandle read may return fewer bytes than asked
// before the end of the file, so every reader that needs "all of it, short only at EOF" loops.
import type { FileHandle } from 'node:fs/promises';

/** Reads into `buf` from `offset` until it is full or the file ends; returns what was read. */
export async function readFully(fh: FileHandle, buf: Buffer, offset: number): Promise<Buffer> {
  let got = 0;
  while (got < buf.length) {
    const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return buf.subarray(0, got);
}
