// The data path, differentially: real tools (cp, cat, dd, tar, gzip, rsync, Python,
// sqlite3, git) run once locally and once through outrun, in sibling directories on the same
// random inputs, at every size the design has a bound at; exit statuses, outputs and the
// resulting trees must be the same. Copying a file inside the mount once stalled the
// connection (issue 9) and nothing caught it: the other suites copy nothing bigger than 3 MiB.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ROOT, waitBoxClean } from './harness';
import { Case, DifferentialRun, assertSameCase, manifest, runDifferential, treeDifferences } from './differential';
import { SIZES, makeInputs } from './data-path-inputs';

const FIXTURES = path.join(ROOT, 'test/e2e/fixtures');
const ALL = SIZES.map(([name]) => name).join(' ');

/** Before every case: the sized inputs' names, and `fail`, which records a failed step. */
const PRELUDE = `S="${ALL}"
failed=0
fail() { s=$?; echo "FAILED($s): $*"; failed=1; }
`;
const sh = (body: string) => `${PRELUDE}${body}\nexit $failed\n`;

let work: string;
let env: NodeJS.ProcessEnv;

before(() => {
  work = mkdtempSync(path.join(tmpdir(), 'outrun-data-path-'));
  chmodSync(work, 0o755);
  const input = path.join(work, 'input');
  mkdirSync(input);
  makeInputs(input);
  // The archive tar x unpacks on both sides, made here once.
  const tar = spawnSync('tar', ['cf', path.join(input, 'tree.tar'), '-C', input, 'tree'], { encoding: 'utf8' });
  assert.equal(tar.status, 0, tar.stderr);
  // The same environment both ways; git's dates and names fixed so that commit ids match.
  const who = { NAME: 'Data Path', EMAIL: 'data-path@outrun.test', DATE: '2020-02-02T02:02:02Z' };
  env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LC_ALL: 'C',
    TZ: 'UTC',
    IN: input,
    FIXTURES,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    ...Object.fromEntries(['AUTHOR', 'COMMITTER'].flatMap((role) => Object.entries(who).map(([k, v]) => [`GIT_${role}_${k}`, v]))),
  };
});

after(() => rmSync(work, { recursive: true, force: true }));

/**
 * One group of cases: one local run and one outrun session for all of them, then one test
 * per case (so a failure names its case) and one that the session ended cleanly.
 */
function group(name: string, cases: Case[], timeoutMs: number, more?: (run: () => DifferentialRun) => void) {
  describe(name, { timeout: timeoutMs + 120_000 }, () => {
    let run: DifferentialRun;
    before(async () => {
      const base = path.join(work, name);
      mkdirSync(base);
      run = await runDifferential(base, cases, env, timeoutMs);
    });
    // Each group's trees go once it is checked: together they would fill many GiB.
    after(() => rmSync(path.join(work, name), { recursive: true, force: true }));

    test('the local run and the outrun session ended well', async () => {
      assert.equal(run.localDriver.status, 0, run.localDriver.stderr);
      assert.equal(run.session.signal, null, 'outrun was not killed (timeout)');
      assert.equal(run.session.status, 0, run.session.stderr);
      assert.equal(run.session.stderr, '');
      assert.equal(await waitBoxClean(), '');
    });
    for (const c of cases)
      test(c.name, (t) => {
        t.diagnostic(`${run.local.get(c.name)?.ms} ms locally, ${run.remote.get(c.name)?.ms} ms through outrun`);
        return assertSameCase(run, c);
      });
    more?.(() => run);
  });
}

const forEachSize = (command: string) => `for f in $S; do ${command} || fail ${JSON.stringify(command)} "$f"; done`;

