import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { USAGE } from '../../src/client/cli-args';
import { SSH_CONFIG_KEYWORDS } from '../../src/client/ssh-config-keywords';
import { CHECKOUT, optionsInHelp, optionsInManPage } from './option-lists';

const MAN_PAGE = path.join(CHECKOUT, 'man/outrun.1');
const roff = fs.readFileSync(MAN_PAGE, 'utf8');

test('outrun(1) lists exactly the options --help lists', () => {
  const help = optionsInHelp(USAGE);
  assert.ok(help.length >= 17, `only ${help.length} options found in --help: ${help.join(' ')}`);
  assert.deepEqual(optionsInManPage(roff), help);
});

test('outrun(1) carries the package version and the exit statuses of the README', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(CHECKOUT, 'package.json'), 'utf8')) as { version: string; man: string[] };
  assert.match(roff, new RegExp(`^\\.TH OUTRUN 1 "[^"]*" "outrun ${pkg.version.replace(/\./g, '\\.')}"`, 'm'));
  assert.deepEqual(pkg.man, ['man/outrun.1']);
  const exitSection = roff.split(/^\.SH EXIT STATUS$/m)[1]!.split(/^\.SH /m)[0]!;
  const statuses = [...exitSection.matchAll(/^\.TP\n(\d+)$/gm)].map((m) => Number(m[1]));
  assert.deepEqual(statuses, [124, 137, 143, 127, 126, 255, 254, 253, 252, 251, 1, 2]);
});

test('outrun(1) renders without a groff warning', () => {
  const r = spawnSync('groff', ['-man', '-ww', '-z', MAN_PAGE], { encoding: 'utf8' });
  assert.equal(r.error, undefined, 'groff missing: scripts/system-packages test installs man-db (groff-base)');
  assert.equal(r.stderr, '');
  assert.equal(r.status, 0);
});

test('outrun(1) names exactly the ssh_config keywords outrun honours', () => {
  const files = roff.split(/^\.SH FILES$/m)[1]!;
  const listed = /The keys outrun honours: ([^.]*)\./.exec(files.replace(/\n/g, ' '))![1]!;
  const named = listed
    .replace(/\([^)]*\)/g, '')
    .split(',')
    .map((k) => k.trim().toLowerCase())
    .filter((k) => !['host', 'match', 'include', 'ignoreunknown'].includes(k))
    .sort();
  const honoured = Object.keys(SSH_CONFIG_KEYWORDS).filter((k) => SSH_CONFIG_KEYWORDS[k]!.use === 'honoured').sort();
  assert.deepEqual(named, honoured);
});
