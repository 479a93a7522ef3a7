import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { shellQuote, shellQuoteArg } from '../../src/client/shell-quote';

/** Have a real POSIX shell split the quoted line and print each word NUL-terminated. */
function roundTrip(args: string[]): string[] {
  const line = `printf '%s\\0' ${shellQuote(args)}`;
  const r = spawnSync('/bin/sh', ['-c', line], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = r.stdout.split('\0');
  out.pop();
  return out;
}

test('plain words stay unquoted', () => {
  assert.equal(shellQuote(['/var/cache/outrun/runtime/abc/node', '--library-path', 'a.b,c:d@e%f+g-h_i']),
    '/var/cache/outrun/runtime/abc/node --library-path a.b,c:d@e%f+g-h_i');
});

test('empty string becomes an empty quoted word', () => {
  assert.equal(shellQuoteArg(''), "''");
  assert.deepEqual(roundTrip(['', 'x', '']), ['', 'x', '']);
});

test('single quotes are escaped', () => {
  assert.equal(shellQuoteArg("it's"), `'it'\\''s'`);
  assert.deepEqual(roundTrip(["it's", "'", "''", "a'b'c"]), ["it's", "'", "''", "a'b'c"]);
});

test('assignments, tilde and comments are quoted', () => {
  assert.equal(shellQuoteArg('A=b'), "'A=b'");
  assert.equal(shellQuoteArg('~'), "'~'");
  assert.equal(shellQuoteArg('#x'), "'#x'");
  // An assignment-looking first word must run as a command, not set a variable.
  const r = spawnSync('/bin/sh', ['-c', `${shellQuote(['A=b'])} 2>/dev/null; echo $?`], { encoding: 'utf8' });
  assert.equal(r.stdout.trim(), '127');
});

test('shell metacharacters survive a real shell unchanged', () => {
  const nasty = [
    '$HOME', '`id`', '$(id)', '"', '\\', '\\\\n', 'a b', ' ', '\t', '\n', 'line1\nline2', '*', '?', '[a]',
    '{a,b}', ';', '&', '|', '<', '>', '!', '!!', '#', '~root', 'x~', '%', '^', '-e', '--', 'é ü 日本',
    "mixed 'single' and \"double\" $VAR `cmd`",
  ];
  assert.deepEqual(roundTrip(nasty), nasty);
});

test('every ASCII character 1..127 survives', () => {
  let all = '';
  for (let i = 1; i < 128; i++) all += String.fromCharCode(i);
  assert.deepEqual(roundTrip([all]), [all]);
});

test('NUL cannot be passed', () => {
  assert.throws(() => shellQuoteArg('a\0b'), /NUL/);
});
