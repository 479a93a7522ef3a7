// 64-bit fields as plain numbers on both ends. protobufjs decodes them as Long objects when
// the `long` package happens to be installed (it is, locally), and the FUSE binding and
// node:fs want numbers; sizes, offsets and handles stay far below 2^53. Must run before
// the generated code is loaded (schema.ts imports this first).
import * as protobuf from 'protobufjs/minimal';

protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();