group(
  'copies of every size',
  [
    // Reading back what was just written, too (a few sizes: it costs).
    { name: 'cp', script: sh(`${forEachSize('cp "$IN/sized/$f" "$f"')}\nsha256sum 4095B 128K+1 4M+1 8M+1 64M+1 || fail sha256sum`) },
    { name: 'cat-redirect', script: sh(forEachSize('cat "$IN/sized/$f" > "$f"')) },
    // status=noxfer: the record counts (a short read would show) but no timing.
    { name: 'dd-4KiB', script: sh(forEachSize('dd if="$IN/sized/$f" of="$f" bs=4k status=noxfer')) },
    { name: 'dd-1MiB', script: sh(forEachSize('dd if="$IN/sized/$f" of="$f" bs=1M status=noxfer')) },
    { name: 'cat-through-pipe', script: sh(forEachSize('cat "$IN/sized/$f" | cat > "$f"')) },
    {
      name: 'python-shutil-copyfile',
      script: sh(`python3 -c '
import os, shutil, sys
for f in sys.argv[1:]:
    shutil.copyfile(os.environ["IN"] + "/sized/" + f, f)
    shutil.copymode(os.environ["IN"] + "/sized/" + f, f)
' $S || fail copyfile`),
    },
    {
      name: 'python-copy-file-range',
      script: sh(`python3 -c '
import os, sys
for f in sys.argv[1:]:
    src = os.open(os.environ["IN"] + "/sized/" + f, os.O_RDONLY)
    dst = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    copied = 0
    while True:
        n = os.copy_file_range(src, dst, 8 << 20)
        if n == 0:
            break
        copied += n
    print(f, copied)
    os.close(src)
    os.close(dst)
' $S || fail copy_file_range`),
    },
  ],
  20 * 60_000,
);

// The writer makes its bytes itself (no reads), so that reads and writes run at full speed at
// once, in both directions of the connection: what deadlocked in issue 9.
const WRITER = `python3 -c '
import random, sys
r = random.Random(int(sys.argv[2]))
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[3])):
        f.write(r.randbytes(1 << 20))
'`;

group(
  'copies at the same time',
  [
    {
      name: 'one-reads-while-another-writes',
      script: sh(`sha256sum "$IN/sized/100M" > read.sum & r=$!
${WRITER} written 7 100 & w=$!
wait $r || fail reader
wait $w || fail writer`),
    },
    {
      name: 'two-copies-at-once',
      script: sh(`cp "$IN/sized/64M+1" a & a=$!
cp "$IN/sized/64M-1" b & b=$!
wait $a || fail cp a
wait $b || fail cp b
cmp a "$IN/sized/64M+1" || fail cmp a
cmp b "$IN/sized/64M-1" || fail cmp b`),
    },
    {
      name: 'four-copies-at-once',
      script: sh(`for f in 64M 16M+1 8M+1 4M-1; do (cp "$IN/sized/$f" "$f" || fail cp "$f") & done
wait
sha256sum 64M 16M+1 8M+1 4M-1 || fail sha256sum`),
    },
    {
      name: 'four-copies-of-one-file-at-once',
      script: sh(`for i in 1 2 3 4; do (dd if="$IN/sized/64M+1" of=copy-$i bs=1M status=none || fail dd $i) & done
wait
sha256sum copy-1 copy-2 copy-3 copy-4 || fail sha256sum`),
    },
    {
      name: 'copy-inside-the-mount-while-writing',
      script: sh(`cp "$IN/sized/64M" first || fail cp first
cp first second & c=$!
${WRITER} written 11 64 & w=$!
cat "$IN/sized/100M" > third & t=$!
wait $c || fail cp second
wait $w || fail writer
wait $t || fail cat third`),
    },
  ],
  15 * 60_000,
);

// Offsets past 2^31 and 2^32 (32-bit truncation anywhere on the way would show). Only the
// 2 GiB file is read whole; the 4 GiB one is read and written in parts.
const PREAD = `python3 -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for off in sys.argv[2:]:
    print(off, os.pread(fd, 16, int(off)).hex())
'`;

group(
  'sparse files past 2 GiB and 4 GiB',
  [
    {
      name: 'cp-sparse-past-2GiB',
      script: sh(`cp "$IN/sparse-2G" copy || fail cp
for skip in 0 16383 16384 32767 32768 32769 32770; do dd if=copy bs=64k skip=$skip count=2 status=none | sha256sum || fail dd $skip; done
${PREAD} copy 2147483640 2147614705 2147614720 2147614721 || fail pread`),
    },
    {
      name: 'reads-across-2GiB-and-4GiB',
      script: sh(`for skip in 32767 32768 65535 65536; do dd if="$IN/sparse-4G" bs=64k skip=$skip count=2 status=noxfer | sha256sum || fail dd $skip; done
tail -c 70000 "$IN/sparse-4G" | sha256sum || fail tail
${PREAD} "$IN/sparse-4G" 2147483640 4294967288 4294971377 4294971393 4294971500 || fail pread
stat -c %s "$IN/sparse-4G"`),
    },
    {
      name: 'writes-across-2GiB-and-4GiB',
      script: sh(`truncate -s 4294971393 big || fail truncate
dd if="$IN/sized/128K+1" of=big bs=4k seek=524280 conv=notrunc status=noxfer || fail dd 2G
dd if="$IN/sized/128K+1" of=big bs=4k seek=1048568 conv=notrunc status=noxfer || fail dd 4G
python3 -c '
import os
fd = os.open("big", os.O_RDWR)
for off in (2**31 - 3, 2**32 - 3, 2**32 + 4097 + 10):
    os.pwrite(fd, b"across %d" % off, off)
os.close(fd)
' || fail pwrite
${PREAD} big 2147483645 4294967293 4294971390 4294971400 || fail pread
cp "$IN/sized/8M+1" shrunk && truncate -s 3G shrunk && truncate -s 5000 shrunk || fail truncate shrunk`),
    },
  ],
  15 * 60_000,
);

