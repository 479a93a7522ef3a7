// The directories a command is sure to walk through at start ("/", the working directory,
// $HOME, the directories of its PATH, and their ancestors), listed with their entries' attributes and sent in the reply
// to Session.Hello, so that the first lookups of every run cost no round trip. Large
// directories are left out: the agent lists those on demand, as any other.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { LocalFileServer } from '../fs/local/local-server';
import { pb } from '../wire/schema';

const MAX_WARM_DIR_BYTES = 16 * 1024;
const MAX_WARM_ENTRIES = 2000;

/** "/a/b" -> ["/", "/a", "/a/b"] */
function chain(dir: string): string[] {
  const out = ['/'];
  let at = '';
  for (const part of path.resolve(dir).split('/').filter(Boolean)) out.push((at += '/' + part));
  return out;
}

export async function warmListings(files: LocalFileServer, dirs: (string | undefined)[]): Promise<pb.Listing.$Properties[]> {
  const wanted = [...new Set(dirs.filter((d): d is string => !!d && d.startsWith('/')).flatMap(chain))];
  const listed = await Promise.all(
    wanted.map(async (dir) => {
      const st = await fsp.lstat(dir).catch(() => undefined);
      if (!st?.isDirectory() || st.size > MAX_WARM_DIR_BYTES) return undefined;
      const path = Buffer.from(dir);
      const r = await files.handlers.Readdir(pb.ReaddirRequest.create({ path }));
      if (!('entries' in r) || r.errno !== 0) return undefined;
      return { path, dirAttr: r.dirAttr, entries: r.entries };
    }),
  );
  // Bounded: a PATH of many big directories must not make every Hello heavy.
  const out: pb.Listing.$Properties[] = [];
  let entries = 0;
  for (const l of listed) {
    const n = l?.entries?.length ?? 0;
    if (!l || entries + n > MAX_WARM_ENTRIES) continue;
    entries += n;
    out.push(l as pb.Listing.$Properties);
  }
  return out;
}
