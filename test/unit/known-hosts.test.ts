import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  appendKnownHost,
  checkHostKey,
  fingerprintSha256,
  hashHostName,
  hostPortString,
  keyTypeOfBlob,
  knownKeyTypes,
  parseKnownHostsLine,
} from '../../src/client/known-hosts';

let tmp: string;
/** Public key lines (`type base64`) and blobs made by ssh-keygen. */
const keys: Record<string, { line: string; blob: Buffer; fp: string }> = {};

function keygen(name: string, type: string): void {
  const file = path.join(tmp, name);
  const r = spawnSync('ssh-keygen', ['-q', '-t', type, '-N', '', '-C', '', '-f', file]);
  assert.equal(r.status, 0, String(r.stderr));
  const line = fs.readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  const fp = spawnSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], { encoding: 'utf8' }).stdout.split(' ')[1];
  keys[name] = { line, blob: Buffer.from(line.split(' ')[1], 'base64'), fp };
}

before(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-known-hosts-'));
  keygen('ed1', 'ed25519');
  keygen('ed2', 'ed25519');
  keygen('ec1', 'ecdsa');
  keygen('rsa1', 'rsa');
});
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function kh(name: string, text: string): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
}

describe('blobs', () => {
  test('key type from the blob, fingerprint as ssh-keygen prints it', () => {
    assert.equal(keyTypeOfBlob(keys.ed1.blob), 'ssh-ed25519');
    assert.equal(keyTypeOfBlob(keys.ec1.blob), 'ecdsa-sha2-nistp256');
    assert.equal(keyTypeOfBlob(keys.rsa1.blob), 'ssh-rsa');
    assert.equal(fingerprintSha256(keys.ed1.blob), keys.ed1.fp);
    assert.throws(() => keyTypeOfBlob(Buffer.from([0, 0, 0, 9, 1])));
  });

  test('host names: port 22 plain, others [host]:port, lower-cased', () => {
    assert.equal(hostPortString('Box', 22), 'box');
    assert.equal(hostPortString('box', 2222), '[box]:2222');
  });
});

describe('checkHostKey', () => {
  test('plain entry: match, with file and line; other hosts unknown', () => {
    const f = kh('plain', `# comment\n\nother ${keys.ed2.line}\nbox,box.example.org ${keys.ed1.line} comment here\n`);
    assert.deepEqual(checkHostKey([f], 'box', 22, keys.ed1.blob), { status: 'match', matchedFile: f, line: 4, knownKeyTypes: ['ssh-ed25519'] });
    assert.equal(checkHostKey([f], 'BOX.example.org', 22, keys.ed1.blob).status, 'match');
    assert.deepEqual(checkHostKey([f], 'nobody', 22, keys.ed1.blob), { status: 'unknown' });
  });

  test('a non-22 port needs a [host]:port entry', () => {
    const f = kh('ports', `box ${keys.ed1.line}\n[box]:2222 ${keys.ed2.line}\n`);
    assert.equal(checkHostKey([f], 'box', 2222, keys.ed2.blob).status, 'match');
    // box:2222 is a different host for known_hosts: its key is ed2; ed1 there means changed.
    assert.equal(checkHostKey([f], 'box', 2222, keys.ed1.blob).status, 'changed');
    assert.deepEqual(checkHostKey([f], 'box', 2200, keys.ed1.blob), { status: 'unknown' });
  });

  test('wildcards and negation', () => {
    const f = kh('wild', `*.lan,!secret.lan ${keys.ed1.line}\nbox? ${keys.ec1.line}\n[*.lan]:22?? ${keys.ed2.line}\n`);
    assert.equal(checkHostKey([f], 'a.lan', 22, keys.ed1.blob).status, 'match');
    assert.equal(checkHostKey([f], 'secret.lan', 22, keys.ed1.blob).status, 'unknown');
    assert.equal(checkHostKey([f], 'box1', 22, keys.ec1.blob).status, 'match');
    assert.equal(checkHostKey([f], 'box12', 22, keys.ec1.blob).status, 'unknown');
    assert.equal(checkHostKey([f], 'a.lan', 2222, keys.ed2.blob).status, 'match');
  });

  test('changed: a different key of the same type, reported with the offending line', () => {
    const f = kh('changed', `box ${keys.ed1.line}\n`);
    assert.deepEqual(checkHostKey([f], 'box', 22, keys.ed2.blob), {
      status: 'changed',
      matchedFile: f,
      line: 1,
      knownKeyTypes: ['ssh-ed25519'],
    });
  });

  test('changed: only keys of other types known (outrun is stricter than OpenSSH here)', () => {
    const f = kh('othertype', `box ${keys.ec1.line}\nbox ${keys.rsa1.line}\n`);
    const r = checkHostKey([f], 'box', 22, keys.ed1.blob);
    assert.equal(r.status, 'changed');
    assert.deepEqual(r.knownKeyTypes, ['ecdsa-sha2-nistp256', 'ssh-rsa']);
    assert.deepEqual(knownKeyTypes([f], 'box', 22), ['ecdsa-sha2-nistp256', 'ssh-rsa']);
  });

  test('a match in any file wins over a mismatch in another', () => {
    const a = kh('multi-a', `box ${keys.ed2.line}\n`);
    const b = kh('multi-b', `box ${keys.ed1.line}\n`);
    const r = checkHostKey([a, b, path.join(tmp, 'missing')], 'box', 22, keys.ed1.blob);
    assert.equal(r.status, 'match');
    assert.equal(r.matchedFile, b);
  });

  test('@revoked wins; @cert-authority never matches a plain key', () => {
    const f = kh('markers', `box ${keys.ed1.line}\n@revoked * ${keys.ed1.line}\n@cert-authority *.lan ${keys.ed2.line}\n`);
    assert.deepEqual(checkHostKey([f], 'box', 22, keys.ed1.blob), { status: 'revoked', matchedFile: f, line: 2 });
    assert.deepEqual(checkHostKey([f], 'x.lan', 22, keys.ed2.blob), { status: 'unknown' });
    assert.deepEqual(knownKeyTypes([f], 'x.lan', 22), []);
  });

  test('malformed lines are skipped', () => {
    const f = kh('junk', `box\nbox ssh-ed25519\nbox ssh-ed25519 !!!notbase64\nbox ssh-rsa ${keys.ed1.line.split(' ')[1]}\n@weird box ${keys.ed1.line}\nbox ${keys.ed1.line}\n`);
    assert.equal(parseKnownHostsLine('box ssh-rsa ' + keys.ed1.line.split(' ')[1]), null); // type mismatch
    assert.deepEqual(checkHostKey([f], 'box', 22, keys.ed1.blob), { status: 'match', matchedFile: f, line: 6, knownKeyTypes: ['ssh-ed25519'] });
  });
});

