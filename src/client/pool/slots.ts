// A host's slots, shared by every outrun process of this user on this machine: slot i of a host
// is the file <dir>/<host key>/<i>, and a run holds it by an exclusive flock(2) for as long as it
// runs. The kernel drops the lock when the process ends, however it ends, so a crash never
// leaves a slot taken. Counting a host's runs is trying each of its slots. The directory is
// the masters' private one (control-path.ts): nobody else can take or fake a slot.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { OutrunError } from '../errors';
import { LOCK_EX, LOCK_NB, LOCK_UN, localNative, type LocalNative } from '../../fs/local/local-native';
import { defaultControlDir, privateDir } from '../control-path';

const EWOULDBLOCK = -11;

export interface Slot {
  index: number;
  release(): void;
}

function native(): LocalNative {
  const n = localNative();
  if (!n) throw new OutrunError('RUNTIME_MISSING', 'a host pool needs outrun\'s local addon (dist/local-addon/local-fs.node), which is missing', { hint: 'run npm run build' });
  return n;
}

/** The pool's private directory (made 0700 when missing; refused when unsafe). */
function poolDir(base: string): string {
  for (const d of [path.dirname(base), base]) {
    const unsafe = privateDir(d, true);
    if (unsafe) throw unsafe;
  }
  return base;
}

const DEFAULT_BASE = () => path.join(defaultControlDir(), 'pool');
const hashed = (key: string) => createHash('sha256').update(key).digest('hex').slice(0, 20);

/**
 * `fn` while this process holds the exclusive flock of <base>/<name>.lock: a step (count, then
 * take) that concurrent outrun processes must not interleave. Polled without blocking, so the
 * event loop goes on; the kernel frees it if its holder dies.
 */
export async function underLock<T>(name: string, fn: () => T, base = DEFAULT_BASE()): Promise<T> {
  const n = native();
  const fd = fs.openSync(path.join(poolDir(base), `${hashed(name)}.lock`), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  try {
    for (;;) {
      const r = n.flock(fd, LOCK_EX | LOCK_NB);
      if (r === 0) break;
      if (r !== EWOULDBLOCK) throw new OutrunError('INTERNAL', `cannot lock ${name}: errno ${-r}`);
      await new Promise((res) => setTimeout(res, 10));
    }
    return fn();
  } finally {
    fs.closeSync(fd); // drops the lock
  }
}

export class HostSlots {
  private readonly dir: string;

  /** `key` names the host (user@hostname:port); `base` is the private directory. */
  constructor(key: string, base = DEFAULT_BASE()) {
    this.dir = path.join(poolDir(base), hashed(key));
    fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  private open(i: number): number {
    return fs.openSync(path.join(this.dir, String(i)), fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
  }

  /** A free slot among the first `count`, taken; undefined when all are held. */
  tryTake(count: number): Slot | undefined {
    const n = native();
    for (let i = 0; i < count; i++) {
      const fd = this.open(i);
      const r = n.flock(fd, LOCK_EX | LOCK_NB);
      if (r === 0) {
        let held = true;
        return {
          index: i,
          release: () => {
            if (!held) return;
            held = false;
            n.flock(fd, LOCK_UN);
            fs.closeSync(fd);
          },
        };
      }
      fs.closeSync(fd);
      if (r !== EWOULDBLOCK) throw new OutrunError('INTERNAL', `cannot lock the slot file ${path.join(this.dir, String(i))}: errno ${-r}`);
    }
    return undefined;
  }

  /** How many of the first `count` slots are held (by any process of this user, this one included). */
  held(count: number): number {
    const n = native();
    let taken = 0;
    // Only slots ever taken have a file (tryTake makes them in order): the others are free.
    for (const name of fs.readdirSync(this.dir)) {
      const i = Number(name);
      if (!/^[0-9]+$/.test(name) || i >= count) continue;
      const fd = this.open(i);
      // A lock held through another open file description refuses this one, even in this process.
      const r = n.flock(fd, LOCK_EX | LOCK_NB);
      if (r === 0) n.flock(fd, LOCK_UN);
      else taken++;
      fs.closeSync(fd);
    }
    return taken;
  }
}
