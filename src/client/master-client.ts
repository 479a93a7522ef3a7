// A run's side of a master's socket: `-O check` and `-O exit`, and attaching a run, whose
// command then comes as a CommandLink (command-link.ts) like a direct run's channel.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { Readable, Writable } from 'node:stream';
import type { PseudoTtyOptions } from 'ssh2';
import { OutrunError } from './errors';
import type { CommandLink } from './command-link';
import { Frame, FrameReader, MUX_VERSION, dataFrames, frame, jsonFrame, parseJson, runFrame } from './mux-frames';
import { keyPathOf, privateDir } from './control-path';

/** Why there is no master to talk to: none there, or one that cannot serve (its error). */
export type NoMaster = { none: true; why: string } | OutrunError;

interface Conversation {
  sock: net.Socket;
  pid: number;
  /** Frames after WELCOME. */
  onFrame(handler: (type: number, payload: Buffer) => void): void;
}

/** Connects to the master at `socketPath` and says hello; a socket nobody answers counts as none. */
function converse(socketPath: string, request: 'run' | 'check' | 'exit'): Promise<Conversation | NoMaster> {
  const unsafe = privateDir(path.dirname(socketPath), false);
  if (unsafe) {
    const missing = !fs.existsSync(path.dirname(socketPath));
    return Promise.resolve(missing ? { none: true, why: 'no master directory' } : unsafe);
  }
  let key: string;
  try {
    key = fs.readFileSync(keyPathOf(socketPath), 'utf8');
  } catch {
    return Promise.resolve({ none: true, why: `no master key next to ${socketPath}` });
  }
  return new Promise((resolve) => {
    let handler: ((type: number, payload: Buffer) => void) | undefined;
    const queued: [number, Buffer][] = [];
    let welcomed = false;
    const sock = net.connect(socketPath);
    const reader = new FrameReader((type, payload) => {
      if (!welcomed) {
        const w = parseJson<{ pid?: number; message?: string; code?: string }>(payload);
        if (type === Frame.WELCOME && !(w instanceof Error)) {
          welcomed = true;
          return resolve({ sock, pid: w.pid ?? 0, onFrame: (h) => ((handler = h), queued.splice(0).forEach(([t, p]) => h(t, p))) });
        }
        sock.destroy();
        return resolve(new OutrunError('MASTER_UNAVAILABLE', `the master refused: ${w instanceof Error ? 'bad reply' : w.message}`));
      }
      if (handler) handler(type, payload);
      else queued.push([type, payload]);
    });
    sock.on('data', (d: Buffer) => {
      if (reader.push(d)) sock.destroy();
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (!welcomed) resolve({ none: true, why: `${socketPath}: ${err.message}` });
    });
    sock.on('close', () => {
      if (!welcomed) resolve({ none: true, why: `the master at ${socketPath} hung up` });
    });
    sock.write(jsonFrame(Frame.HELLO, { version: MUX_VERSION, key, request }));
  });
}

/** -O check / -O exit: the master's pid, or why there is none. */
export async function controlRequest(socketPath: string, request: 'check' | 'exit'): Promise<number | NoMaster> {
  const c = await converse(socketPath, request);
  if ('none' in c || c instanceof Error) return c;
  await new Promise<void>((r) => {
    c.sock.on('close', () => r());
    c.sock.resume();
  });
  return c.pid;
}

/**
 * Attaches a run: the master opens the command's channel and hands the helper the spec.
 * Resolves once the command is under way (or the helper refused), with its link.
 */
export async function attachRun(socketPath: string, spec: Buffer, pty: PseudoTtyOptions | false): Promise<CommandLink | NoMaster> {
  const c = await converse(socketPath, 'run');
  if ('none' in c || c instanceof Error) return c;
  const { sock } = c;
  // Output is taken from the socket only as fast as the local reader takes it.
  const wanting = new Set<Readable>();
  const pull = (r: Readable) => {
    wanting.add(r);
    if (wanting.size === 2) sock.resume();
  };
  const output: Readable = new Readable({ read: () => pull(output) });
  const errors: Readable = new Readable({ read: () => pull(errors) });
  const push = (r: Readable, d: Buffer) => {
    if (!r.push(d)) {
      wanting.delete(r);
      sock.pause();
    }
  };
  const input = new Writable({
    write: (chunk: Buffer, _enc, cb) => {
      const frames = dataFrames(Frame.STDIN, chunk);
      frames.forEach((f, i) => (i === frames.length - 1 ? sock.write(f, () => cb()) : sock.write(f)));
    },
    final: (cb) => {
      sock.write(frame(Frame.STDIN_END), () => cb());
    },
  });
  input.on('error', () => undefined);
  let resolveEnded!: (status: number | undefined) => void;
  const ended = new Promise<number | undefined>((r) => (resolveEnded = r));
  const finish = (status: number | undefined) => {
    output.push(null);
    errors.push(null);
    resolveEnded(status);
  };
  sock.on('close', () => finish(undefined));
  sock.on('error', () => undefined);

  return new Promise((resolve) => {
    let started = false;
    c.onFrame((type, payload) => {
      switch (type) {
        case Frame.STDOUT:
          return push(output, payload);
        case Frame.STDERR:
          return push(errors, payload);
        case Frame.STARTED: {
          const s = parseJson<{ ready?: boolean }>(payload);
          started = true;
          return resolve({
            input,
            output,
            errors,
            ready: !(s instanceof Error) && !!s.ready,
            ended,
            start: () => undefined, // the spec went with the RUN frame
            resize: (rows, cols) => void sock.write(jsonFrame(Frame.WINDOW, { rows, cols })),
            signal: (name) => void sock.write(frame(Frame.SIGNAL, name)),
          });
        }
        case Frame.STATUS: {
          const s = parseJson<{ status?: number | null }>(payload);
          return finish(s instanceof Error || s.status === null ? undefined : s.status);
        }
        case Frame.FAILED: {
          const f = parseJson<{ message?: string; code?: string; hint?: string }>(payload);
          // The remote's own refusal (the same a direct run gives) is the run's answer; any
          // other failure is the master's, and the run goes direct.
          const err =
            !(f instanceof Error) && f.code === 'ARCH_MISMATCH' && typeof f.message === 'string'
              ? new OutrunError('ARCH_MISMATCH', f.message, typeof f.hint === 'string' ? { hint: f.hint } : {})
              : new OutrunError(
                  !(f instanceof Error) && f.code === 'MASTER_BUSY' ? 'MASTER_BUSY' : 'MASTER_UNAVAILABLE',
                  `the master could not run the command: ${f instanceof Error ? 'bad reply' : f.message}`,
                );
          if (!started) resolve(err);
          return;
        }
      }
    });
    sock.on('close', () => {
      if (!started) resolve(new OutrunError('MASTER_UNAVAILABLE', 'the master hung up before the command started'));
    });
    sock.write(runFrame(pty, spec));
  });
}
