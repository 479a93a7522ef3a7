import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseArgs, parseDestination, splitSshOption, toResolveOptions, USAGE } from '../../src/client/cli-args';
import { OutrunError } from '../../src/client/errors';

function usageError(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof OutrunError);
    assert.equal(err.code, 'USAGE');
    assert.equal(err.exitStatus, 2);
    assert.equal(err.hint, 'see outrun --help');
    assert.match(err.message, re);
    return true;
  });
}

function run(argv: string[]) {
  const r = parseArgs(argv);
  assert.equal(r.action, 'run');
  if (r.action !== 'run') throw new Error('unreachable');
  return r;
}

describe('parseArgs', () => {
  test('-C asks for compression as ssh does (an earlier -o Compression wins)', () => {
    assert.equal(run(['-C', 'h', 'c']).options.sshOptions.compression, 'yes');
    assert.equal(run(['-o', 'Compression=no', '-C', 'h', 'c']).options.sshOptions.compression, 'no');
    assert.equal(run(['-vC', 'h', 'c']).options.verbose, 1);
  });

  test('destination and command, no options', () => {
    const r = run(['host', 'ls', '-l', '/tmp']);
    assert.deepEqual(r.destination, { host: 'host' });
    assert.deepEqual(r.command, ['ls', '-l', '/tmp']);
    assert.equal(r.options.verbose, 0);
    assert.deepEqual(r.options.identityFiles, []);
  });

  test('everything after the destination is the command, exactly (options there are not parsed)', () => {
    const r = run(['-v', 'me@box', '-p', '22', '--', '-v', '', 'a b', '--help']);
    assert.deepEqual(r.command, ['-p', '22', '--', '-v', '', 'a b', '--help']);
    assert.equal(r.options.verbose, 1);
    assert.equal(r.options.port, undefined);
    assert.equal(r.options.help, false);
  });

  test('options with separate and attached arguments', () => {
    const r = run(['-p', '2222', '-lroot', '-i', 'k1', '-ik2', '-F', 'cfg', '-o', 'ConnectTimeout=5', '-J', 'jump', 'h', 'cmd']);
    assert.equal(r.options.port, 2222);
    assert.equal(r.options.user, 'root');
    assert.deepEqual(r.options.identityFiles, ['k1', 'k2']);
    assert.equal(r.options.configFile, 'cfg');
    assert.deepEqual(r.options.sshOptions, { connecttimeout: '5' });
    assert.equal(r.options.jump, 'jump');
  });

  test('-p22 and getopt clusters: -vvv, -vp 22, -tv', () => {
    assert.equal(run(['-p22', 'h', 'c']).options.port, 22);
    assert.equal(run(['-vvv', 'h', 'c']).options.verbose, 3);
    const r = run(['-vp', '22', '-v', 'h', 'c']);
    assert.equal(r.options.verbose, 2);
    assert.equal(r.options.port, 22);
    const t = run(['-tv', 'h', 'c']);
    assert.equal(t.options.pty, 'force');
    assert.equal(t.options.verbose, 1);
  });

  test('-t / -T: the last one wins', () => {
    assert.equal(run(['-t', 'h', 'c']).options.pty, 'force');
    assert.equal(run(['-T', 'h', 'c']).options.pty, 'disable');
    assert.equal(run(['-t', '-T', 'h', 'c']).options.pty, 'disable');
    assert.equal(run(['h', 'c']).options.pty, undefined);
  });

  test('-o Key=Value, -o "Key Value", -o "Key = Value"; keys lower-cased; first wins', () => {
    const r = run(['-o', 'Port=1', '-o', 'User bob', '-o', 'StrictHostKeyChecking = accept-new', '-o', 'port=2', '-oIdentitiesOnly=yes', 'h', 'c']);
    assert.deepEqual(r.options.sshOptions, {
      port: '1',
      user: 'bob',
      stricthostkeychecking: 'accept-new',
      identitiesonly: 'yes',
    });
    usageError(() => parseArgs(['-o', 'Port', 'h', 'c']), /bad -o option/);
    usageError(() => parseArgs(['-o', 'Host=x', 'h', 'c']), /not allowed/);
  });

  test('-- ends options: a destination may then start with a dash', () => {
    const r = run(['-v', '--', '-weird', 'cmd']);
    assert.deepEqual(r.destination, { host: '-weird' });
    assert.deepEqual(r.command, ['cmd']);
  });

  test('--help and --version need no destination', () => {
    const h = parseArgs(['--help']);
    assert.equal(h.action, 'help');
    const v = parseArgs(['-v', '--version']);
    assert.equal(v.action, 'version');
    assert.equal(parseArgs(['--help', 'host', 'cmd']).action, 'help');
  });

  test('--kernel-cache SECONDS: 0 to 3600, attached or separate; anything else is a usage error', () => {
    assert.equal(run(['--kernel-cache', '0', 'h', 'c']).options.kernelCacheS, 0);
    assert.equal(run(['--kernel-cache=3600', 'h', 'c']).options.kernelCacheS, 3600);
    assert.equal(run(['h', 'c']).options.kernelCacheS, undefined);
    for (const bad of ['3601', '-1', '1.5', 'ten', '', '99999']) {
      usageError(() => parseArgs([`--kernel-cache=${bad}`, 'h', 'c']), /--kernel-cache .* is not a number of seconds from 0 to 3600/);
    }
    usageError(() => parseArgs(['--kernel-cache']), /--kernel-cache needs an argument/);
  });

  test('usage errors: missing destination, missing command, bad port, unknown option, missing argument', () => {
    usageError(() => parseArgs([]), /missing destination/);
    usageError(() => parseArgs(['-v']), /missing destination/);
    usageError(() => parseArgs(['host']), /missing command/);
    usageError(() => parseArgs(['-p', 'x', 'h', 'c']), /bad port/);
    usageError(() => parseArgs(['-p', '0', 'h', 'c']), /bad port/);
    usageError(() => parseArgs(['-p', '65536', 'h', 'c']), /bad port/);
    usageError(() => parseArgs(['-x', 'h', 'c']), /unknown option '-x'/);
    usageError(() => parseArgs(['--frobnicate', 'h', 'c']), /unknown option '--frobnicate'/);
    usageError(() => parseArgs(['-p']), /-p needs an argument/);
    usageError(() => parseArgs(['-J', 'a', '-J', 'b', 'h', 'c']), /only one -J/);
    usageError(() => parseArgs(['-J', 'a', '-o', 'ProxyCommand=nc %h %p', 'h', 'c']), /-J cannot be combined/);
  });

  test('USAGE lists every option', () => {
    for (const opt of ['-p PORT', '-l USER', '-i FILE', '-F FILE', '-o KEY=VALUE', '-J', '-v', '-t', '-T', '--help', '--version', '--'])
      assert.ok(USAGE.includes(opt), opt);
  });
});

