// End to end: close-to-open consistency across the runs of one master. Local edits made
// between runs (content of the same and of another size, mode, mtime, names made, removed
// and renamed), in a tree the remote keeps in its persistent cache and in one it does not,
// are seen by the next run at once: the view through outrun is compared with the local one
// after every edit (differential), with caches warmed by the run before.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { SSH_CONFIG, outrun, waitBoxClean } from './harness';

// What a run sees of a directory: names, types, sizes, modes, mtimes, contents, and a lookup
// of a name that may or may not exist.
const VIEW = [
  'for d in cached plain; do',
  '  echo "== $d"; ls -A "$d"',
  '  for f in "$d"/*; do [ -f "$f" ] && { stat -c "%n %F %s %a %Y" "$f"; cat "$f"; }; done',
  '  [ -e "$d/later" ] && echo "$d/later exists" || echo "$d/later absent"',
  'done',
].join('\n');

test('edits between runs through one master are seen by the next run, in and out of the cached trees', { timeout: 180_000 }, async () => {
  const base = mkdtempSync(path.join(tmpdir(), 'outrun-consistency-'));
  const sockDir = mkdtempSync(path.join(tmpdir(), 'outrun-master-'));
  chmodSync(sockDir, 0o700);
  const sock = path.join(sockDir, 'm.sock');
  const cached = path.join(base, 'cached');
  const plain = path.join(base, 'plain');
  const both = (fn: (dir: string) => void) => [cached, plain].forEach(fn);
  const args = ['-F', SSH_CONFIG, '-S', sock, '-o', 'ControlPersist=60', `--cache-paths=${cached}`, 'box', 'sh', '-c', VIEW];
  const check = async (step: string) => {
    const local = spawnSync('sh', ['-c', VIEW], { cwd: base });
    const remote = await outrun(args, { cwd: base });
    assert.equal(remote.status, 0, `${step}: ${remote.stderr}`);
    assert.equal(remote.stdout.toString(), local.stdout.toString(), `${step}: the run sees what is local`);
  };
  try {
    both((d) => {
      mkdirSync(d);
      writeFileSync(path.join(d, 'a'), 'first\n');
      writeFileSync(path.join(d, 'b'), 'bee\n');
    });
    await check('start');
    await check('unchanged, caches warm');
    both((d) => writeFileSync(path.join(d, 'a'), 'FIRST\n')); // same size, new content
    await check('same-size rewrite');
    both((d) => writeFileSync(path.join(d, 'a'), 'a longer content now\n'));
    await check('size change');
    both((d) => chmodSync(path.join(d, 'b'), 0o600));
    await check('mode change');
    both((d) => utimesSync(path.join(d, 'b'), 1_000_000, 1_000_000));
    await check('mtime change');
    both((d) => writeFileSync(path.join(d, 'later'), 'made between runs\n'));
    await check('a name that was absent is made');
    both((d) => unlinkSync(path.join(d, 'b')));
    await check('a name is removed');
    both((d) => renameSync(path.join(d, 'later'), path.join(d, 'b')));
    await check('a rename over the removed name');
    const exit = await outrun(['-F', SSH_CONFIG, '-S', sock, '-O', 'exit', 'box']);
    assert.equal(exit.status, 0, exit.stderr);
    assert.equal(await waitBoxClean(), '');
  } finally {
    await outrun(['-F', SSH_CONFIG, '-S', sock, '-O', 'exit', 'box']);
    rmSync(base, { recursive: true, force: true });
    rmSync(sockDir, { recursive: true, force: true });
  }
});