group(
  'archives and synchronisation',
  [
    {
      // The same input directory both ways (listing order, hard link, owners): identical archives.
      name: 'tar-c',
      script: sh(`tar cf tree.tar -C "$IN" tree || fail tar cf
tar czf tree.tgz -C "$IN" tree || fail tar czf
tar tvf tree.tar | sha256sum || fail tar tvf
sha256sum tree.tar tree.tgz`),
    },
    { name: 'tar-x', script: sh(`tar xf "$IN/tree.tar" || fail tar xf\nmkdir piped && cd piped && cat "$IN/tree.tar" | tar xf - || fail tar x from a pipe`) },
    {
      name: 'gzip-gunzip',
      script: sh(`for f in 0B 1B 4095B 128K+1 4M+1 64M+1; do
  gzip -c "$IN/sized/$f" > "$f.gz" || fail gzip "$f"
  gunzip -c "$f.gz" > "$f" || fail gunzip "$f"
  cmp "$f" "$IN/sized/$f" || fail cmp "$f"
done
cat "$IN/sized/100M" | gzip -1 | gunzip | cmp - "$IN/sized/100M" || fail gzip pipe`),
    },
    {
      // In place, gzip gives the .gz the original's times and mode, gunzip the .gz's.
      name: 'gzip-in-place',
      mtimes: true,
      script: sh(`for f in 4095B 4M+1 16M+1; do
  cp "$IN/sized/$f" "$f" && touch -d @1500000000 "$f" || fail cp "$f"
  gzip "$f" || fail gzip "$f"
  cp "$IN/sized/$f" "n-$f" && touch -d @1600000000 "n-$f" || fail cp "n-$f"
  gzip -n "n-$f" && gunzip "n-$f.gz" || fail gzip -n "$f"
done
gunzip 4M+1.gz || fail gunzip`),
    },
    {
      name: 'rsync-a',
      mtimes: true,
      script: sh(`rsync -aHi "$IN/tree/" tree/ || fail rsync tree
some=$(for f in 0B 1B 4095B 128K+1 4M+1 16M+1 64M+1; do echo --include="$f"; done)
rsync -ai $some --exclude='*' "$IN/sized/" sized/ || fail rsync sized
echo second run:
rsync -aHi "$IN/tree/" tree/ || fail rsync tree again`),
    },
    { name: 'cp-a', mtimes: true, script: sh(`cp -a "$IN/tree" tree || fail cp -a`) },
  ],
  15 * 60_000,
  (run) =>
    // tar x sets mtimes with utimensat(atime UTIME_OMIT): the README's utimens_only_mtime limit.
    test('known difference: tar x cannot restore mtimes (libfuse 2.9 drops a utimensat that omits atime)', async () => {
      const [l, r] = await Promise.all(['local', 'remote'].map((side) => manifest(path.join(run().base, side, 'tar-x'), { mtimes: true })));
      const diffs = treeDifferences(l, r);
      assert.ok(diffs.length > 0, 'tar x restores mtimes now: give the tar-x case mtimes: true and drop this test');
      assert.deepEqual(
        diffs.filter((d) => !/^[^:]+: mtime \d+ locally, \d+ through outrun$/.test(d)),
        [],
        'only mtimes differ',
      );
    }),
);

