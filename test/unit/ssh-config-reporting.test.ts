// Keywords outrun does not honour: those that would change where or how to connect are reported
// (one line each), never silently ignored; the table knows every keyword OpenSSH has.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { resolveSshConfig, type ResolveOptions } from '../../src/client/ssh-config';
import { SSH_CONFIG_KEYWORDS, keywordUse } from '../../src/client/ssh-config-keywords';
import { CHECKOUT } from './option-lists';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-keywords-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function warningsFor(host: string, config: string, overrides: Record<string, string> = {}): string[] {
  const file = path.join(dir, `${host}.conf`);
  fs.writeFileSync(file, config);
  const warnings: string[] = [];
  const opts: ResolveOptions = { host, configFile: file, overrides, home: dir, localUser: 'u', env: {}, warn: (m) => warnings.push(m) };
  resolveSshConfig(opts);
  return warnings.map((w) => w.replace(`${file} `, ''));
}

describe('keywords outrun does not honour', () => {
  test('-o ControlPersist=60 is reported; -o ControlMaster=no asks for nothing and is not', () => {
    assert.deepEqual(warningsFor('a', '', { controlpersist: '60', controlmaster: 'no' }), [
      'command line option -o controlpersist=60: controlpersist is not supported by outrun (connection sharing); connecting without it',
    ]);
  });

  test('in files: unsupported and unknown keywords of the matching blocks, once each; IgnoreUnknown', () => {
    const config = [
      'Host b',
      '  ControlMaster auto',
      '  Ciphers aes128-ctr',
      '  ControlMaster yes',
      '  LogLevel QUIET',
      '  SendEnv LANG',
      '  GSSAPIAuthentication yes',
      '  Frobnicate yes',
      'Host other',
      '  BindAddress 10.0.0.1',
    ].join('\n');
    assert.deepEqual(warningsFor('b', config), [
      'line 2: ControlMaster is not supported by outrun (connection sharing); connecting without it',
      'line 3: Ciphers is not supported by outrun (the cipher list); connecting without it',
      "line 8: unknown keyword 'Frobnicate', ignored",
    ]);
    assert.deepEqual(warningsFor('c', `IgnoreUnknown frob*,Other\n${config.replace('Host b', 'Host c')}`).length, 2);
  });

  test("Debian's own /etc/ssh/ssh_config settings report nothing", () => {
    const debian = 'Host *\n    SendEnv LANG LC_*\n    HashKnownHosts yes\n    GSSAPIAuthentication yes\n';
    assert.deepEqual(warningsFor('d', debian), []);
    assert.equal(warningsFor('e', 'HashKnownHosts no\n').length, 1);
  });

  test('the table knows every keyword ssh -G prints, and honours exactly what the differential test compares', () => {
    const r = spawnSync('ssh', ['-G', '-F', 'none', 'x'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const printed = [...new Set(r.stdout.split('\n').filter(Boolean).map((l) => l.split(' ')[0]!))];
    assert.ok(printed.length > 60, `ssh -G printed only ${printed.length} keywords`);
    // `host` is the destination itself, not a keyword of its own.
    assert.deepEqual(printed.filter((k) => k !== 'host' && keywordUse(k) === undefined), []);
    const honoured = Object.keys(SSH_CONFIG_KEYWORDS).filter((k) => SSH_CONFIG_KEYWORDS[k]!.use === 'honoured').sort();
    const compared = /const KEYS = \[([^\]]*)\]/.exec(
      fs.readFileSync(path.join(CHECKOUT, 'test/unit/ssh-config-differential.test.ts'), 'utf8'),
    )![1]!.match(/'([a-z]+)'/g)!.map((k) => k.slice(1, -1)).sort();
    assert.deepEqual(honoured, compared);
  });

  test('outrun itself prints the report on stderr before connecting (loopback, a closed port)', () => {
    const cli = path.join(CHECKOUT, 'dist/src/client/cli.js');
    const r = spawnSync(process.execPath, [cli, '-F', 'none', '-o', 'ControlMaster=auto', '-o', 'BatchMode=yes', '-p', '9', '127.0.0.1', 'true'], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, HOME: dir },
      timeout: 30_000,
    });
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines[0], 'outrun: warning: command line option -o controlmaster=auto: controlmaster is not supported by outrun (connection sharing); connecting without it');
    assert.match(lines[1]!, /^outrun: cannot connect to 127\.0\.0\.1 port 9/);
    assert.equal(r.status, 255);
  });
});
