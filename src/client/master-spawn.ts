// Starts a master for a destination: a detached node process (its own session, so the
// terminal's signals do not reach it) running master-main.js, told what to connect to on its
// stdin (nothing in its argv or environment beyond what this run already had). Resolves once
// it has claimed the socket (it connects after that; runs that attach meanwhile wait).
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { OutrunError } from './errors';

export interface MasterStart {
  /** This run's options and destination, with a placeholder command (the master runs none itself). */
  argv: string[];
  socketPath: string;
  persist: number | 'forever';
  /** The first run's environment and directory: what is listed ahead at the agent's start. */
  commandEnv: Record<string, string>;
  cwd: string;
  /** The starter's working directory, which relative paths in `argv` are relative to. */
  startDir: string;
  /** Where the master logs (-v), or nowhere. */
  logPath?: string;
}

/** 'claimed' (a new master), 'taken' (another one is there) or why none could start. */
export function startMaster(start: MasterStart): Promise<'claimed' | 'taken' | OutrunError> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(__dirname, 'master-main.js')], {
      detached: true,
      stdio: ['pipe', 'pipe', 'ignore'],
      cwd: '/',
    });
    let out = '';
    let settled = false;
    const settle = (v: 'claimed' | 'taken' | OutrunError) => {
      if (settled) return;
      settled = true;
      child.stdout!.destroy();
      child.unref();
      resolve(v);
    };
    child.on('error', (err) => settle(new OutrunError('MASTER_UNAVAILABLE', `cannot start a master: ${err.message}`, { cause: err })));
    child.on('exit', (code) => settle(new OutrunError('MASTER_UNAVAILABLE', `the master ended before it listened (status ${code})`)));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      let said: { claimed?: boolean; taken?: boolean; error?: { message?: string } };
      try {
        said = JSON.parse(out.slice(0, nl));
      } catch {
        return settle(new OutrunError('MASTER_UNAVAILABLE', 'the master said something unexpected'));
      }
      if (said.claimed) settle('claimed');
      else if (said.taken) settle('taken');
      else settle(new OutrunError('MASTER_UNAVAILABLE', `no master: ${said.error?.message ?? 'unknown reason'}`));
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(JSON.stringify(start));
  });
}
