import assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { OutrunError } from '../../src/client/errors';
import {
  expandTokens,
  matchPatternList,
  parseJumpChain,
  parseJumpHost,
  parseTime,
  resolveSshConfig,
  splitArgs,
  type ResolveOptions,
} from '../../src/client/ssh-config';

let tmp: string;
let home: string;
let warnings: string[];

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-ssh-config-'));
  home = path.join(tmp, 'home');
  fs.mkdirSync(path.join(home, '.ssh'), { recursive: true });
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(rel: string, text: string): string {
  const p = path.isAbsolute(rel) ? rel : path.join(tmp, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, text);
  return p;
}

/** Resolve with the test home, no system config, an empty environment, warnings collected. */
function resolve(host: string, opts: Partial<ResolveOptions> = {}) {
  warnings = [];
  return resolveSshConfig({
    host,
    overrides: {},
    home,
    localUser: 'local',
    systemConfigFile: 'none',
    env: {},
    warn: (m) => warnings.push(m),
    ...opts,
  });
}

function configError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof OutrunError);
    assert.equal(err.code, 'SSH_CONFIG');
    assert.equal(err.exitStatus, 255);
    assert.match(err.message, re);
    return true;
  });
}

describe('defaults', () => {
  test('no config at all', () => {
    const r = resolve('box', { configFile: 'none' });
    assert.equal(r.host, 'box');
    assert.equal(r.hostName, 'box');
    assert.equal(r.user, 'local');
    assert.equal(r.port, 22);
    assert.deepEqual(r.identityFiles, ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((n) => path.join(home, '.ssh', n)));
    assert.equal(r.identityFilesAreDefault, true);
    assert.equal(r.identitiesOnly, false);
    assert.deepEqual(r.userKnownHostsFiles, [path.join(home, '.ssh/known_hosts'), path.join(home, '.ssh/known_hosts2')]);
    assert.deepEqual(r.globalKnownHostsFiles, ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']);
    assert.equal(r.strictHostKeyChecking, 'ask');
    assert.equal(r.connectTimeout, 20);
    assert.equal(r.serverAliveInterval, 5);
    assert.equal(r.serverAliveCountMax, 3);
    assert.equal(r.batchMode, false);
    assert.equal(r.compression, false);
    assert.equal(r.proxyJump, undefined);
    assert.equal(r.proxyCommand, undefined);
    assert.equal(r.identityAgent, undefined);
  });

  test('SSH_AUTH_SOCK is the agent unless IdentityAgent says otherwise', () => {
    assert.equal(resolve('box', { configFile: 'none', env: { SSH_AUTH_SOCK: '/s' } }).identityAgent, '/s');
    const cfg = write('agent.conf', 'Host a\n IdentityAgent none\nHost b\n IdentityAgent $MYSOCK\nHost c\n IdentityAgent ~/agent.sock\nHost d\n IdentityAgent SSH_AUTH_SOCK\n');
    const env = { SSH_AUTH_SOCK: '/s', MYSOCK: '/my' };
    assert.equal(resolve('a', { configFile: cfg, env }).identityAgent, undefined);
    assert.equal(resolve('b', { configFile: cfg, env }).identityAgent, '/my');
    assert.equal(resolve('c', { configFile: cfg, env }).identityAgent, path.join(home, 'agent.sock'));
    assert.equal(resolve('d', { configFile: cfg, env }).identityAgent, '/s');
  });
});

describe('reading files', () => {
  test('first obtained value wins; Host blocks; options before any Host apply to all', () => {
    const cfg = write(
      'first.conf',
      [
        'Port 2000',
        'Host box',
        '  HostName box.example.org',
        '  User alice',
        '  Port 3000',
        'Host *',
        '  User nobody',
        '  HostName never-used',
        '  ConnectTimeout 7',
      ].join('\n'),
    );
    const r = resolve('box', { configFile: cfg });
    assert.equal(r.hostName, 'box.example.org');
    assert.equal(r.user, 'alice');
    assert.equal(r.port, 2000);
    assert.equal(r.connectTimeout, 7);
    const o = resolve('other', { configFile: cfg });
    assert.equal(o.user, 'nobody');
    assert.equal(o.hostName, 'never-used');
  });

  test('the command line beats the file: -l, -p, -o', () => {
    const cfg = write('cmdline.conf', 'Host box\n User alice\n Port 3000\n StrictHostKeyChecking yes\n');
    const r = resolve('box', { configFile: cfg, user: 'bob', port: 22, overrides: { StrictHostKeyChecking: 'accept-new' } });
    assert.equal(r.user, 'bob');
    assert.equal(r.port, 22);
    assert.equal(r.strictHostKeyChecking, 'accept-new');
    const o = resolve('box', { configFile: cfg, overrides: { user: 'carol', port: '4000' } });
    assert.equal(o.user, 'carol');
    assert.equal(o.port, 4000);
  });

  test('patterns: *, ?, !negation, several per Host line, case as typed (as OpenSSH)', () => {
    const cfg = write(
      'patterns.conf',
      [
        'Host *.internal !db.internal',
        '  User internal',
        'Host web? api',
        '  User web',
        'Host DB.INTERNAL',
        '  User db',
      ].join('\n'),
    );
    assert.equal(resolve('x.internal', { configFile: cfg }).user, 'internal');
    assert.equal(resolve('db.internal', { configFile: cfg }).user, 'local');
    assert.equal(resolve('DB.INTERNAL', { configFile: cfg }).user, 'db');
    assert.equal(resolve('DB.INTERNAL', { configFile: cfg }).hostName, 'db.internal');
    assert.equal(resolve('web1', { configFile: cfg }).user, 'web');
    assert.equal(resolve('api', { configFile: cfg }).user, 'web');
    assert.equal(resolve('web12', { configFile: cfg }).user, 'local');
  });

  test('Key=Value, Key = Value, quoted values, case-insensitive keywords, comments, CRLF', () => {
    const cfg = write(
      'forms.conf',
      [
        '# a comment',
        '',
        'HOST box',
        '\tuser=alice   # trailing comment',
        '  PORT = 2222\r',
        '  identityfile "~/.ssh/my key"',
        '  UserKnownHostsFile ~/kh1 "/tmp/k h2"',
      ].join('\n'),
    );
    const r = resolve('box', { configFile: cfg });
    assert.equal(r.user, 'alice');
    assert.equal(r.port, 2222);
    assert.deepEqual(r.identityFiles, [path.join(home, '.ssh/my key')]);
    assert.equal(r.identityFilesAreDefault, false);
    assert.deepEqual(r.userKnownHostsFiles, [path.join(home, 'kh1'), '/tmp/k h2']);
  });

  test('IdentityFile accumulates: -i first, then -o, then the files, without duplicates', () => {
    const cfg = write('ids.conf', 'Host box\n IdentityFile ~/.ssh/a\n IdentityFile ~/.ssh/b\nHost *\n IdentityFile ~/.ssh/a\n IdentityFile /abs/c\n');
    const r = resolve('box', { configFile: cfg, identityFiles: ['/cli/k'], overrides: { IdentityFile: '/o/k' } });
    assert.deepEqual(r.identityFiles, ['/cli/k', '/o/k', path.join(home, '.ssh/a'), path.join(home, '.ssh/b'), '/abs/c']);
  });

  test('tokens: %h %p %r %u %n %d %% %k %C, HostName %h', () => {
    const cfg = write(
      'tokens.conf',
      [
        'Host alias',
        '  HostName %h.example.org',
        '  User remote',
        '  Port 2022',
        '  IdentityFile ~/.ssh/%h-%p-%r-%u-%n-%%',
        '  UserKnownHostsFile %d/kh/%k',
        '  ProxyCommand nc -X connect %h %p',
      ].join('\n'),
    );
    const r = resolve('alias', { configFile: cfg });
    assert.equal(r.hostName, 'alias.example.org');
    assert.deepEqual(r.identityFiles, [path.join(home, '.ssh/alias.example.org-2022-remote-local-alias-%')]);
    assert.deepEqual(r.userKnownHostsFiles, [path.join(home, 'kh/alias')]);
    assert.equal(r.proxyCommand, 'nc -X connect alias.example.org 2022');
    const cfg2 = write('tokens2.conf', 'Host *\n IdentityFile /k/%C\n');
    const c = resolve('h', { configFile: cfg2, user: 'u', port: 22 });
    const want = crypto.createHash('sha1').update(`${os.hostname()}h22u`).digest('hex');
    assert.deepEqual(c.identityFiles, [`/k/${want}`]);
    const bad = write('tokens3.conf', 'Host *\n IdentityFile /k/%Q\n');
    configError(() => resolve('h', { configFile: bad }), /unknown or unsupported token %Q/);
  });

  test('Include: relative to ~/.ssh, globs in order, inside a Host block only when it matches', () => {
    write(path.join(home, '.ssh/conf.d/10-a.conf'), 'Host inc\n User from-a\n');
    write(path.join(home, '.ssh/conf.d/20-b.conf'), 'Host inc inc2\n User from-b\n Port 1234\n');
    write(path.join(home, '.ssh/conf.d/.hidden.conf'), 'Host inc2\n User hidden\n');
    write(path.join(home, '.ssh/only-web.conf'), 'User from-web-include\n');
    const cfg = write(
      'include.conf',
      ['Include conf.d/*.conf', 'Host web', '  Include only-web.conf', 'Host *', '  User fallback'].join('\n'),
    );
    const inc = resolve('inc', { configFile: cfg });
    assert.equal(inc.user, 'from-a');
    assert.equal(inc.port, 1234);
    assert.equal(resolve('inc2', { configFile: cfg }).user, 'from-b');
    assert.equal(resolve('web', { configFile: cfg }).user, 'from-web-include');
    assert.equal(resolve('other', { configFile: cfg }).user, 'fallback');
    // A Host line inside an included file does not end the including block.
    write(path.join(home, '.ssh/resets.conf'), 'Host nomatch\n User nope\n');
    const cfg2 = write('include2.conf', 'Host box\n Include resets.conf\n User after-include\n');
    assert.equal(resolve('box', { configFile: cfg2 }).user, 'after-include');
    assert.equal(resolve('other', { configFile: cfg2 }).user, 'local');
  });

  test('Include loops are cut off', () => {
    const loop = write(path.join(home, '.ssh/loop.conf'), 'Include loop.conf\n');
    configError(() => resolve('x', { configFile: loop }), /nested too deeply/);
  });

  test('Match all / host / originalhost / user / localuser, negation', () => {
    const cfg = write(
      'match.conf',
      [
        'Host short',
        '  HostName short.example.org',
        'Match host *.example.org user alice',
        '  Port 1001',
        'Match originalhost short',
        '  ConnectTimeout 9',
        'Match !host *.example.org',
        '  Port 1002',
        'Match localuser local',
        '  ServerAliveInterval 11',
        'Match all',
        '  ServerAliveCountMax 4',
      ].join('\n'),
    );
    const a = resolve('short', { configFile: cfg, user: 'alice' });
    assert.equal(a.port, 1001);
    assert.equal(a.connectTimeout, 9);
    assert.equal(a.serverAliveInterval, 11);
    assert.equal(a.serverAliveCountMax, 4);
    const b = resolve('short', { configFile: cfg, user: 'bob' });
    assert.equal(b.port, 22); // the Match user failed and the !host does not match
    const c = resolve('elsewhere', { configFile: cfg });
    assert.equal(c.port, 1002);
    assert.equal(c.connectTimeout, 20);
  });

  test('Match exec runs its command (tokens expanded) and matches on exit 0; other unsupported criteria warn', () => {
    const cfg = write(
      'match-exec.conf',
      'Match exec "test %n = x && exit 3"\n  Port 1\nMatch exec "test %n = x"\n  User execd\nMatch localnetwork 10.0.0.0/8\n  Port 2\n',
    );
    const r = resolve('x', { configFile: cfg, env: { PATH: process.env.PATH } });
    assert.equal(r.port, 22);
    assert.equal(r.user, 'execd');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /match-exec\.conf line 5: Match criterion 'localnetwork' is not supported/);
    assert.equal(resolve('y', { configFile: cfg, env: { PATH: process.env.PATH } }).user, 'local');
  });

  test('Match final applies in a second pass, after everything else', () => {
    const cfg = write('match-final.conf', 'Match final\n  Port 3\n  User final\nHost x\n  Port 4\n');
    const r = resolve('x', { configFile: cfg });
    assert.equal(r.port, 4);
    assert.equal(r.user, 'final');
  });

  test('~/.ssh/config then the system file when there is no -F; -F none reads nothing', () => {
    write(path.join(home, '.ssh/config'), 'Host box\n User from-user-config\n');
    const sys = write('etc/ssh_config', 'Host box\n User from-system\n Port 2200\n');
    const r = resolve('box', { systemConfigFile: sys });
    assert.equal(r.user, 'from-user-config');
    assert.equal(r.port, 2200);
    const n = resolve('box', { configFile: 'none', systemConfigFile: sys });
    assert.equal(n.user, 'local');
    assert.equal(n.port, 22);
    fs.rmSync(path.join(home, '.ssh/config'));
  });

  test('an unreadable -F file is an SSH_CONFIG error', () => {
    configError(() => resolve('box', { configFile: path.join(tmp, 'missing.conf') }), /cannot read ssh config file .*missing\.conf/);
  });

  test('ProxyJump and ProxyCommand: the first one obtained wins, none disables', () => {
    const cfg = write(
      'proxy.conf',
      ['Host j1', '  ProxyJump bastion', 'Host c1', '  ProxyCommand ssh -W %h:%p bastion', 'Host *', '  ProxyJump other', '  ProxyCommand never'].join('\n'),
    );
    const j = resolve('j1', { configFile: cfg });
    assert.equal(j.proxyJump, 'bastion');
    assert.equal(j.proxyCommand, undefined);
    const c = resolve('c1', { configFile: cfg });
    assert.equal(c.proxyCommand, 'ssh -W c1:22 bastion');
    assert.equal(c.proxyJump, undefined);
    // As OpenSSH: ProxyJump none leaves room for a ProxyCommand; ProxyCommand none does not.
    const n = resolve('c1', { configFile: cfg, overrides: { ProxyJump: 'none' } });
    assert.equal(n.proxyJump, undefined);
    assert.equal(n.proxyCommand, 'ssh -W c1:22 bastion');
    const m = resolve('j1', { configFile: cfg, overrides: { ProxyCommand: 'none' } });
    assert.equal(m.proxyJump, undefined);
    assert.equal(m.proxyCommand, undefined);
    const o = resolve('c1', { configFile: cfg, overrides: { proxyjump: 'u@a:2,b' } });
    assert.equal(o.proxyJump, 'u@a:2,b');
  });

  test('values: StrictHostKeyChecking forms, UserKnownHostsFile none, times, yes/no', () => {
    const cfg = write(
      'values.conf',
      [
        'Host a',
        '  StrictHostKeyChecking off',
        '  UserKnownHostsFile none',
        '  ConnectTimeout 1m30s',
        '  ServerAliveInterval 0',
        '  IdentitiesOnly yes',
        '  BatchMode yes',
        '  HostKeyAlias alias-key',
        'Host b',
        '  StrictHostKeyChecking yes',
        '  AddKeysToAgent yes',
        '  SomeUnknownKeyword whatever',
      ].join('\n'),
    );
    const a = resolve('a', { configFile: cfg });
    assert.equal(a.strictHostKeyChecking, 'no');
    assert.deepEqual(a.userKnownHostsFiles, []);
    assert.equal(a.connectTimeout, 90);
    assert.equal(a.serverAliveInterval, 0);
    assert.equal(a.identitiesOnly, true);
    assert.equal(a.batchMode, true);
    assert.equal(a.hostKeyAlias, 'alias-key');
    const b = resolve('b', { configFile: cfg });
    assert.equal(b.strictHostKeyChecking, 'yes');
    assert.deepEqual(warnings, [`${cfg} line 12: unknown keyword 'SomeUnknownKeyword', ignored`]);
  });

  test('bad values name the file and line', () => {
    configError(() => resolve('x', { configFile: write('bad1.conf', '\nPort 99999\n') }), /bad1\.conf line 2: bad port/);
    configError(() => resolve('x', { configFile: write('bad2.conf', 'StrictHostKeyChecking maybe\n') }), /StrictHostKeyChecking/);
    configError(() => resolve('x', { configFile: write('bad3.conf', 'User "unterminated\n') }), /unterminated quote/);
    configError(() => resolve('x', { configFile: write('bad4.conf', 'ProxyJump a b\n') }), /garbage/);
    configError(() => resolve('x', { configFile: write('bad5.conf', 'ProxyJump a:b:c:x\n') }), /bad ProxyJump/);
    configError(() => resolve('x', { configFile: 'none', overrides: { Port: 'abc' } }), /-o Port=abc: bad port/);
  });

  test('-o with a keyword no ssh_config has: refused (exit 2); one without effect: accepted quietly', () => {
    assert.throws(
      () => resolve('x', { configFile: 'none', overrides: { Frobnicate: 'yes' } }),
      (err: unknown) => err instanceof OutrunError && err.code === 'USAGE' && err.exitStatus === 2 && /-o Frobnicate: unknown ssh_config keyword/.test(err.message),
    );
    resolve('x', { configFile: 'none', overrides: { LogLevel: 'QUIET' } });
    assert.deepEqual(warnings, []);
  });
});

