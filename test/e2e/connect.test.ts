// End to end: reaching the box the ways real networks need (ProxyJump through a bastion,
// ProxyCommand), each through a real sshd.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { SSH_CONFIG, outrun } from './harness';

describe('connecting through proxies', { timeout: 120_000 }, () => {
  let cfg: string;

  after(() => rmSync(path.dirname(cfg), { recursive: true, force: true }));

  before(() => {
    const box = readFileSync(SSH_CONFIG, 'utf8');
    const field = (k: string) => new RegExp(`^\\s*${k}\\s+(.+)$`, 'mi').exec(box)![1]!.trim();
    const common = [
      `  User root`,
      `  IdentityFile ${field('IdentityFile')}`,
      `  IdentitiesOnly yes`,
      `  UserKnownHostsFile ${field('UserKnownHostsFile')}`,
      `  StrictHostKeyChecking yes`,
    ].join('\n');
    // The box is its own bastion: sshd there forwards to its own address.
    cfg = path.join(mkdtempSync(path.join(tmpdir(), 'outrun-connect-')), 'ssh_config');
    writeFileSync(
      cfg,
      [
        `Host bastion`,
        `  HostName ${field('HostName')}`,
        common,
        `Host behind-bastion`,
        `  HostName ${field('HostName')}`,
        `  ProxyJump bastion`,
        common,
        `Host via-command`,
        `  HostName ${field('HostName')}`,
        `  ProxyCommand ssh -F "${SSH_CONFIG}" -o BatchMode=yes -W %h:%p box`,
        common,
        '',
      ].join('\n'),
    );
  });

  test('ProxyJump through a bastion', async () => {
    const r = await outrun(['-F', cfg, 'behind-bastion', 'sh', '-c', 'echo via jump; exit 3']);
    assert.equal(r.stdout.toString(), 'via jump\n', r.stderr);
    assert.equal(r.status, 3);
  });

  test('-J on the command line', async () => {
    const r = await outrun(['-F', cfg, '-J', 'bastion', 'bastion', 'echo', 'dash J']);
    assert.equal(r.stdout.toString(), 'dash J\n', r.stderr);
    assert.equal(r.status, 0);
  });

  test('ProxyCommand (OpenSSH as the proxy)', async () => {
    const r = await outrun(['-F', cfg, 'via-command', 'cat'], { input: 'through the proxy command\n' });
    assert.equal(r.stdout.toString(), 'through the proxy command\n', r.stderr);
    assert.equal(r.status, 0);
  });
});
