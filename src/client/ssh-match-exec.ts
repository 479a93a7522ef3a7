// `Match exec COMMAND` of ssh_config(5): the command runs locally in the user's shell, and the
// Match applies when it exits 0. Its output goes to stderr, as OpenSSH lets it.
import { spawnSync } from 'node:child_process';

export function matchExecSucceeds(command: string, env: NodeJS.ProcessEnv): boolean {
  const shell = env.SHELL || '/bin/sh';
  const r = spawnSync(shell, ['-c', command], { env, stdio: ['ignore', 2, 2] });
  return r.status === 0;
}