describe('hashed entries', () => {
  test('our own HMAC-SHA1 line is found, for port 22 and [host]:port', () => {
    const salt = crypto.randomBytes(20);
    const mac = crypto.createHmac('sha1', salt).update('box').digest();
    const manual = `|1|${salt.toString('base64')}|${mac.toString('base64')}`;
    assert.equal(hashHostName('box', salt), manual);
    const f = kh('hashed', `${manual} ${keys.ed1.line}\n${hashHostName('[box]:2222')} ${keys.ed2.line}\n`);
    assert.equal(checkHostKey([f], 'box', 22, keys.ed1.blob).status, 'match');
    assert.equal(checkHostKey([f], 'box', 2222, keys.ed2.blob).status, 'match');
    assert.equal(checkHostKey([f], 'box', 22, keys.ed2.blob).status, 'changed');
    assert.equal(checkHostKey([f], 'xbox', 22, keys.ed1.blob).status, 'unknown');
  });

  test('lines hashed by the real ssh-keygen -H are found', () => {
    const f = kh('to-hash', `box.example.org ${keys.ed1.line}\n[box.example.org]:2222 ${keys.ec1.line}\n`);
    const r = spawnSync('ssh-keygen', ['-H', '-f', f], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const text = fs.readFileSync(f, 'utf8');
    assert.doesNotMatch(text, /box\.example\.org/);
    assert.match(text, /^\|1\|/);
    assert.equal(checkHostKey([f], 'box.example.org', 22, keys.ed1.blob).status, 'match');
    assert.equal(checkHostKey([f], 'box.example.org', 2222, keys.ec1.blob).status, 'match');
    assert.equal(checkHostKey([f], 'box.example.org', 22, keys.ec1.blob).status, 'changed');
  });
});

describe('appendKnownHost', () => {
  test('creates ~/.ssh 0700 and the file 0600, writes a hashed line we and ssh-keygen -F find', () => {
    const dir = path.join(tmp, 'newhome', '.ssh');
    const f = path.join(dir, 'known_hosts');
    const old = process.umask(0o022);
    try {
      appendKnownHost(f, 'Box.Example.org', 2222, keys.ed1.blob);
    } finally {
      process.umask(old);
    }
    assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(f).mode & 0o777, 0o600);
    const text = fs.readFileSync(f, 'utf8');
    assert.match(text, /^\|1\|[^ ]+ ssh-ed25519 [A-Za-z0-9+/=]+\n$/);
    assert.equal(checkHostKey([f], 'box.example.org', 2222, keys.ed1.blob).status, 'match');
    const found = spawnSync('ssh-keygen', ['-F', '[box.example.org]:2222', '-f', f], { encoding: 'utf8' });
    assert.equal(found.status, 0, found.stderr);
    assert.match(found.stdout, /Host \[box\.example\.org\]:2222 found: line 1/);
  });

  test('appends after a last line without a newline', () => {
    const f = kh('no-newline', `other ${keys.ed2.line}`);
    appendKnownHost(f, 'box', 22, keys.ec1.blob);
    const lines = fs.readFileSync(f, 'utf8').split('\n');
    assert.equal(lines.length, 3);
    assert.equal(lines[2], '');
    assert.equal(checkHostKey([f], 'other', 22, keys.ed2.blob).status, 'match');
    assert.equal(checkHostKey([f], 'box', 22, keys.ec1.blob).status, 'match');
  });
});
