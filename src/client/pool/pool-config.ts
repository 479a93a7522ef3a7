// Named pools (`outrun @NAME cmd`), from outrun's config file: $XDG_CONFIG_HOME/outrun/config
// (default ~/.config/outrun/config). One pool per line, `pool NAME SSHLOGIN[,SSHLOGIN...]`
// (several may follow, separated by blanks or commas); `#` starts a comment. Unknown keywords
// are refused, so that a typo is not a silently empty pool.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { OutrunError } from '../errors';
import { parseSshlogin, type PoolMember } from './sshlogins';

export function configFile(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  const base = xdg && path.isAbsolute(xdg) ? xdg : path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'outrun/config');
}

/** Every pool the file names, by name. */
export function parsePoolConfig(text: string, file: string): Map<string, PoolMember[]> {
  const pools = new Map<string, PoolMember[]>();
  text.split('\n').forEach((raw, i) => {
    const where = `${file}:${i + 1}`;
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const [keyword, name, ...rest] = line.split(/\s+/);
    if (keyword !== 'pool') throw new OutrunError('USAGE', `${where}: unknown keyword '${keyword}' (expected: pool NAME SSHLOGIN,...)`);
    if (!name || !/^[A-Za-z0-9._-]+$/.test(name)) throw new OutrunError('USAGE', `${where}: a pool needs a name of letters, digits, '.', '_' or '-'`);
    const logins = rest.join(',').split(',').filter(Boolean);
    if (logins.length === 0) throw new OutrunError('USAGE', `${where}: pool ${name} lists no sshlogin`);
    if (pools.has(name)) throw new OutrunError('USAGE', `${where}: pool ${name} is defined twice`);
    pools.set(name, logins.map((l) => parseSshlogin(l, where)));
  });
  return pools;
}

/** The members of pool NAME. */
export function namedPool(name: string, file = configFile()): PoolMember[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new OutrunError('USAGE', `@${name}: ${code === 'ENOENT' ? `there is no ${file}` : `cannot read ${file}: ${code ?? (err as Error).message}`}`, {
      hint: `name pools there, one per line: pool ${name} 2/host1,4/user@host2`,
      cause: err,
    });
  }
  const members = parsePoolConfig(text, file).get(name);
  if (!members) throw new OutrunError('USAGE', `@${name}: no pool of that name in ${file}`, { hint: `add a line: pool ${name} 2/host1,4/user@host2` });
  return members;
}
