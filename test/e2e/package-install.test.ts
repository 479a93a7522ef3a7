// End to end: the package as a user gets it. `npm pack` the checkout (built by npm test), install
// the tarball into a temporary global prefix with npm's own lifecycle scripts, then use what it
// installed: the outrun command (with the runtime its postinstall assembled) against the test
// box, the man page through man(1), the bash completion through bash-completion's loader.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ROOT, SSH_CONFIG } from './harness';

interface PackResult {
  filename: string;
  size: number;
  files: { path: string }[];
}

// The outer `npm test` leaves npm_config_* settings in the environment: not for this npm.
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));

describe('the packed package, installed', { timeout: 300_000 }, () => {
  let dir: string;
  let prefix: string;
  let packed: PackResult;
  const outrunBin = () => path.join(prefix, 'bin/outrun');

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'outrun-package-'));
    prefix = path.join(dir, 'prefix');
    // dist is built already (npm test builds first): pack it as it is.
    const pack = spawnSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
      cwd: ROOT,
      encoding: 'utf8',
      env: cleanEnv,
    });
    assert.equal(pack.status, 0, pack.stderr);
    packed = (JSON.parse(pack.stdout) as PackResult[])[0]!;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('the tarball holds the command, the agent bundle, the helper, the addons, the page and the completion, and no tests', () => {
    const files = packed.files.map((f) => f.path).sort();
    for (const needed of [
      'dist/src/client/cli.js',
      'dist/runtime/agent.js',
      'dist/runtime-helper/outrun-helper',
      'dist/runtime-addon/fuse-kernel.node',
      'dist/local-addon/local-fs.node',
      'man/outrun.1',
      'completion/outrun.bash',
      'scripts/postinstall.mjs',
      'package.json',
      'README.md',
      // The library API and its types (the package's main and types).
      'dist/src/index.js',
      'dist/src/client/api/run.js',
      'dist/types/index.d.ts',
      'scripts/runtime-targets.mjs',
    ])
      assert.ok(files.includes(needed), `${needed} missing from ${files.join(' ')}`);
    // No tests, sources or maps (declarations are the API's types).
    assert.deepEqual(files.filter((f) => /(^|\/)test\/|\.test\.|^src\/|(?<!\.d)\.ts$|\.map$/.test(f)), []);
    // README states the size: keep it true (within 15 %).
    const stated = /packed tarball is about ([0-9.]+) MB/.exec(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
    assert.ok(stated, 'README states no tarball size ("packed tarball is about N MB")');
    const mb = packed.size / 1e6;
    assert.ok(Math.abs(mb - Number(stated[1])) / Number(stated[1]) < 0.15, `tarball ${mb.toFixed(2)} MB, README says ${stated[1]} MB`);
  });

  test('npm install -g puts outrun on the PATH, with the runtime its postinstall assembled', () => {
    const install = spawnSync(
      'npm',
      ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', path.join(dir, packed.filename)],
      { encoding: 'utf8', env: cleanEnv, timeout: 240_000 },
    );
    assert.equal(install.status, 0, install.stderr);
    const version = spawnSync(outrunBin(), ['--version'], { encoding: 'utf8' });
    assert.equal(version.stdout, `outrun ${JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version}\n`);
    assert.equal(version.status, 0);
    // The same content as the checkout's own runtime: the same id, so no second upload.
    const id = (root: string) => JSON.parse(readFileSync(path.join(root, 'dist/runtime/manifest.json'), 'utf8')).id;
    assert.equal(id(path.join(prefix, 'lib/node_modules/outrun')), id(ROOT));
  });

  test('the installed outrun runs a command on the box', () => {
    const r = spawnSync(outrunBin(), ['-F', SSH_CONFIG, 'box', 'sh', '-c', 'echo "on $(hostname)"; exit 3'], {
      encoding: 'utf8',
      cwd: dir,
      timeout: 120_000,
    });
    assert.equal(r.stdout, 'on outrun-box\n', r.stderr);
    assert.equal(r.status, 3);
    const t = spawnSync(outrunBin(), ['-F', SSH_CONFIG, 'box', 'true'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(t.status, 0, t.stderr);
  });

  test('the installed package\'s main export is the library API, and it runs a command on the box', () => {
    const main = path.join(prefix, 'lib/node_modules/outrun');
    const script = `require(${JSON.stringify(main)}).run({ destination: 'box', argv: ['sh', '-c', 'echo api; exit 5'], configFile: ${JSON.stringify(SSH_CONFIG)}, stdout: 'pipe' })
      .then((r) => console.log(JSON.stringify({ status: r.status, host: r.host, out: r.stdout.toString() })), (e) => { console.error(e); process.exit(9); });`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: dir, timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { status: 5, host: 'box', out: 'api\n' });
  });

  test('man finds the installed page', () => {
    const page = path.join(prefix, 'share/man/man1/outrun.1');
    const r = spawnSync('man', ['-l', page], { encoding: 'utf8', env: { ...cleanEnv, MANWIDTH: '100', MANPAGER: 'cat', PAGER: 'cat' } });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^OUTRUN\(1\) +User Commands +OUTRUN\(1\)$/m);
    assert.match(r.stdout, /outrun - run a local command on a remote Linux machine as if it ran locally/);
    assert.match(r.stdout, /--cache-size size/);
    // And by name, through MANPATH, as a user types it.
    const byName = spawnSync('man', ['-w', 'outrun'], { encoding: 'utf8', env: { ...cleanEnv, MANPATH: path.join(prefix, 'share/man') } });
    assert.equal(realpathSync(byName.stdout.trim()), realpathSync(page));
  });

  test("bash-completion's loader finds the installed completion under the prefix", () => {
    const script = `
      source /usr/share/bash-completion/bash_completion
      XDG_DATA_DIRS="$1/share"
      __load_completion outrun || exit 9
      complete -p outrun
      COMP_WORDS=(outrun --no-ca); COMP_CWORD=1
      _outrun; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script, 'bash', prefix], { encoding: 'utf8', env: cleanEnv });
    assert.equal(r.status, 0, `bash-completion did not load it (${r.status}): ${r.stderr}`);
    assert.equal(r.stdout, 'complete -F _outrun outrun\n--no-cache\n');
  });
});
