// End to end, authentication: a passphrase-protected key file is unlocked with its
// passphrase typed on the terminal (tmux gives outrun a real one), not echoed; without a
// terminal the key is skipped and authentication fails with 255. Keyboard-interactive
// answers with OUTRUN_PASSWORD, which is never logged.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CLI, SSH_CONFIG, boxShell, waitBoxClean } from './harness';
import { shellQuote } from '../../src/client/shell-quote';
import { closeTmux, tmux, waitForScreen } from './tmux';

const PASSPHRASE = 'correct horse battery';
let dir: string;
let cfg: string;


before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'outrun-auth-'));
  const key = path.join(dir, 'id_locked');
  assert.equal(spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASSPHRASE, '-C', 'locked', '-f', key]).status, 0);
  const pub = readFileSync(`${key}.pub`, 'utf8').trim();
  boxShell(`grep -qF '${pub}' /root/.ssh/authorized_keys || echo '${pub}' >> /root/.ssh/authorized_keys`);
  cfg = path.join(dir, 'ssh_config');
  writeFileSync(cfg, readFileSync(SSH_CONFIG, 'utf8').replace(/IdentityFile .*/, `IdentityFile ${key}`));
});

after(() => {
  closeTmux();
  boxShell("sed -i '/ locked$/d' /root/.ssh/authorized_keys");
  rmSync(dir, { recursive: true, force: true });
});

test('a key file with a passphrase is unlocked on the terminal', { timeout: 120_000 }, async () => {
  const session = `outrun-auth-${process.pid}`;
  const cmd = `SSH_AUTH_SOCK= ${shellQuote([process.execPath, CLI, '-F', cfg])} box sh -c 'echo logged-in-with-the-key'; echo "EXIT=$?"; sleep 60`;
  assert.equal(tmux('new-session', '-d', '-s', session, '-x', '150', '-y', '20', cmd).status, 0);
  try {
    await waitForScreen(session, /Enter passphrase for key '.*id_locked':/, 30_000);
    tmux('send-keys', '-t', session, '-l', PASSPHRASE);
    tmux('send-keys', '-t', session, 'Enter');
    const screen = await waitForScreen(session, /EXIT=\d+/, 30_000);
    assert.match(screen, /^logged-in-with-the-key$/m);
    assert.match(screen, /EXIT=0/);
    assert.doesNotMatch(screen, new RegExp(PASSPHRASE), 'the passphrase was not echoed');
  } finally {
    tmux('kill-session', '-t', session);
  }
  assert.equal(await waitBoxClean(), '');
});

test('a wrong passphrase three times: authentication fails with 255', { timeout: 120_000 }, async () => {
  const session = `outrun-auth-wrong-${process.pid}`;
  const cmd = `SSH_AUTH_SOCK= ${shellQuote([process.execPath, CLI, '-F', cfg])} box true; echo "EXIT=$?"; sleep 60`;
  assert.equal(tmux('new-session', '-d', '-s', session, '-x', '150', '-y', '20', cmd).status, 0);
  try {
    for (let i = 0; i < 3; i++) {
      await waitForScreen(session, new RegExp(`(Enter passphrase for key[^\\n]*\\n[\\s\\S]*){${i + 1}}`), 30_000);
      tmux('send-keys', '-t', session, '-l', `wrong ${i}`);
      tmux('send-keys', '-t', session, 'Enter');
    }
    const screen = await waitForScreen(session, /EXIT=\d+/, 30_000);
    assert.match(screen, /EXIT=255/);
    assert.match(screen, /^outrun: .*authentication/im);
  } finally {
    tmux('kill-session', '-t', session);
  }
});

test('without a terminal the key is skipped: 255', () => {
  // setsid: a new session, no controlling terminal, whatever runs the tests.
  const r = spawnSync('setsid', ['-w', process.execPath, CLI, '-F', cfg, 'box', 'true'], {
    encoding: 'utf8',
    env: { ...process.env, SSH_AUTH_SOCK: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  assert.equal(r.status, 255, r.stderr);
  assert.match(r.stderr, /authentication/i);
});

// Keyboard-interactive: a second sshd on the box (port 2022, PAM, keyboard-interactive
// only) for this test alone; the box's own sshd stays key-only for root.
test('keyboard-interactive with OUTRUN_PASSWORD: right password runs, wrong one is 255, never logged', { timeout: 120_000 }, async () => {
  const password = `kbd-${process.pid}-pass`;
  boxShell(
    [
      "cat > /etc/ssh/sshd_kbd_config <<'EOF'",
      'Port 2022',
      'HostKey /etc/ssh/ssh_host_ed25519_key',
      'PidFile /run/sshd-kbd.pid',
      'PermitRootLogin yes',
      'PubkeyAuthentication no',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication yes',
      'UsePAM yes',
      'UseDNS no',
      'Subsystem sftp /usr/lib/openssh/sftp-server',
      'EOF',
      `echo 'root:${password}' | chpasswd`,
      '/usr/sbin/sshd -f /etc/ssh/sshd_kbd_config',
    ].join('\n'),
  );
  const args = (v: string[]) => [...v, '-F', SSH_CONFIG, '-p', '2022', '-o', 'HostKeyAlias=' + /HostName\s+(\S+)/.exec(readFileSync(SSH_CONFIG, 'utf8'))![1]!];
  const run = (pw: string | undefined, extra: string[] = []) =>
    spawnSync('setsid', ['-w', process.execPath, CLI, ...args(extra), 'box', 'sh', '-c', 'echo via-keyboard-interactive'], {
      encoding: 'utf8',
      env: { ...process.env, SSH_AUTH_SOCK: '', OUTRUN_PASSWORD: pw ?? '' },
      timeout: 60_000,
    });
  try {
    const ok = run(password, ['-vv']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.equal(ok.stdout, 'via-keyboard-interactive\n');
    assert.match(ok.stderr, /authenticated to .* with keyboard-interactive/);
    assert.doesNotMatch(ok.stderr, new RegExp(password));
    const wrong = run('not-the-password', ['-vv']);
    assert.equal(wrong.status, 255, wrong.stderr);
    assert.match(wrong.stderr, /^outrun: .*authentication/m);
    assert.doesNotMatch(wrong.stderr, /not-the-password/);
    const none = run(undefined);
    assert.equal(none.status, 255, none.stderr);
    assert.equal(none.stderr.trim().split('\n').length, 1, none.stderr);
  } finally {
    boxShell('kill $(cat /run/sshd-kbd.pid) 2>/dev/null; usermod -p "*" root; rm -f /etc/ssh/sshd_kbd_config; true');
  }
  assert.equal(await waitBoxClean(), '');
});
