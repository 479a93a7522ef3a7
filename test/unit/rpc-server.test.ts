import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RpcServer, tokenMatches, type ControlStream } from '../../src/client/rpc-server';
import { LocalFileServer } from '../../src/fs/local/local-server';
import { RpcError, makeFsClient } from '../../src/fs/agent/rpc-client';
import { PROTOCOL_VERSION, TOKEN_METADATA_KEY, pb } from '../../src/wire/schema';
import { sessionMethods } from '../../src/wire/services';

const TOKEN = 'f00dfacecafe0123456789abcdef0123';

function md(...values: string[]): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const v of values) m.add(TOKEN_METADATA_KEY, v);
  return m;
}

describe('tokenMatches', () => {
  const expected = Buffer.from(TOKEN);

  test('the right token matches', () => {
    assert.equal(tokenMatches(expected, md(TOKEN)), true);
  });

  test('a wrong token of the same length does not', () => {
    const wrong = TOKEN.slice(0, -1) + (TOKEN.endsWith('3') ? '4' : '3');
    assert.equal(wrong.length, TOKEN.length);
    assert.equal(tokenMatches(expected, md(wrong)), false);
    assert.equal(tokenMatches(expected, md(TOKEN.toUpperCase())), false);
  });

  test('a token of a different length does not (no throw from timingSafeEqual)', () => {
    assert.equal(tokenMatches(expected, md(TOKEN.slice(0, -1))), false);
    assert.equal(tokenMatches(expected, md(TOKEN + '0')), false);
    assert.equal(tokenMatches(expected, md('')), false);
  });

  test('a missing token does not, nor one under another key', () => {
    assert.equal(tokenMatches(expected, new grpc.Metadata()), false);
    const other = new grpc.Metadata();
    other.set('outrun-token2', TOKEN);
    other.set('authorization', TOKEN);
    assert.equal(tokenMatches(expected, other), false);
  });

  test('two values do not, even if one is right', () => {
    assert.equal(tokenMatches(expected, md(TOKEN, TOKEN)), false);
    assert.equal(tokenMatches(expected, md(TOKEN, 'x')), false);
    assert.equal(tokenMatches(expected, md('x', TOKEN)), false);
  });
});

