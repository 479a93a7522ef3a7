#!/usr/bin/env node
// scripts/delay-relay.mjs: a TCP relay that adds round-trip delay (this kernel has no netem).
//
//   node scripts/delay-relay.mjs --rtt MS [--target HOST:PORT] [--listen PORT]
//
// Listens on 127.0.0.1 (a random port unless --listen), prints "PORT\n" on stdout once it
// listens, and forwards every accepted connection to the target (default 10.213.0.2:22, the test
// box). Every chunk is held for MS/2 ms in each direction, so a request/response pair pays MS ms
// more. Order is kept (one FIFO per direction, constant delay); there is no rate cap beyond what
// the delay implies: the relay applies ordinary backpressure (a full destination pauses the
// source), nothing else. Nagle is off on both legs.
//
// It ends by itself when its stdin closes (its parent died or closed the pipe), on SIGINT/SIGTERM,
// or after --max-seconds (default 3600), so it can never outlive a benchmark for long.
//
// NETWORK RULE: the only destination is the --target given (the test box); nothing else is dialled.
import net from 'node:net';
import { pathToFileURL } from 'node:url';

function parseArgs(argv) {
  const o = { rtt: 0, target: '10.213.0.2:22', listen: 0, maxSeconds: 3600, stdinWatch: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--rtt') o.rtt = Number(v());
    else if (a === '--target') o.target = v();
    else if (a === '--listen') o.listen = Number(v());
    else if (a === '--max-seconds') o.maxSeconds = Number(v());
    else if (a === '--no-stdin-watch') o.stdinWatch = false;
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: delay-relay.mjs --rtt MS [--target HOST:PORT] [--listen PORT] [--max-seconds S]\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isFinite(o.rtt) || o.rtt < 0) throw new Error('--rtt must be a number >= 0');
  const m = /^(.+):(\d+)$/.exec(o.target);
  if (!m) throw new Error('--target must be HOST:PORT');
  o.host = m[1].replace(/^\[|\]$/g, '');
  o.port = Number(m[2]);
  return o;
}

/**
 * Pipes src to dst, each chunk delayed by `delayMs`, in order. Backpressure: when dst's buffer is
 * full the source is paused until 'drain'. Ends dst after src ends and the queue is empty.
 */
export function delayedPipe(src, dst, delayMs) {
  const queue = []; // { due, chunk } in arrival order; due times are nondecreasing
  let timer = null;
  let srcEnded = false;
  let waitingDrain = false;

  const flush = () => {
    timer = null;
    const now = performance.now();
    while (queue.length && queue[0].due <= now + 0.5) {
      const { chunk } = queue.shift();
      if (dst.destroyed) return;
      if (!dst.write(chunk) && !waitingDrain) {
        waitingDrain = true;
        src.pause();
        dst.once('drain', () => {
          waitingDrain = false;
          if (!src.destroyed) src.resume();
        });
      }
    }
    if (queue.length) arm();
    else if (srcEnded && !dst.destroyed) dst.end();
  };
  const arm = () => {
    if (timer || !queue.length) return;
    timer = setTimeout(flush, Math.max(0, queue[0].due - performance.now()));
  };

  src.on('data', (chunk) => {
    if (delayMs <= 0 && !queue.length) {
      queue.push({ due: 0, chunk });
      flush();
      return;
    }
    queue.push({ due: performance.now() + delayMs, chunk });
    arm();
  });
  src.on('end', () => {
    srcEnded = true;
    if (!queue.length && !timer && !dst.destroyed) dst.end();
  });
}

function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`delay-relay: ${e.message}\n`);
    process.exit(2);
  }
  const oneWay = o.rtt / 2;
  const sockets = new Set();
  const server = net.createServer({ noDelay: true }, (client) => {
    client.setNoDelay(true);
    const upstream = net.connect({ host: o.host, port: o.port, noDelay: true });
    upstream.setNoDelay(true);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    const kill = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', kill);
    upstream.on('error', kill);
    client.on('close', () => setTimeout(kill, oneWay + 50));
    upstream.on('close', () => setTimeout(kill, oneWay + 50));
    delayedPipe(client, upstream, oneWay);
    delayedPipe(upstream, client, oneWay);
  });
  const stop = () => {
    server.close();
    for (const s of sockets) s.destroy();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', stop);
  if (o.stdinWatch) {
    process.stdin.on('end', stop);
    process.stdin.on('error', stop);
    process.stdin.resume();
  }
  setTimeout(stop, o.maxSeconds * 1000).unref();
  server.on('error', (e) => {
    process.stderr.write(`delay-relay: ${e.message}\n`);
    process.exit(1);
  });
  server.listen(o.listen, '127.0.0.1', () => {
    process.stdout.write(`${server.address().port}\n`);
  });
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
