// The fuzz run itself: hostile and random requests against a real LocalFileServer (and the
// real RpcServer in front of it). Meant to run inside the read-only sandbox that
// local-server.fuzz.test.ts builds: whatever a request asks, only a scratch tmpfs at /tmp
// can change. Prints one JSON line with what ran; exits non-zero with the counterexample
// when a property fails.
//
// Properties: every request, however malformed, gets an answer (no throw, no hang) that is
// an errno and encodes; open handles stay under the limit; read buffers stay under their
// budget; the process memory stays bounded; the server keeps answering afterwards.
import * as fc from 'fast-check';
import * as grpc from '@grpc/grpc-js';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { LocalFileServer, type LocalServerLimits } from '../../src/fs/local/local-server';
import { MAX_READ_BYTES_IN_FLIGHT } from '../../src/fs/local/request-limits';
import { RpcServer } from '../../src/client/rpc-server';
import { TOKEN_METADATA_KEY } from '../../src/wire/schema';
import { fileSystemMethods, type FsMethodName, type Method } from '../../src/wire/services';

const SCRATCH = '/tmp/fz';
const budgetMs = Number(process.env.OUTRUN_FUZZ_MS ?? 24_000);
const seed = Number(process.env.OUTRUN_FUZZ_SEED ?? Date.now() % 2 ** 31);
const LIMITS: LocalServerLimits = { maxOpenFiles: 8, maxReadBytes: 1024 * 1024 };
const HANG_MS = 10_000;
const MAX_RSS = 768 * 1024 * 1024;

const names = Object.keys(fileSystemMethods) as FsMethodName[];
const method = (n: FsMethodName) => fileSystemMethods[n] as Method<unknown, unknown, unknown, unknown>;
type Reply = { errno?: number };
type Handler = (req: unknown) => Promise<Reply>;