describe('RpcServer over a unix socket', () => {
  let dir: string;
  let sockPath: string;
  let netServer: net.Server;
  let rpc: RpcServer;
  let client: grpc.Client;
  const fsServer = new LocalFileServer();
  const calls: [string, number][] = [];
  const hellos: pb.HelloRequest[] = [];
  let controlStreams = 0;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-rpc-server-'));
    sockPath = path.join(dir, 'rpc.sock');
    rpc = new RpcServer(
      Buffer.from(TOKEN),
      fsServer,
      {
        hello: async (req) => {
          hellos.push(req);
          return { protocolVersion: PROTOCOL_VERSION, clientVersion: 'test', mount: { attrTimeoutS: 2.5, debug: true } };
        },
        control: (stream: ControlStream) => {
          controlStreams++;
          stream.write({ shutdown: { reason: 'bye' } });
          stream.end();
        },
      },
      { onCall: (method, _ms, errno) => calls.push([method, errno]) },
    );
    netServer = net.createServer((sock) => rpc.serve(sock));
    await new Promise<void>((resolve, reject) => {
      netServer.once('error', reject);
      netServer.listen(sockPath, resolve);
    });
    client = new grpc.Client(`unix:${sockPath}`, grpc.credentials.createInsecure());
  });

  after(async () => {
    client?.close();
    rpc?.close();
    await new Promise<void>((resolve) => (netServer ? netServer.close(() => resolve()) : resolve()));
    await fsServer.closeAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the server gets 16 MiB HTTP/2 windows (grpc-js has no option; see http2-windows.ts)', () => {
    // False when a grpc-js upgrade renames the private field: writes would crawl again.
    assert.equal(rpc.windowsTuned, true);
  });

  test('Getattr of a temp file with the right token', async () => {
    const f = path.join(dir, 'file');
    fs.writeFileSync(f, 'twelve bytes');
    const fsc = makeFsClient(client, md(TOKEN), 10_000);
    const r = await fsc.Getattr({ path: Buffer.from(f) });
    assert.ok(r instanceof pb.AttrReply);
    assert.equal(r.errno, 0);
    assert.equal(r.attr!.size, 12);
    assert.equal(r.attr!.ino, Number(fs.lstatSync(f, { bigint: true }).ino));
    assert.equal(r.attr!.mode! & fs.constants.S_IFMT, fs.constants.S_IFREG);
    assert.deepEqual(calls.at(-1), ['Getattr', 0]);
  });

  test('errnos travel in the reply, not as gRPC errors', async () => {
    const fsc = makeFsClient(client, md(TOKEN));
    const r = await fsc.Getattr({ path: Buffer.from(path.join(dir, 'missing')) });
    assert.equal(r.errno, os.constants.errno.ENOENT);
    assert.deepEqual(calls.at(-1), ['Getattr', os.constants.errno.ENOENT]);
    const bad = await fsc.Getattr({ path: Buffer.from('relative') });
    assert.equal(bad.errno, os.constants.errno.EINVAL);
  });

  test('a file written and read back through the RPCs has the exact bytes', async () => {
    const fsc = makeFsClient(client, md(TOKEN));
    const f = Buffer.from(path.join(dir, 'rw'));
    const c = await fsc.Create({ path: f, flags: fs.constants.O_RDWR, mode: 0o600 });
    assert.equal(c.errno, 0);
    assert.equal(typeof c.handle, 'number');
    const data = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x0a]);
    assert.equal((await fsc.Write({ handle: c.handle, offset: 5, data })).written, 6);
    const r = await fsc.Read({ handle: c.handle, offset: 0, size: 100 });
    assert.deepEqual([...r.data], [0, 0, 0, 0, 0, ...data]);
    assert.equal((await fsc.Release({ handle: c.handle })).errno, 0);
  });

  test('a wrong token is refused with UNAUTHENTICATED before the handler runs', async () => {
    const before = calls.length;
    const wrong = TOKEN.slice(0, -1) + 'x';
    const fsc = makeFsClient(client, md(wrong));
    const f = path.join(dir, 'file');
    await assert.rejects(fsc.Getattr({ path: Buffer.from(f) }), (err: unknown) => {
      assert.ok(err instanceof RpcError);
      assert.equal(err.grpcCode, grpc.status.UNAUTHENTICATED);
      assert.equal(err.grpcCode, 16);
      assert.equal(err.method, 'Getattr');
      assert.match(err.message, /^Getattr: bad session token$/);
      return true;
    });
    // a refused mutation leaves the disk alone
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'keep');
    await assert.rejects(fsc.Unlink({ path: Buffer.from(victim) }), { grpcCode: 16 });
    assert.equal(fs.readFileSync(victim, 'utf8'), 'keep');
    assert.equal(calls.length, before, 'no handler ran');
  });

  test('a missing token is refused too', async () => {
    const fsc = makeFsClient(client, new grpc.Metadata());
    await assert.rejects(fsc.Getattr({ path: Buffer.from(dir) }), { grpcCode: grpc.status.UNAUTHENTICATED });
  });

  test('Hello: answered with the right token, refused with a wrong one', async () => {
    const hello = (m: grpc.Metadata) =>
      new Promise<pb.HelloReply>((resolve, reject) =>
        client.makeUnaryRequest(
          sessionMethods.Hello.path,
          sessionMethods.Hello.encodeRequest,
          sessionMethods.Hello.decodeResponse,
          { protocolVersion: PROTOCOL_VERSION, agentVersion: 'a1', machine: 'x86_64', kernel: '6.1' },
          m,
          (err, reply) => (err ? reject(err) : resolve(reply!)),
        ),
      );
    const reply = await hello(md(TOKEN));
    assert.equal(reply.protocolVersion, PROTOCOL_VERSION);
    assert.equal(reply.clientVersion, 'test');
    assert.equal(reply.mount!.attrTimeoutS, 2.5);
    assert.equal(reply.mount!.debug, true);
    assert.equal(hellos.length, 1);
    assert.equal(hellos[0]!.agentVersion, 'a1');
    await assert.rejects(hello(md('nope')), { code: grpc.status.UNAUTHENTICATED });
    assert.equal(hellos.length, 1, 'the handler did not run');
  });

  const control = (m: grpc.Metadata, deadlineMs = 5000) =>
    new Promise<pb.ClientOrder[]>((resolve, reject) => {
      const call = client.makeBidiStreamRequest(
        sessionMethods.Control.path,
        sessionMethods.Control.encodeRequest,
        sessionMethods.Control.decodeResponse,
        m,
        { deadline: Date.now() + deadlineMs },
      );
      const got: pb.ClientOrder[] = [];
      call.on('data', (o: pb.ClientOrder) => got.push(o));
      call.on('error', reject);
      call.on('status', (st: grpc.StatusObject) => (st.code === grpc.status.OK ? resolve(got) : reject(st)));
      call.end();
    });

  test('Control: the stream is served with the right token', async () => {
    const orders = await control(md(TOKEN));
    assert.equal(orders.length, 1);
    assert.equal(orders[0]!.shutdown?.reason, 'bye');
    assert.equal(controlStreams, 1);
  });

  // The refusal destroys the grpc-js server stream; its 'error' handler then calls end() on a
  // destroyed stream, so _final (which sends the status) never runs and the call hangs until
  // the client's deadline (here 1.5 s: DEADLINE_EXCEEDED, code 4, instead of 16).
  test('Control: a wrong token ends the stream with UNAUTHENTICATED', async () => {
    const before = controlStreams;
    await assert.rejects(control(md('nope'), 1500), (err: { code?: number; details?: string }) => {
      assert.equal(err.code, grpc.status.UNAUTHENTICATED, `got code ${err.code} (${err.details})`);
      return true;
    });
    assert.equal(controlStreams, before, 'the handler did not run');
  });
});