describe('helpers', () => {
  test('matchPatternList', () => {
    assert.equal(matchPatternList(['*'], 'x'), true);
    assert.equal(matchPatternList(['!x', '*'], 'x'), false);
    assert.equal(matchPatternList(['!x'], 'y'), false); // only negations never match
    assert.equal(matchPatternList(['a?c'], 'abc'), true);
    assert.equal(matchPatternList(['a.c'], 'abc'), false); // '.' is literal
    assert.equal(matchPatternList(['[h]:22*'], '[h]:2222'), true);
  });

  test('splitArgs', () => {
    assert.deepEqual(splitArgs(`a "b c" 'd e' f\\ g # comment`), ['a', 'b c', 'd e', 'f g']);
    assert.deepEqual(splitArgs(`"x\\"y" a#b`), ['x"y', 'a#b']);
    assert.ok(splitArgs('"open') instanceof Error);
  });

  test('parseTime', () => {
    assert.equal(parseTime('30'), 30);
    assert.equal(parseTime('30s'), 30);
    assert.equal(parseTime('1m30s'), 90);
    assert.equal(parseTime('2h'), 7200);
    assert.equal(parseTime('1w1d'), 8 * 86400);
    assert.equal(parseTime('x'), null);
    assert.equal(parseTime('10q'), null);
  });

  test('parseJumpHost / parseJumpChain', () => {
    assert.deepEqual(parseJumpHost('h'), { host: 'h' });
    assert.deepEqual(parseJumpHost('u@h:2'), { user: 'u', host: 'h', port: 2 });
    assert.deepEqual(parseJumpHost('[::1]:2'), { host: '::1', port: 2 });
    assert.deepEqual(parseJumpHost('ssh://u@h:3'), { user: 'u', host: 'h', port: 3 });
    assert.equal(parseJumpHost('h:x'), null);
    assert.equal(parseJumpHost('@h'), null);
    assert.deepEqual(parseJumpChain('a,u@b:2'), [{ host: 'a' }, { user: 'u', host: 'b', port: 2 }]);
    assert.equal(parseJumpChain('a,,b'), null);
  });

  test('expandTokens', () => {
    assert.equal(expandTokens('%h:%p %%', { h: 'H', p: '1' }, 'x'), 'H:1 %');
    assert.throws(() => expandTokens('%', {}, 'x'), OutrunError);
  });
});
