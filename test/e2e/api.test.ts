// End to end: the library API (the package's main export) against the box. It runs a command,
// pipes its streams (random bytes through stdin to stdout, compared), passes streams of the
// caller's, tells the command's own 255 from outrun's failure (which rejects with its code and
// exit status), aborts a run (the remote command ends, nothing is left), bounds one with a
// timeout, and never ends the caller's process.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import * as path from 'node:path';
import { ROOT, SSH_CONFIG, boxShell, waitBoxClean } from './harness';
import { OutrunRunError, run } from '../../src/index';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const base = { configFile: SSH_CONFIG, cwd: ROOT };

describe('the library API: run(options)', { timeout: 300_000 }, () => {
  test('a command\'s status, output and error output, piped; its own 255 is its own', async () => {
    const r = await run({ ...base, destination: 'box', argv: ['sh', '-c', 'echo out; echo err >&2; exit 7'], stdout: 'pipe', stderr: 'pipe' });
    assert.deepEqual({ ...r, stdout: r.stdout?.toString(), stderr: r.stderr?.toString() }, {
      status: 7, signal: null, host: 'box', timedOut: false, aborted: false, stdout: 'out\n', stderr: 'err\n',
    });
    const own = await run({ ...base, destination: 'box', argv: ['sh', '-c', 'exit 255'] });
    assert.equal(own.status, 255);
  });

  test('stdin: bytes, a stream of the caller\'s, or a pipe; stdout into a stream of the caller\'s', async () => {
    const data = randomBytes((1 << 20) + 4097);
    const a = await run({ ...base, destination: 'box', argv: ['cat'], stdin: data, stdout: 'pipe' });
    assert.equal(a.status, 0);
    assert.equal(sha256(a.stdout!), sha256(data));
    const sink = new PassThrough();
    const got: Buffer[] = [];
    sink.on('data', (b: Buffer) => got.push(b));
    const b = await run({ ...base, destination: 'box', argv: ['cat'], stdin: Readable.from([data.subarray(0, 100_000), data.subarray(100_000)]), stdout: sink });
    assert.equal(b.status, 0);
    assert.equal(sha256(Buffer.concat(got)), sha256(data));
    const h = run({ ...base, destination: 'box', argv: ['wc', '-c'], stdin: 'pipe', stdout: 'pipe' });
    h.stdin!.end(data.subarray(0, 12345));
    assert.equal((await h).stdout!.toString().trim(), '12345');
  });

  test('outrun\'s own failure rejects with its code and exit status', async () => {
    await assert.rejects(run({ ...base, destination: 'box', argv: ['true'], options: ['--kernel-cache', 'x'], stderr: 'pipe' }), (e: unknown) => {
      assert.ok(e instanceof OutrunRunError);
      assert.equal(e.code, 'USAGE');
      assert.equal(e.exitStatus, 2);
      assert.match(e.message, /^--kernel-cache 'x' is not a number of seconds/);
      return true;
    });
    await assert.rejects(run({ ...base, destination: 'outrun-no-such-host.invalid', argv: ['true'], stderr: 'pipe' }), (e: unknown) => {
      assert.ok(e instanceof OutrunRunError);
      assert.equal(e.exitStatus, 255);
      assert.match(e.code, /^SSH_/);
      return true;
    });
    assert.throws(() => run({ ...base, destination: 'box', argv: [] }), TypeError);
  });

  test('abort ends the remote command (SIGTERM) and leaves nothing behind', async () => {
    const ac = new AbortController();
    // A sleep of its own length; the pattern does not match the shell that runs pgrep.
    const secs = `299.${randomBytes(3).readUIntBE(0, 3)}`;
    const seen = () => boxShell(`pgrep -f '^[s]leep ${secs}$' || true`).trim();
    const h = run({ ...base, destination: 'box', argv: ['sh', '-c', `echo started; exec sleep ${secs}`], signal: ac.signal, stdout: 'pipe' });
    // Abort once the command runs on the box.
    for (let i = 0; i < 200 && !seen(); i++) await new Promise((r) => setTimeout(r, 100));
    assert.notEqual(seen(), '', 'the command started on the box');
    ac.abort();
    const r = await h;
    assert.equal(r.aborted, true);
    assert.equal(r.status, 143);
    assert.equal(r.signal, 'SIGTERM');
    assert.equal(r.stdout!.toString(), 'started\n');
    assert.equal(seen(), '');
    assert.equal(await waitBoxClean(), '');
  });

  test('timeout: 124 and timedOut, as --timeout', async () => {
    const r = await run({ ...base, destination: 'box', argv: ['sleep', '60'], timeout: 5000, killAfter: 1000 });
    assert.equal(r.status, 124);
    assert.equal(r.timedOut, true);
    assert.equal(await waitBoxClean(), '');
  });
});

test('the package exports run and its types from its main entry', () => {
  const pkg = require(path.join(ROOT, 'package.json')) as { main: string; types: string };
  const main = require(path.join(ROOT, pkg.main)) as { run: unknown; OutrunRunError: unknown };
  assert.equal(typeof main.run, 'function');
  assert.equal(typeof main.OutrunRunError, 'function');
  assert.match(require('node:fs').readFileSync(path.join(ROOT, pkg.types), 'utf8'), /export \{ run, OutrunRunError/);
});
