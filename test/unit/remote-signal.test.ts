import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Client } from 'ssh2';
import { RemoteSignals } from '../../src/client/remote-signal';

/** A connection whose `outrun-helper signal` runs exit with the given codes, in turn (then 0). */
function fakeConn(codes: number[]) {
  const commands: string[] = [];
  const conn = {
    exec(command: string, cb: (err: Error | undefined, ch: EventEmitter) => void) {
      commands.push(command);
      const ch = Object.assign(new EventEmitter(), { stderr: new EventEmitter() });
      cb(undefined, ch);
      const code = codes.shift() ?? 0;
      setImmediate(() => {
        ch.emit('exit', code);
        ch.emit('close');
      });
    },
  };
  return { conn: conn as unknown as Client, commands };
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const never = new Promise<void>(() => undefined);

test('a signal the helper takes is sent once, as `outrun-helper signal DIR NAME`', async () => {
  const { conn, commands } = fakeConn([0]);
  new RemoteSignals(conn, '/rt/outrun-helper', '/run/outrun/s-1', () => undefined, never).send('HANGUP');
  await sleep(500);
  assert.deepEqual(commands, ['/rt/outrun-helper signal /run/outrun/s-1 HANGUP']);
});

test('a signal refused (the helper has not recorded the command yet) is retried until taken', async () => {
  const { conn, commands } = fakeConn([254, 254, 0]);
  new RemoteSignals(conn, '/rt/outrun-helper', '/run/outrun/s-1', () => undefined, never).send('TERM');
  await sleep(1000);
  assert.equal(commands.length, 3);
});

test('nothing is retried once the command has ended', async () => {
  const { conn, commands } = fakeConn([254, 254, 254, 254]);
  new RemoteSignals(conn, '/rt/outrun-helper', '/run/outrun/s-1', () => undefined, Promise.resolve()).send('INT');
  await sleep(600);
  assert.equal(commands.length, 1);
});

test('a connection already gone is no exception', async () => {
  const conn = {
    exec() {
      throw new Error('Not connected');
    },
  } as unknown as Client;
  const logged: string[] = [];
  new RemoteSignals(conn, '/rt/outrun-helper', '/run/outrun/s-1', (m) => logged.push(m), Promise.resolve()).send('HUP');
  await sleep(10);
  assert.deepEqual(logged, ['signal HUP: Not connected']);
});
