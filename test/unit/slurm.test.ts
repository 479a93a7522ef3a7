// slurm:// destinations and -o SlurmOptions/SlurmJob on the command line; the step wrapper
// and SlurmOptions' word splitting (no shell ever sees the user's words unquoted).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseArgs, parseDestination } from '../../src/client/cli-args';
import { splitWords, stepCommand } from '../../src/client/slurm';

test('slurm:// destinations: login, user, port, partition', () => {
  assert.deepEqual(parseDestination('slurm://login'), { host: 'login', slurm: {} });
  assert.deepEqual(parseDestination('slurm://me@login/gpu'), { user: 'me', host: 'login', slurm: { partition: 'gpu' } });
  assert.deepEqual(parseDestination('slurm://login:2222/debug/'), { host: 'login', port: 2222, slurm: { partition: 'debug' } });
  assert.deepEqual(parseDestination('slurm://[::1]:22/p'), { host: '::1', port: 22, slurm: { partition: 'p' } });
  assert.throws(() => parseDestination('slurm://login/a b'), /bad partition/);
  assert.throws(() => parseDestination('slurm:///p'), /bad destination/);
});

test('-o SlurmOptions and -o SlurmJob are outrun\'s own', () => {
  const p = parseArgs(['-o', 'SlurmOptions=--time=10 --account=x', '-o', 'SlurmJob=42', 'slurm://login', 'true']);
  assert.equal(p.action, 'run');
  assert.equal(p.options.slurmOptions, '--time=10 --account=x');
  assert.equal(p.options.slurmJob, '42');
  assert.equal(p.options.sshOptions.slurmoptions, undefined);
  assert.throws(() => parseArgs(['-o', 'SlurmJob=4;2', 'slurm://login', 'true']), /bad -o SlurmJob/);
});

test('SlurmOptions are split as a shell splits words, nothing expanded', () => {
  assert.deepEqual(splitWords(' --time=10  --comment="a b" \'$(x)\' c\\ d "q\\"" '), ['--time=10', '--comment=a b', '$(x)', 'c d', 'q"']);
  assert.deepEqual(splitWords(''), []);
  assert.throws(() => splitWords('"open'), /unterminated/);
});

test('the step wrapper quotes the command as one word', () => {
  assert.equal(
    stepCommand('7', 'node1')("/x/outrun-helper exec '/h/s 1'"),
    `srun '--jobid=7' -w node1 -N1 -n1 --overlap -u --quiet --quiet /bin/sh -c '/x/outrun-helper exec '\\''/h/s 1'\\'''`,
  );
});
