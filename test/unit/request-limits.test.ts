// The bounds the file server puts on one peer: read buffers held at once, requests in
// flight at once (HTTP/2 streams), size of one request.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { RpcServer } from '../../src/client/rpc-server';
import { LocalFileServer } from '../../src/fs/local/local-server';
import { ByteBudget, MAX_CONCURRENT_REQUESTS, MAX_REQUEST_BYTES } from '../../src/fs/local/request-limits';
import { makeFsClient } from '../../src/fs/agent/rpc-client';
import { TOKEN_METADATA_KEY } from '../../src/wire/schema';

const tick = () => new Promise((r) => setImmediate(r));

describe('ByteBudget', () => {
  test('holds at most its capacity; waiters run in order as bytes come back', async () => {
    const b = new ByteBudget(100);
    const order: string[] = [];
    const gates: Record<string, () => void> = {};
    const job = (name: string, n: number) =>
      b.with(n, () => {
        order.push(name);
        return new Promise<void>((r) => (gates[name] = r));
      });
    const a = job('a', 60);
    const c = job('c', 60); // must wait for a
    const d = job('d', 10); // fits, but waits behind c (no starvation of big requests)
    await tick();
    assert.deepEqual(order, ['a']);
    assert.equal(b.inUse, 60);
    gates.a!();
    await a;
    await tick();
    assert.deepEqual(order, ['a', 'c', 'd']);
    assert.equal(b.inUse, 70);
    gates.c!();
    gates.d!();
    await Promise.all([c, d]);
    assert.equal(b.inUse, 0);
    assert.equal(b.peak, 70);
  });

  test('a request above the capacity takes the whole budget instead of waiting forever', async () => {
    const b = new ByteBudget(10);
    assert.equal(await b.with(1000, async () => b.inUse), 10);
    assert.equal(b.inUse, 0);
  });

  test('bytes come back when the operation throws', async () => {
    const b = new ByteBudget(10);
    await assert.rejects(b.with(5, async () => Promise.reject(new Error('boom'))), /boom/);
    assert.equal(b.inUse, 0);
  });
});

describe('RpcServer request bounds', () => {
  test(`at most ${MAX_CONCURRENT_REQUESTS} requests run at once; the rest wait and all complete; oversized requests are refused`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-limits-'));
    const fsServer = new LocalFileServer();
    let running = 0;
    let peak = 0;
    const original = fsServer.handlers.Getattr;
    fsServer.handlers.Getattr = async (req) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      return original(req);
    };
    const rpc = new RpcServer(Buffer.from('t'.repeat(32)), fsServer, { hello: async () => ({}), control: (s) => s.end() });
    const sock = path.join(dir, 's');
    const listener = net.createServer((c) => rpc.serve(c));
    await new Promise<void>((r) => listener.listen(sock, r));
    const client = new grpc.Client(`unix:${sock}`, grpc.credentials.createInsecure());
    try {
      const md = new grpc.Metadata();
      md.set(TOKEN_METADATA_KEY, 't'.repeat(32));
      const fsc = makeFsClient(client, md, 60_000);
      const n = MAX_CONCURRENT_REQUESTS * 3;
      const replies = await Promise.all(Array.from({ length: n }, () => fsc.Getattr({ path: Buffer.from(dir) })));
      assert.equal(replies.length, n);
      assert.ok(replies.every((r) => r.errno === 0));
      assert.ok(peak > 1, 'requests did overlap');
      assert.ok(peak <= MAX_CONCURRENT_REQUESTS, `peak ${peak} in flight`);
      // One request above the size bound: refused by gRPC, the handler never sees it.
      const f = await fsc.Create({ path: Buffer.from(path.join(dir, 'big')), flags: fs.constants.O_WRONLY, mode: 0o600 });
      await assert.rejects(
        fsc.Write({ handle: f.handle, offset: 0, data: Buffer.alloc(MAX_REQUEST_BYTES + 1) }),
        { grpcCode: grpc.status.RESOURCE_EXHAUSTED },
      );
      assert.equal(fs.statSync(path.join(dir, 'big')).size, 0);
    } finally {
      client.close();
      rpc.close();
      listener.close();
      await fsServer.closeAll();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