describe('parseDestination', () => {
  test('host, user@host, a user containing @', () => {
    assert.deepEqual(parseDestination('box'), { host: 'box' });
    assert.deepEqual(parseDestination('me@box'), { user: 'me', host: 'box' });
    assert.deepEqual(parseDestination('me@corp@box'), { user: 'me@corp', host: 'box' });
  });

  test('ssh:// URIs with user, port, IPv6', () => {
    assert.deepEqual(parseDestination('ssh://box'), { host: 'box' });
    assert.deepEqual(parseDestination('ssh://me@box:2222'), { user: 'me', host: 'box', port: 2222 });
    assert.deepEqual(parseDestination('ssh://me@box:2222/'), { user: 'me', host: 'box', port: 2222 });
    assert.deepEqual(parseDestination('ssh://[::1]:22'), { host: '::1', port: 22 });
    assert.deepEqual(parseDestination('ssh://[fe80::1]'), { host: 'fe80::1' });
  });

  test('malformed destinations are usage errors', () => {
    usageError(() => parseDestination('me@'), /missing host/);
    usageError(() => parseDestination('@box'), /empty user/);
    usageError(() => parseDestination('ssh://'), /bad destination/);
    usageError(() => parseDestination('ssh://box:x'), /bad port/);
    usageError(() => parseDestination('ssh://[::1'), /bad destination/);
  });
});

describe('splitSshOption', () => {
  test('forms', () => {
    assert.deepEqual(splitSshOption('A=b'), ['a', 'b']);
    assert.deepEqual(splitSshOption('A b c'), ['a', 'b c']);
    assert.deepEqual(splitSshOption('  A  =  b=c '), ['a', 'b=c']);
  });
});

describe('toResolveOptions', () => {
  test('-l beats user@, -p beats the URI port, -J becomes ProxyJump and beats -o ProxyJump', () => {
    const r = run(['-l', 'cli', '-p', '2', '-o', 'ProxyJump=x', '-J', 'j1,j2', '-i', 'k', '-F', 'f', 'ssh://uri@h:1', 'c']);
    assert.deepEqual(toResolveOptions(r), {
      host: 'h',
      user: 'cli',
      port: 2,
      identityFiles: ['k'],
      configFile: 'f',
      overrides: { proxyjump: 'j1,j2' },
    });
  });

  test('the destination user and port when there is no -l / -p', () => {
    const r = run(['ssh://uri@h:1', 'c']);
    const o = toResolveOptions(r);
    assert.equal(o.user, 'uri');
    assert.equal(o.port, 1);
    assert.equal('configFile' in o, false);
  });
});
