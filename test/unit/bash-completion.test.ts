import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { USAGE } from '../../src/client/cli-args';
import { SSH_CONFIG_KEYWORDS } from '../../src/client/ssh-config-keywords';
import { CHECKOUT, optionsInHelp } from './option-lists';

const COMPLETION = path.join(CHECKOUT, 'completion/outrun.bash');

// A home with an ssh config (an Include with a glob, patterns that must not be offered) and a
// known_hosts file (plain, [host]:port, hashed, @marker lines), and two PATH directories of our own.
let home: string;
function setUp(): void {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-completion-'));
  const ssh = path.join(home, '.ssh');
  fs.mkdirSync(path.join(ssh, 'conf.d'), { recursive: true });
  fs.writeFileSync(path.join(ssh, 'config'), 'Include conf.d/*.conf\nHost box boxer *.example !bad\n  Port 22\nhost=build\n');
  fs.writeFileSync(path.join(ssh, 'conf.d', 'a.conf'), 'Host included-one\n');
  fs.writeFileSync(path.join(home, 'other_config'), 'Host only-in-other\n');
  fs.writeFileSync(
    path.join(ssh, 'known_hosts'),
    [
      'known1,10.0.0.7 ssh-ed25519 AAAA',
      '[known2]:2222 ssh-ed25519 AAAA',
      '|1|abc=|def= ssh-ed25519 AAAA',
      '@cert-authority *.ca ssh-ed25519 AAAA',
      '# comment',
    ].join('\n') + '\n',
  );
  for (const [dir, names] of [['bin1', ['zz-ffmpeg', 'zz-ffprobe', 'zz-notexec']], ['bin2', ['zz-ffmpeg', 'zz-fzf']]] as const) {
    fs.mkdirSync(path.join(home, dir));
    for (const n of names) fs.writeFileSync(path.join(home, dir, n), '#!/bin/sh\n', { mode: n === 'zz-notexec' ? 0o644 : 0o755 });
  }
}

/** Complete `line` (words split on spaces; a trailing space starts an empty word) in a plain bash. */
function complete(line: string, extra = ''): string[] {
  const script = `
    source "$1"
    ${extra}
    read -ra COMP_WORDS <<<"$2"
    [[ $2 == *' ' ]] && COMP_WORDS+=('')
    COMP_CWORD=$(( \${#COMP_WORDS[@]} - 1 ))
    COMP_LINE=$2; COMP_POINT=\${#2}
    _outrun
    printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('/bin/bash', ['--norc', '--noprofile', '-c', script, 'bash', COMPLETION, line], {
    encoding: 'utf8',
    env: { HOME: home, PATH: `${home}/bin1:${home}/bin2:/nonexistent:/usr/bin:/bin`, LC_ALL: 'C' },
    cwd: home,
  });
  assert.equal(r.stderr, '');
  assert.equal(r.status, 0);
  return r.stdout.split('\n').filter((s) => s !== '').sort();
}

describe('bash completion', () => {
  before(setUp);
  after(() => fs.rmSync(home, { recursive: true, force: true }));

  test('its option list is the one --help shows', () => {
    const text = fs.readFileSync(COMPLETION, 'utf8');
    const listed = /^_outrun_options='([^']*)'$/m.exec(text)![1].split(' ').sort();
    assert.deepEqual(listed, optionsInHelp(USAGE));
    assert.deepEqual(complete('outrun --cache-'), ['--cache-paths', '--cache-size']);
    assert.deepEqual(complete('outrun -v -'), optionsInHelp(USAGE));
  });

  test('hosts come from ssh_config (Include with globs) and known_hosts, without patterns or hashes', () => {
    assert.deepEqual(complete('outrun '), ['10.0.0.7', 'box', 'boxer', 'build', 'included-one', 'known1', 'known2']);
    assert.deepEqual(complete('outrun -p 22 -v bo'), ['box', 'boxer']);
    assert.deepEqual(complete('outrun root@kn'), ['root@known1', 'root@known2']);
    assert.deepEqual(complete('outrun -J bu'), ['build']);
  });

  test('-F FILE (and -F none) changes which ssh_config is read', () => {
    assert.deepEqual(complete('outrun -F other_config on'), ['only-in-other']);
    assert.deepEqual(complete(`outrun -F${home}/other_config on`), ['only-in-other']);
    assert.deepEqual(complete('outrun -F none b'), []);
  });

  test('after the destination: executables on the local PATH, once each', () => {
    assert.deepEqual(complete('outrun box zz-f'), ['zz-ffmpeg', 'zz-ffprobe', 'zz-fzf']);
    assert.deepEqual(complete('outrun -l root -- box zz-ffp'), ['zz-ffprobe']);
    assert.deepEqual(complete('outrun -- -odd zz-'), ['zz-ffmpeg', 'zz-ffprobe', 'zz-fzf']);
  });

  test("the command's arguments: files, or the command's own completion when bash-completion has one", () => {
    assert.deepEqual(complete('outrun box zz-ffmpeg other_'), ['other_config']);
    const own = '_command_offset() { COMPREPLY=("offset=$1" "word=${COMP_WORDS[$1]}"); }';
    assert.deepEqual(complete('outrun -i key box zz-ffmpeg -', own), ['offset=4', 'word=zz-ffmpeg']);
  });

  test('-o offers exactly the ssh_config keywords outrun honours', () => {
    const text = fs.readFileSync(COMPLETION, 'utf8');
    const offered = /^_outrun_ssh_keys='([^']*)'$/m.exec(text)![1].split(' ').map((k) => k.toLowerCase()).sort();
    const honoured = Object.keys(SSH_CONFIG_KEYWORDS).filter((k) => SSH_CONFIG_KEYWORDS[k]!.use === 'honoured').sort();
    assert.deepEqual(offered, honoured);
  });

  test('option arguments: ssh keys for -o, files for -i and -F', () => {
    assert.deepEqual(complete('outrun -o Connect'), ['ConnectTimeout=']);
    assert.deepEqual(complete('outrun -i other'), ['other_config']);
  });
});
