// The generated message classes (from proto/outrun.proto by protobufjs-cli, see scripts/build.mjs).
import './protobuf-config';
import { outrun } from './generated/outrun';

export import pb = outrun.v1;

/** Bump on any incompatible change to proto/outrun.proto or to how it is used. */
export const PROTOCOL_VERSION = 5;

/** The gRPC metadata key that carries the per-session token. */
export const TOKEN_METADATA_KEY = 'outrun-token';
