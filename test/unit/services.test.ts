import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { pb } from '../../src/wire/schema';
import { fileSystemMethods, serverDefinition, sessionMethods, type Method } from '../../src/wire/services';
// The full protobufjs build (with the .proto parser), only to read the schema independently
// of the generated code.
import * as protobuf from 'protobufjs';

const PROTO = path.resolve(__dirname, '../../../proto/outrun.proto');
const root = protobuf.loadSync(PROTO);
root.resolveAll();

type AnyMethod = Method<any, any, any, any>;
const ours: Record<string, Record<string, AnyMethod>> = {
  FileSystem: fileSystemMethods,
  Session: sessionMethods,
};

/** A sample value for every field (one member per oneof), nested messages included. */
function sample(type: protobuf.Type, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const oneofSeen = new Set<string>();
  for (const f of type.fieldsArray) {
    if (f.partOf) {
      if (oneofSeen.has(f.partOf.name)) continue;
      oneofSeen.add(f.partOf.name);
    }
    const one = (): unknown => {
      switch (f.type) {
        case 'bytes':
          return Buffer.from([0x2f, 0x00, 0xff, f.id]);
        case 'string':
          return `s-${f.name}-é`;
        case 'bool':
          return true;
        case 'double':
          return 1.25 + f.id;
        case 'uint32':
          return 0xfffffff0 + f.id;
        case 'int32':
          return -100 - f.id;
        case 'uint64':
          return 2 ** 40 + f.id;
        case 'int64':
          return -(2 ** 40) - f.id;
        default: {
          const t = f.resolvedType;
          assert.ok(t instanceof protobuf.Type, `field ${type.name}.${f.name} has an unhandled type ${f.type}`);
          return depth > 3 ? {} : sample(t, depth + 1);
        }
      }
    };
    out[f.name] = f.repeated ? [one(), one()] : one();
  }
  return out;
}

function services(): protobuf.Service[] {
  const ns = root.lookup('outrun.v1') as protobuf.Namespace;
  return ns.nestedArray.filter((n): n is protobuf.Service => n instanceof protobuf.Service);
}

test('the proto declares exactly the Session and FileSystem services', () => {
  assert.deepEqual(services().map((s) => s.name).sort(), ['FileSystem', 'Session']);
});

for (const svcName of ['FileSystem', 'Session']) {
  const svc = root.lookupService(`outrun.v1.${svcName}`);

  test(`${svcName}: the same method names as the proto, no more, no fewer`, () => {
    assert.deepEqual(Object.keys(ours[svcName]!).sort(), svc.methodsArray.map((m) => m.name).sort());
    assert.ok(svc.methodsArray.length >= 2);
  });

  for (const rm of svc.methodsArray) {
    test(`${svcName}.${rm.name}: path, name, streaming flags and message types match the proto`, () => {
      const m = ours[svcName]![rm.name];
      assert.ok(m, `${rm.name} is defined`);
      assert.equal(m.path, `/outrun.v1.${svcName}/${rm.name}`);
      assert.equal(m.name, rm.name);
      assert.equal(m.requestStream, !!rm.requestStream);
      assert.equal(m.responseStream, !!rm.responseStream);

      const reqType = rm.resolvedRequestType!;
      const resType = rm.resolvedResponseType!;
      // the generated class the method uses is the one of the declared type
      const gen = pb as unknown as Record<string, { encode(p: object): { finish(): Uint8Array } }>;
      assert.ok(gen[reqType.name], `pb.${reqType.name} exists`);

      for (const [type, encode, decode] of [
        [reqType, m.encodeRequest, m.decodeRequest],
        [resType, m.encodeResponse, m.decodeResponse],
      ] as const) {
        const props = sample(type);
        // bytes the independent (reflected) codec writes ...
        const wire = Buffer.from(type.encode(type.fromObject(props)).finish());
        assert.ok(wire.length > 0, `${type.name} sample is not empty`);
        // ... decode through our method and re-encode to the very same bytes
        const decoded = decode(wire);
        assert.ok(decoded instanceof (gen[type.name] as unknown as Function), `decodes to pb.${type.name}`);
        assert.deepEqual(encode(decoded), wire, `${type.name} round-trips byte for byte`);
        // and our encoding of the properties reads back as the same values
        const back = type.toObject(type.decode(encode(props)), { bytes: Buffer, longs: Number, defaults: false });
        assert.deepEqual(normalize(back), normalize(props), `${type.name} values survive`);
      }
    });
  }
}