// Paths: mostly names in the scratch dir (so that creates, writes and reads do happen), and
// the hostile kinds: relative, `..`, NUL, empty components, too long, random bytes, and
// real system files and devices (the sandbox keeps them read-only).
const component = fc.constantFrom('a', 'b', 'c', 'dir', 'fifo', 'link', '.', '..', '', 'x'.repeat(256));
const pathArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 6, arbitrary: fc.array(component, { minLength: 1, maxLength: 3 }).map((c) => Buffer.from([SCRATCH, ...c].join('/'))) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '/', '', 'relative', '/tmp/fz/../..', '/tmp//fz', '/tmp/fz/\0/a', '/etc/passwd', '/etc', '/dev/zero',
      '/dev/null', '/proc/self/mem', '/proc/self/fd', '/tmp/fz/' + 'd/'.repeat(2100),
    ).map((s) => Buffer.from(s)),
  },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
);
const u64 = fc.oneof(fc.nat(1 << 20), fc.constantFrom(0, 1, 2 ** 31, 2 ** 32 - 1, 2 ** 53 - 1, 2 ** 53, 2 ** 63, 2 ** 64 - 1));
const u32 = fc.oneof(fc.nat(1 << 20), fc.constantFrom(0, 1, 4096, 2 ** 31, 2 ** 32 - 1));
const i64 = fc.oneof(fc.integer({ min: -2, max: 70000 }), fc.constantFrom(-1, -(2 ** 53), 2 ** 32 - 1, 2 ** 53, 2 ** 63));
const timespec = fc.record({ sec: i64, nsec: u32 }, { requiredKeys: [] });
/** Every field of every request message; each method encodes the ones it has. */
const fieldsArb = fc.record(
  {
    path: pathArb,
    from: pathArb,
    to: pathArb,
    target: pathArb,
    flags: fc.oneof(fc.constantFrom(0, 1, 2, 0o1101, 0o100, 0o4000, 0o200000, 0o20000000, 0o10000000), u32),
    mode: fc.oneof(fc.constantFrom(0o100644, 0o10644, 0o20644, 0o140755, 0o40755, 0o7777), u32),
    mask: u32,
    uid: i64,
    gid: i64,
    size: u64,
    offset: u64,
    handle: u64,
    rdev: u64,
    data: fc.uint8Array({ maxLength: 9000 }),
    datasync: fc.boolean(),
    atime: timespec,
    mtime: timespec,
  },
  { requiredKeys: [] },
);

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: no answer in ${HANG_MS} ms`)), HANG_MS))),
  ]);
}

/** The handler must answer with an errno and a reply that encodes. */
async function callChecked(server: LocalFileServer, name: FsMethodName, req: unknown): Promise<Reply> {
  const reply = await withTimeout((server.handlers[name] as Handler)(req), name);
  const errno = reply.errno ?? 0;
  if (!Number.isInteger(errno) || errno < 0) throw new Error(`${name}: errno ${errno}`);
  method(name).encodeResponse(reply);
  if (server.openFileCount > LIMITS.maxOpenFiles) throw new Error(`${server.openFileCount} files open`);
  if (server.readBudget.peak > MAX_READ_BYTES_IN_FLIGHT) throw new Error('read budget exceeded');
  return reply;
}

/** Encodes props as the peer would, or null when protobufjs itself refuses the values. */
function encode(name: FsMethodName, props: unknown): Buffer | null {
  try {
    return method(name).encodeRequest(props);
  } catch {
    return null;
  }
}

function checkMemory(): void {
  const rss = process.memoryUsage().rss;
  if (rss > MAX_RSS) throw new Error(`rss ${rss} bytes`);
}

const counts = { sequences: 0, ops: 0, ok: 0, decoded: 0, undecodable: 0, grpcCalls: 0, grpcErrors: 0 };

/** Property 1: sequences of well-formed but hostile requests, with handles that exist or not. */
async function sequences(ms: number): Promise<void> {
  const op = fc.record({ name: fc.constantFrom(...names), fields: fieldsArb, known: fc.option(fc.nat(40)) });
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 25 }), async (ops) => {
      const server = new LocalFileServer(LIMITS);
      const handles: number[] = [];
      try {
        for (const { name, fields, known } of ops) {
          // Often use a handle this session really opened, sometimes a stale or foreign one.
          const f = known !== null && handles.length > 0 ? { ...fields, handle: handles[known % handles.length] } : fields;
          const bytes = encode(name, f);
          if (!bytes) continue;
          const reply = await callChecked(server, name, method(name).decodeRequest(bytes));
          counts.ops++;
          if (reply.errno === 0) counts.ok++;
          const h = (reply as { handle?: number }).handle;
          if (typeof h === 'number' && h > 0) handles.push(h);
        }
      } finally {
        await withTimeout(server.closeAll(), 'closeAll');
        counts.sequences++;
      }
      if (server.openFileCount !== 0) throw new Error('handles left after closeAll');
      checkMemory();
    }),
    { seed, numRuns: 1_000_000, interruptAfterTimeLimit: ms, markInterruptAsFailure: false, endOnFailure: true },
  );
}

/** Property 2: random and mutated bytes through each method's decoder, then its handler. */
async function mutatedBytes(ms: number): Promise<void> {
  const mutation = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }),
  );
  const input = fc.record({
    name: fc.constantFrom(...names),
    base: fc.oneof(fieldsArb.map((f) => ({ fields: f })), fc.uint8Array({ maxLength: 300 }).map((raw) => ({ raw }))),
    mutations: fc.array(mutation, { maxLength: 6 }),
  });
  const server = new LocalFileServer(LIMITS);
  try {
    await fc.assert(
      fc.asyncProperty(input, async ({ name, base, mutations }) => {
        let bytes = 'raw' in base ? Buffer.from(base.raw) : encode(name, base.fields);
        if (!bytes) return;
        for (const m of mutations) {
          const at = bytes.length ? m.at % (bytes.length + 1) : 0;
          if (m.kind === 'flip' && bytes.length) bytes[at % bytes.length] = m.value;
          else if (m.kind === 'cut') bytes = bytes.subarray(0, at);
          else if (m.kind === 'insert') bytes = Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
        }
        let req: unknown;
        try {
          req = method(name).decodeRequest(bytes);
        } catch {
          counts.undecodable++; // grpc-js answers INTERNAL for these (property 3 checks it)
          return;
        }
        counts.decoded++;
        await callChecked(server, name, req);
        checkMemory();
      }),
      { seed, numRuns: 1_000_000, interruptAfterTimeLimit: ms, markInterruptAsFailure: false, endOnFailure: true },
    );
  } finally {
    await withTimeout(server.closeAll(), 'closeAll');
  }
}

/** Property 3: raw bytes sent to real method paths of the real RpcServer, with the token. */
async function throughGrpc(ms: number): Promise<void> {
  const token = 'fuzz-token-0123456789abcdef012345';
  const server = new LocalFileServer(LIMITS);
  const rpc = new RpcServer(Buffer.from(token), server, {
    hello: async () => ({}),
    control: (s) => s.end(),
  });
  const sock = path.join(SCRATCH, 'rpc.sock');
  fs.rmSync(sock, { force: true });
  const listener = net.createServer((c) => rpc.serve(c));
  await new Promise<void>((resolve) => listener.listen(sock, resolve));
  const client = new grpc.Client(`unix:${sock}`, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  md.set(TOKEN_METADATA_KEY, token);
  const id = (b: Buffer) => b;
  const call = (p: string, body: Buffer) =>
    withTimeout(
      new Promise<{ err: grpc.ServiceError | null; reply?: Buffer }>((resolve) =>
        client.makeUnaryRequest(p, id, id, body, md.clone(), { deadline: Date.now() + HANG_MS }, (err, reply) =>
          resolve({ err, reply }),
        ),
      ),
      p,
    );
  const paths = [...names.map((n) => method(n).path), '/outrun.v1.FileSystem/Nope', '/outrun.v1.Session/Hello'];
  try {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...paths), fc.uint8Array({ maxLength: 200 }), async (p, body) => {
        const r = await call(p, Buffer.from(body));
        counts.grpcCalls++;
        if (r.err) {
          counts.grpcErrors++;
          const expected = [grpc.status.INTERNAL, grpc.status.UNIMPLEMENTED, grpc.status.FAILED_PRECONDITION];
          if (!expected.includes(r.err.code)) throw new Error(`${p}: status ${r.err.code} ${r.err.details}`);
        }
        checkMemory();
      }),
      { seed, numRuns: 1_000_000, interruptAfterTimeLimit: ms, markInterruptAsFailure: false, endOnFailure: true },
    );
    // Still serving: a plain Getattr of / answers errno 0.
    const m = method('Getattr');
    const r = await call(m.path, m.encodeRequest({ path: Buffer.from('/') }));
    if (r.err || (m.decodeResponse(r.reply!) as Reply).errno !== 0) throw new Error('server stopped answering');
    if (server.openFileCount > LIMITS.maxOpenFiles) throw new Error(`${server.openFileCount} files open`);
  } finally {
    client.close();
    rpc.close();
    listener.close();
    await server.closeAll();
  }
}

async function main(): Promise<void> {
  fs.mkdirSync(SCRATCH, { recursive: true });
  process.umask(0);
  await sequences(budgetMs * 0.45);
  await mutatedBytes(budgetMs * 0.3);
  await throughGrpc(budgetMs * 0.25);
  process.stdout.write(JSON.stringify({ seed, ...counts, rss: process.memoryUsage().rss }) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`fuzz failure (seed ${seed}): ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