const SQL = `CREATE TABLE src(b BLOB);
INSERT INTO src VALUES (readfile('$IN/sized/64K+1'));
CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v BLOB);
BEGIN;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000)
  INSERT INTO t SELECT x, printf('k%06d', (x * 7919) % 30011), substr((SELECT b FROM src), 1 + (x * 131) % 60000, 1 + (x * 17) % 2000) FROM c;
COMMIT;
INSERT INTO t(k, v) SELECT 'big' || value, substr(readfile('$IN/sized/4M+1'), 1 + value * 1000, 1000000 + value) FROM generate_series(1, 2);
BEGIN;
UPDATE t SET v = substr(v, 2) || x'00' WHERE id % 7 = 0;
DELETE FROM t WHERE id % 5 = 0;
COMMIT;
BEGIN;
DELETE FROM t;
ROLLBACK;
CREATE INDEX tk ON t(k);
SELECT count(*), sum(length(v)) FROM t;
SELECT hex(sha3_query('SELECT * FROM t ORDER BY id'));
PRAGMA integrity_check;
DELETE FROM t WHERE id % 3 = 0;
VACUUM;
PRAGMA integrity_check;
PRAGMA journal_mode = WAL;
BEGIN;
INSERT INTO t(k, v) SELECT 'wal' || value, substr((SELECT b FROM src), value, 3000) FROM generate_series(1, 1000);
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
PRAGMA journal_mode = DELETE;
PRAGMA integrity_check;
SELECT count(*), sum(length(v)), hex(sha3_query('SELECT * FROM t ORDER BY id')) FROM t;
`;

// About 430 files in three commits (a part of the input tree, then 200 small new ones),
// gc, and a clone through git's pack protocol (upload-pack, pack-objects, index-pack).
const GIT = `git init -q -b main repo || fail init
git -C repo config pack.threads 1
for d in dir-0 dir-1 dir-8; do cp -R "$IN/tree/$d" repo/ || fail cp "$d"; done
cd repo
git add -A && git commit -q -m 'part of the tree' || fail first commit
find . -path ./.git -prune -o -type f -name '*.txt' -print | sort | sed -n '1~4p' | while IFS= read -r f; do echo changed >> "$f"; done
git rm -q -r -f dir-1/dir-5 && git mv dir-0/dir-6 moved-6 && git commit -q -am 'changes, a removal, a move' || fail second commit
for i in $(seq 1 200); do echo "new file $i" > "new-$i.txt"; done
git add -A && git commit -q -m 'two hundred new files' || fail third commit
git gc -q || fail gc
git rev-parse HEAD HEAD~1 HEAD~2
git status --porcelain
git fsck --full --no-progress || fail fsck
git count-objects -v
git cat-file --batch-all-objects --batch-check | sha256sum
git log --stat --format='%H %s' | sha256sum
echo changed again >> new-1.txt && rm new-2.txt && git status --porcelain
git checkout -q -- . && git status --porcelain
cd ..
git clone -q --no-local repo clone || fail clone
git -C clone rev-parse HEAD
git -C clone status --porcelain
git -C clone fsck --full --no-progress || fail fsck clone
git -C clone count-objects -v
git -C clone cat-file --batch-all-objects --batch-check | sha256sum`;

group(
  'programs',
  [
    {
      name: 'sqlite3',
      script: sh(`sqlite3 db.sqlite <<EOF || fail sqlite3
${SQL}EOF
sqlite3 db.sqlite 'PRAGMA quick_check' .dump | sha256sum || fail dump`),
    },
    // .git itself is compared through git's own views (objects, fsck, status): its index and
    // logs hold inode numbers and times, which differ between any two runs.
    { name: 'git', ignore: /(^|\/)\.git(\/|$)/, script: sh(GIT) },
    { name: 'mmap-writes', script: sh(`python3 "$FIXTURES/data-path-mmap.py" || fail mmap`) },
    {
      // The log's line order depends on scheduling: it is compared through the check instead.
      name: 'o-append-from-four-processes',
      ignore: /^log/,
      script: sh(`for p in 0 1 2 3; do (python3 "$FIXTURES/data-path-append.py" write $p log || fail append $p) & done
wait
python3 "$FIXTURES/data-path-append.py" check 4 log || fail check
for p in 0 1 2 3; do (python3 "$FIXTURES/data-path-append.py" reopen $p log-reopened || fail append $p) & done
wait
python3 "$FIXTURES/data-path-append.py" check 4 log-reopened || fail check`),
    },
  ],
  15 * 60_000,
);
