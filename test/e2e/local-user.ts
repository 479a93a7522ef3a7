// A local user who is not root, with supplementary groups, able to run outrun against the
// test box (its own copy of the box key and ssh config: ssh refuses keys others can read).
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { ROOT, SSH_CONFIG } from './harness';

export interface LocalUser {
  name: string;
  uid: number;
  home: string;
  sshConfig: string;
}

const run = (cmd: string, args: string[]) => {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
};

/** Creates (once) the user, in groups `groups` (created as needed), set up for the box. */
export function localUser(name: string, groups: string[] = []): LocalUser {
  for (const g of groups) if (spawnSync('getent', ['group', g]).status !== 0) run('groupadd', [g]);
  if (spawnSync('id', ['-u', name]).status !== 0) run('useradd', ['--create-home', '--shell', '/bin/sh', name]);
  if (groups.length) run('usermod', ['-a', '-G', groups.join(','), name]);
  const uid = Number(run('id', ['-u', name]));
  const home = run('sh', ['-c', `getent passwd ${name} | cut -d: -f6`]);
  const ssh = path.join(home, '.ssh');
  mkdirSync(ssh, { recursive: true, mode: 0o700 });
  const key = path.join(ssh, 'id_box');
  copyFileSync(path.join(ROOT, '.testbox/keys/id_ed25519'), key);
  copyFileSync(path.join(ROOT, '.testbox/known_hosts'), path.join(ssh, 'known_hosts_box'));
  const sshConfig = path.join(ssh, 'config');
  writeFileSync(
    sshConfig,
    readFileSync(SSH_CONFIG, 'utf8')
      .replace(/IdentityFile .*/g, `IdentityFile ${key}`)
      .replace(/UserKnownHostsFile .*/g, `UserKnownHostsFile ${path.join(ssh, 'known_hosts_box')}`),
  );
  for (const f of ['', 'id_box', 'known_hosts_box', 'config']) chownSync(path.join(ssh, f), uid, uid);
  chmodSync(key, 0o600);
  return { name, uid, home, sshConfig };
}