/** Buffers as arrays so deepEqual compares bytes. */
function normalize(v: unknown): unknown {
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return [...v];
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalize(x)]));
  return v;
}

test('a decoded request carries exactly the sample values (PathRequest, ReadRequest, ChownRequest)', () => {
  const p = fileSystemMethods.Getattr.decodeRequest(fileSystemMethods.Getattr.encodeRequest({ path: Buffer.from([0x2f, 0xff]) }));
  assert.deepEqual([...p.path], [0x2f, 0xff]);
  const r = fileSystemMethods.Read.decodeRequest(fileSystemMethods.Read.encodeRequest({ handle: 3, offset: 2 ** 45 + 1, size: 65536 }));
  assert.deepEqual({ handle: r.handle, offset: r.offset, size: r.size }, { handle: 3, offset: 2 ** 45 + 1, size: 65536 });
  const c = fileSystemMethods.Chown.decodeRequest(fileSystemMethods.Chown.encodeRequest({ path: Buffer.from('/x'), uid: -1, gid: 0xffffffff }));
  assert.equal(c.uid, -1);
  assert.equal(c.gid, 0xffffffff);
  const h = sessionMethods.Hello.decodeRequest(sessionMethods.Hello.encodeRequest({ protocolVersion: 1, agentVersion: 'v', machine: 'x86_64', kernel: '6.1' }));
  assert.deepEqual({ ...h }, { protocolVersion: 1, agentVersion: 'v', machine: 'x86_64', kernel: '6.1' });
  const ev = sessionMethods.Control.decodeRequest(sessionMethods.Control.encodeRequest({ mounted: { root: '/mnt' } }));
  assert.equal(ev.event, 'mounted');
  assert.equal(ev.mounted?.root, '/mnt');
});

test('64-bit fields decode as plain numbers, not Long objects', () => {
  const a = pb.Attr.decode(pb.Attr.encode({ size: 2 ** 40, ino: 2 ** 52 + 1, blocks: 7, mtime: { sec: -(2 ** 33), nsec: 5 } }).finish());
  assert.equal(typeof a.size, 'number');
  assert.equal(a.size, 2 ** 40);
  assert.equal(a.ino, 2 ** 52 + 1);
  assert.equal(a.blocks, 7);
  assert.equal(typeof a.mtime!.sec, 'number');
  assert.equal(a.mtime!.sec, -(2 ** 33));
  assert.equal(typeof a.rdev, 'number', 'an unset 64-bit field defaults to the number 0');
  assert.equal(a.rdev, 0);

  const o = fileSystemMethods.Open.decodeResponse(fileSystemMethods.Open.encodeResponse({ errno: 0, handle: 2 ** 33 + 5, attr: { size: 2 ** 40 } }));
  assert.equal(typeof o.handle, 'number');
  assert.equal(o.handle, 2 ** 33 + 5);
  assert.equal(o.attr!.size, 2 ** 40);

  const s = fileSystemMethods.Statfs.decodeResponse(fileSystemMethods.Statfs.encodeResponse({ errno: 0, blocks: 2 ** 41, namemax: 255 }));
  assert.equal(typeof s.blocks, 'number');
  assert.equal(s.blocks, 2 ** 41);

  const t = fileSystemMethods.Truncate.decodeRequest(fileSystemMethods.Truncate.encodeRequest({ path: Buffer.from('/f'), size: 2 ** 40, handle: 9 }));
  assert.equal(typeof t.size, 'number');
  assert.equal(t.size, 2 ** 40);
  assert.equal(t.handle, 9);
});

test('serverDefinition mirrors the method', () => {
  const m = fileSystemMethods.Read;
  const d = serverDefinition(m);
  assert.equal(d.path, '/outrun.v1.FileSystem/Read');
  assert.equal(d.originalName, 'Read');
  assert.equal(d.requestStream, false);
  assert.equal(d.responseStream, false);
  const reqBytes = m.encodeRequest({ handle: 1, offset: 2, size: 3 });
  assert.deepEqual(d.requestSerialize(d.requestDeserialize(reqBytes)), reqBytes);
  const resBytes = d.responseSerialize({ errno: 0, data: Buffer.from('ok') });
  assert.equal(Buffer.from((d.responseDeserialize(resBytes) as unknown as pb.ReadReply).data).toString(), 'ok');
  const c = serverDefinition(sessionMethods.Control);
  assert.equal(c.path, '/outrun.v1.Session/Control');
  assert.equal(c.requestStream, true);
  assert.equal(c.responseStream, true);
});
