// End to end: an interactive program in a real terminal (tmux), through outrun: the remote
// pty has the terminal's size, keys reach it, Ctrl-C interrupts the remote foreground job
// only, and the exit status comes back.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { CLI, SSH_CONFIG, waitBoxClean } from './harness';
import { shellQuote } from '../../src/client/shell-quote';
import { closeTmux, sleep, tmux, waitForScreen } from './tmux';

after(closeTmux);



test('an interactive shell in a terminal: size, keys, Ctrl-C, exit status', { timeout: 120_000 }, async () => {
  const session = `outrun-e2e-${process.pid}`;
  const cmd = `${shellQuote([process.execPath, CLI, '-F', SSH_CONFIG])} box bash --norc --noprofile -i; echo "EXIT=$?"; sleep 60`;
  const started = tmux('new-session', '-d', '-s', session, '-x', '91', '-y', '27', cmd);
  assert.equal(started.status, 0, started.stderr);
  try {
    await waitForScreen(session, /[#$] ?$/m);
    tmux('send-keys', '-t', session, 'echo "size $(tput lines)x$(tput cols) $((6*7))"', 'Enter');
    await waitForScreen(session, /size 27x91 42/);
    tmux('send-keys', '-t', session, 'sleep 100; echo after-sleep', 'Enter');
    await sleep(1000);
    tmux('send-keys', '-t', session, 'C-c');
    await waitForScreen(session, /\^C/);
    tmux('send-keys', '-t', session, 'echo still-here; exit 3', 'Enter');
    const screen = await waitForScreen(session, /EXIT=\d+/);
    assert.match(screen, /still-here/);
    assert.doesNotMatch(screen, /^after-sleep$/m, "Ctrl-C ended the whole command line, as locally");
    assert.match(screen, /EXIT=3/);
  } finally {
    tmux('kill-session', '-t', session);
  }
  assert.equal(await waitBoxClean(), '');
});
