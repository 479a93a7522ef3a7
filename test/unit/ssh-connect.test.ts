// connectSsh against in-process ssh2 servers on 127.0.0.1 (no sshd needed, nothing leaves the machine).
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Server, utils, type AuthContext, type Client } from 'ssh2';
import { OutrunError } from '../../src/client/errors';
import { checkHostKey, hashHostName } from '../../src/client/known-hosts';
import { connectSsh, orderHostKeyAlgorithms } from '../../src/client/ssh-connect';
import { resolveSshConfig, type ResolveOptions } from '../../src/client/ssh-config';

let tmp: string;
let home: string;

interface KeyPair {
  file: string;
  /** `type base64` */
  pubLine: string;
  blob: Buffer;
}

function makeKey(name: string, passphrase = ''): KeyPair {
  const file = path.join(tmp, name);
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', name, '-f', file]);
  assert.equal(r.status, 0, String(r.stderr));
  const pubLine = fs.readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  return { file, pubLine, blob: Buffer.from(pubLine.split(' ')[1], 'base64') };
}

interface TestServer {
  port: number;
  hostKey: KeyPair;
  /** Auth methods the server saw, in order. */
  methods: string[];
  /** direct-tcpip requests seen: "host:port". */
  forwards: string[];
  /** exec requests seen. */
  execs: string[];
  close(): Promise<void>;
}

interface ServerOptions {
  hostKey: KeyPair;
  clientKeys?: KeyPair[];
  password?: string;
  /** Allow direct-tcpip (port forwarding) to 127.0.0.1. */
  forwarding?: boolean;
}

function startServer(o: ServerOptions): Promise<TestServer> {
  const methods: string[] = [];
  const forwards: string[] = [];
  const execs: string[] = [];
  const allowed = (o.clientKeys ?? []).map((k) => k.blob);
  const conns = new Set<import('ssh2').Connection>();
  const server = new Server({ hostKeys: [fs.readFileSync(o.hostKey.file)] }, (conn) => {
    conns.add(conn);
    conn.on('close', () => conns.delete(conn));
    conn.on('error', () => undefined);
    conn.on('authentication', (ctx: AuthContext) => {
      methods.push(ctx.method);
      const offer = ['publickey', ...(o.password ? ['password', 'keyboard-interactive'] : [])] as AuthContext['method'][];
      switch (ctx.method) {
        case 'publickey': {
          const ok = allowed.some((b) => b.equals(ctx.key.data));
          if (!ok) return ctx.reject(offer);
          if (!ctx.signature) return ctx.accept(); // "would this key do?"
          const pub = utils.parseKey(ctx.key.data);
          if (pub instanceof Error || !pub.verify(ctx.blob!, ctx.signature, ctx.hashAlgo as never)) return ctx.reject(offer);
          return ctx.accept();
        }
        case 'password':
          return ctx.password === o.password ? ctx.accept() : ctx.reject(offer);
        case 'keyboard-interactive':
          return ctx.prompt([{ prompt: 'Password: ', echo: false }], (answers) =>
            answers[0] === o.password ? ctx.accept() : ctx.reject(offer),
          );
        default:
          return ctx.reject(offer);
      }
    });
    conn.on('ready', () => {
      conn.on('session', (accept) => {
        const session = accept();
        session.on('exec', (acc, _rej, info) => {
          execs.push(info.command);
          const ch = acc();
          ch.write(`ran ${info.command}\n`);
          ch.exit(0);
          ch.end();
        });
      });
      // Without a listener ssh2 answers "administratively prohibited", as sshd with AllowTcpForwarding no.
      if (!o.forwarding) return;
      conn.on('tcpip', (accept, reject, info) => {
        forwards.push(`${info.destIP}:${info.destPort}`);
        if (info.destIP !== '127.0.0.1') return reject();
        const sock = net.connect(info.destPort, '127.0.0.1');
        sock.once('error', () => reject());
        sock.once('connect', () => {
          const ch = accept();
          ch.pipe(sock).pipe(ch);
          ch.on('error', () => sock.destroy());
          sock.on('error', () => ch.destroy());
        });
      });
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      resolve({
        port,
        hostKey: o.hostKey,
        methods,
        forwards,
        execs,
        close: () =>
          new Promise<void>((r) => {
            for (const c of conns) c.end();
            server.close(() => r());
          }),
      });
    });
  });
}

let hostKey: KeyPair;
let otherHostKey: KeyPair;
let jumpHostKey: KeyPair;
let clientKey: KeyPair;
let wrongKey: KeyPair;
let encryptedKey: KeyPair;
let server: TestServer;
let pwServer: TestServer;

/** known_hosts line for 127.0.0.1:port */
const khLine = (port: number, key: KeyPair) => `[127.0.0.1]:${port} ${key.pubLine}\n`;

function writeFile(name: string, text: string): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
}

/** Resolve `host` with a config file made of `config`, the test home, no agent, no system config. */
function resolve(host: string, config: string, extra: Partial<ResolveOptions> = {}) {
  const cfg = writeFile(`config-${Math.random().toString(36).slice(2)}`, config);
  return resolveSshConfig({
    host,
    overrides: {},
    configFile: cfg,
    home,
    localUser: 'tester',
    systemConfigFile: 'none',
    env: {},
    warn: () => undefined,
    ...extra,
  });
}

interface Captured {
  logs: string[];
  warnings: string[];
}

function connect(resolved: ReturnType<typeof resolve>, env: NodeJS.ProcessEnv = {}, verbose = 1): Promise<{ client: Client } & Captured> {
  const logs: string[] = [];
  const warnings: string[] = [];
  return connectSsh(resolved, { verbose, log: (m) => logs.push(m), interactive: false, warn: (m) => warnings.push(m), env }).then(
    (client) => ({ client, logs, warnings }),
  );
}

async function connectFails(resolved: ReturnType<typeof resolve>, code: string, env: NodeJS.ProcessEnv = {}): Promise<OutrunError & Captured> {
  const logs: string[] = [];
  const warnings: string[] = [];
  try {
    const c = await connectSsh(resolved, { verbose: 1, log: (m) => logs.push(m), interactive: false, warn: (m) => warnings.push(m), env });
    c.end();
  } catch (err) {
    assert.ok(err instanceof OutrunError, String(err));
    assert.equal(err.code, code, err.message);
    assert.equal(err.exitStatus, 255);
    assert.doesNotMatch(err.oneLine(), /\n/);
    return Object.assign(err, { logs, warnings });
  }
  assert.fail(`expected ${code}`);
}

function execOn(client: Client, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, ch) => {
      if (err) return reject(err);
      let out = '';
      ch.on('data', (d: Buffer) => (out += d.toString()));
      ch.stderr.resume();
      ch.on('close', () => resolve(out));
    });
  });
}

function closed(client: Client): Promise<void> {
  return new Promise((r) => client.once('close', () => r()));
}

async function endClient(client: Client): Promise<void> {
  const c = closed(client);
  client.end();
  await c;
}

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-ssh-connect-'));
  home = path.join(tmp, 'home');
  fs.mkdirSync(home);
  hostKey = makeKey('host_key');
  otherHostKey = makeKey('other_host_key');
  jumpHostKey = makeKey('jump_host_key');
  clientKey = makeKey('id_client');
  wrongKey = makeKey('id_wrong');
  encryptedKey = makeKey('id_encrypted', 'secret passphrase');
  server = await startServer({ hostKey, clientKeys: [clientKey, encryptedKey] });
  pwServer = await startServer({ hostKey, password: 'pw-123' });
});

after(async () => {
  await server?.close();
  await pwServer?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** Config for the main test server with the right known_hosts and key. */
function goodConfig(port = server.port, extra = ''): string {
  const kh = writeFile(`kh-${port}`, khLine(port, hostKey));
  return `Host target\n HostName 127.0.0.1\n Port ${port}\n User tester\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${kh}\n GlobalKnownHostsFile none\n${extra}`;
}

describe('host keys', () => {
  test('a known host key is accepted; the connection runs commands', async () => {
    const { client, logs } = await connect(resolve('target', goodConfig()));
    assert.equal(await execOn(client, 'echo hi'), 'ran echo hi\n');
    assert.ok(logs.some((l) => /host key for \[127\.0\.0\.1\]:\d+: ED25519 key SHA256:.* found in/.test(l)), logs.join('\n'));
    assert.ok(logs.some((l) => /authenticated to tester@127\.0\.0\.1 with publickey .*id_client/.test(l)), logs.join('\n'));
    await endClient(client);
  });

  test('a hashed known_hosts entry is accepted too', async () => {
    const kh = writeFile('kh-hashed', `${hashHostName(`[127.0.0.1]:${server.port}`)} ${hostKey.pubLine}\n`);
    const { client } = await connect(
      resolve('target', `Host target\n HostName 127.0.0.1\n Port ${server.port}\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${kh}\n`),
    );
    await endClient(client);
  });

  test('an unknown host key is refused with HOST_KEY_UNKNOWN', async () => {
    const empty = writeFile('kh-empty', '');
    const err = await connectFails(
      resolve('target', `Host target\n HostName 127.0.0.1\n Port ${server.port}\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${empty}\n GlobalKnownHostsFile none\n`),
      'HOST_KEY_UNKNOWN',
    );
    assert.match(err.message, new RegExp(`host key for \\[127\\.0\\.0\\.1\\]:${server.port} is not known \\(ED25519 key SHA256:`));
    assert.match(err.hint!, /ssh -p \d+ target.*StrictHostKeyChecking=accept-new/);
    assert.equal(server.methods.length >= 0, true);
    assert.equal(fs.readFileSync(empty, 'utf8'), '', 'nothing written');
  });

  test('a changed host key is refused with HOST_KEY_CHANGED', async () => {
    const kh = writeFile('kh-changed', khLine(server.port, otherHostKey));
    const err = await connectFails(
      resolve('target', `Host target\n HostName 127.0.0.1\n Port ${server.port}\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${kh}\n`),
      'HOST_KEY_CHANGED',
    );
    assert.match(err.message, /REMOTE HOST IDENTIFICATION HAS CHANGED/);
    assert.match(err.message, /man-in-the-middle/);
    assert.match(err.message, new RegExp(`${kh}:1`));
    assert.equal(err.hint, `if the change is expected, remove the old key with: ssh-keygen -f '${kh}' -R '[127.0.0.1]:${server.port}'`);
  });

  test('a revoked host key is refused even with StrictHostKeyChecking=no', async () => {
    const kh = writeFile('kh-revoked', `@revoked * ${hostKey.pubLine}\n`);
    await connectFails(
      resolve('target', `Host target\n HostName 127.0.0.1\n Port ${server.port}\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${kh}\n StrictHostKeyChecking no\n`),
      'HOST_KEY_REVOKED',
    );
  });

  test('accept-new stores a hashed entry (0600) and connects; the next run finds it', async () => {
    const kh = path.join(home, '.ssh-new', 'known_hosts');
    const cfg = `Host target\n HostName 127.0.0.1\n Port ${server.port}\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${kh}\n StrictHostKeyChecking accept-new\n`;
    const first = await connect(resolve('target', cfg));
    assert.ok(first.warnings.some((w) => /Permanently added '\[127\.0\.0\.1\]:\d+' \(ED25519\)/.test(w)), first.warnings.join('\n'));
    await endClient(first.client);
    assert.equal(fs.statSync(kh).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(kh)).mode & 0o777, 0o700);
    assert.match(fs.readFileSync(kh, 'utf8'), /^\|1\|/);
    assert.equal(checkHostKey([kh], '127.0.0.1', server.port, hostKey.blob).status, 'match');
    const second = await connect(resolve('target', cfg));
    assert.deepEqual(second.warnings, []);
    await endClient(second.client);
  });

  test('accept-new still refuses a changed key', async () => {
    const kh = writeFile('kh-changed2', khLine(server.port, otherHostKey));
    await connectFails(
      resolve('target', `Host target\n HostName 127.0.0.1\n Port ${server.port}\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${kh}\n StrictHostKeyChecking accept-new\n`),
      'HOST_KEY_CHANGED',
    );
  });

  test('StrictHostKeyChecking=no: a changed key is accepted with a warning and no password auth', async () => {
    const kh = writeFile('kh-changed3', khLine(pwServer.port, otherHostKey));
    const err = await connectFails(
      resolve('target', `Host target\n HostName 127.0.0.1\n Port ${pwServer.port}\n IdentityFile ${wrongKey.file}\n UserKnownHostsFile ${kh}\n StrictHostKeyChecking no\n`),
      'SSH_AUTH',
      { OUTRUN_PASSWORD: 'pw-123' },
    );
    assert.ok(err.warnings.some((w) => /REMOTE HOST IDENTIFICATION HAS CHANGED.*password authentication is disabled/.test(w)));
    assert.match(err.message, /\(tried: publickey [^,;]*id_wrong;/);
  });

  test('HostKeyAlias names the host in known_hosts (without port)', async () => {
    const kh = writeFile('kh-alias', `my-alias ${hostKey.pubLine}\n`);
    const { client } = await connect(
      resolve('target', `Host target\n HostName 127.0.0.1\n Port ${server.port}\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${kh}\n HostKeyAlias my-alias\n`),
    );
    await endClient(client);
  });

  test('known key types are offered first', () => {
    assert.deepEqual(orderHostKeyAlgorithms(['ssh-rsa']).slice(0, 4), ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa', 'ssh-ed25519']);
    assert.deepEqual(orderHostKeyAlgorithms(['ecdsa-sha2-nistp384']).slice(0, 2), ['ecdsa-sha2-nistp384', 'ssh-ed25519']);
    assert.equal(orderHostKeyAlgorithms([]).length, 7);
  });
});

describe('authentication', () => {
  test('a wrong client key fails with SSH_AUTH naming what was tried', async () => {
    const cfg = goodConfig().replace(clientKey.file, wrongKey.file);
    const err = await connectFails(resolve('target', cfg), 'SSH_AUTH');
    assert.match(err.message, /authentication to tester@127\.0\.0\.1 failed \(tried: publickey .*id_wrong; server allows: publickey\)/);
    assert.equal(err.hint, 'check -i, the ssh agent and the remote authorized_keys');
  });

  test('keys are tried in order: a wrong one, then the right one', async () => {
    const cfg = goodConfig().replace(` IdentityFile ${clientKey.file}\n`, ` IdentityFile ${wrongKey.file}\n IdentityFile ${clientKey.file}\n`);
    const { client, logs } = await connect(resolve('target', cfg));
    const tries = logs.filter((l) => l.startsWith('trying '));
    assert.equal(tries.length, 2);
    assert.match(tries[0], /id_wrong/);
    assert.match(tries[1], /id_client/);
    await endClient(client);
  });

  test('in BatchMode a passphrase-protected key is skipped with a -v line (no prompt)', async () => {
    const cfg = goodConfig().replace(clientKey.file, encryptedKey.file).replace(/\n*$/, '\n BatchMode yes\n');
    const err = await connectFails(resolve('target', cfg), 'SSH_AUTH');
    assert.ok(err.logs.some((l) => /id_encrypted is passphrase-protected: skipped/.test(l)), err.logs.join('\n'));
  });

  test('password from OUTRUN_PASSWORD (keyboard-interactive first), never logged', async () => {
    const kh = writeFile('kh-pw', khLine(pwServer.port, hostKey));
    const cfg = `Host target\n HostName 127.0.0.1\n Port ${pwServer.port}\n IdentityFile ${wrongKey.file}\n UserKnownHostsFile ${kh}\n`;
    pwServer.methods.length = 0;
    const { client, logs } = await connect(resolve('target', cfg), { OUTRUN_PASSWORD: 'pw-123' }, 3);
    assert.deepEqual(pwServer.methods, ['none', 'publickey', 'keyboard-interactive']);
    assert.ok(!logs.some((l) => l.includes('pw-123')), 'password in the log');
    await endClient(client);
  });

  test('a wrong OUTRUN_PASSWORD: SSH_AUTH listing every method, without the password', async () => {
    const kh = writeFile('kh-pw2', khLine(pwServer.port, hostKey));
    const cfg = `Host target\n HostName 127.0.0.1\n Port ${pwServer.port}\n IdentityFile ${wrongKey.file}\n UserKnownHostsFile ${kh}\n`;
    const err = await connectFails(resolve('target', cfg), 'SSH_AUTH', { OUTRUN_PASSWORD: 'hunter2-bad' });
    assert.match(err.message, /tried: publickey .*id_wrong, keyboard-interactive, password; server allows: publickey,password,keyboard-interactive\)/);
    assert.ok(!err.oneLine().includes('hunter2-bad'));
    assert.ok(!err.logs.some((l) => l.includes('hunter2-bad')));
  });

  test('ssh-agent keys (SSH_AUTH_SOCK), and IdentitiesOnly restricting them', async (t) => {
    const sock = path.join(tmp, 'agent.sock');
    const agent: ChildProcess = spawn('ssh-agent', ['-D', '-a', sock], { stdio: 'ignore' });
    t.after(() => agent.kill());
    for (let i = 0; i < 50 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 50));
    const add = spawnSync('ssh-add', [wrongKey.file, clientKey.file], { env: { SSH_AUTH_SOCK: sock }, encoding: 'utf8' });
    assert.equal(add.status, 0, add.stderr);
    const kh = writeFile('kh-agent', khLine(server.port, hostKey));
    const base = `Host target\n HostName 127.0.0.1\n Port ${server.port}\n UserKnownHostsFile ${kh}\n`;
    // No identity files: the agent's two keys.
    const a = await connect(resolve('target', base, { env: { SSH_AUTH_SOCK: sock } }));
    assert.ok(a.logs.some((l) => l === 'agent: offering 2 of 2 key(s)'), a.logs.join('\n'));
    assert.ok(a.logs.some((l) => /authenticated to .* with publickey \(agent\)/.test(l)));
    await endClient(a.client);
    // IdentitiesOnly with only the wrong key's public half named: the agent offers just that one.
    const only = `${base} IdentitiesOnly yes\n IdentityFile ${wrongKey.file}.pub\n`;
    const err = await connectFails(resolve('target', only, { env: { SSH_AUTH_SOCK: sock } }), 'SSH_AUTH');
    assert.ok(err.logs.some((l) => l === 'agent: offering 1 of 2 key(s) (IdentitiesOnly)'), err.logs.join('\n'));
    // The agent holds the passphrase-protected key's twin? No: an unreachable agent is not fatal.
    const gone = await connect(resolve('target', goodConfig(), { env: { SSH_AUTH_SOCK: path.join(tmp, 'no-such.sock') } }));
    assert.ok(gone.logs.some((l) => l.startsWith('agent: ')), gone.logs.join('\n'));
    await endClient(gone.client);
  });
});

describe('connection failures', () => {
  test('a closed port fails with SSH_CONNECT, address and port in one line', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const err = await connectFails(resolve('target', goodConfig(port)), 'SSH_CONNECT');
    assert.equal(err.message, `cannot connect to 127.0.0.1 port ${port}: connection refused`);
  });

  test('a server that hangs up at once fails with SSH_CONNECT', async () => {
    const rude = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => rude.listen(0, '127.0.0.1', () => r()));
    const port = (rude.address() as net.AddressInfo).port;
    const err = await connectFails(resolve('target', goodConfig(port)), 'SSH_CONNECT');
    assert.match(err.message, new RegExp(`connection to 127\\.0\\.0\\.1 port ${port} was (closed during the SSH handshake|reset during the SSH handshake)`));
    rude.close();
  });

  test('a server that never answers fails with SSH_TIMEOUT after ConnectTimeout', async () => {
    const silent = net.createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as net.AddressInfo).port;
    const started = Date.now();
    const err = await connectFails(resolve('target', goodConfig(port, ' ConnectTimeout 1\n')), 'SSH_TIMEOUT');
    assert.ok(Date.now() - started < 5000);
    assert.match(err.message, new RegExp(`timed out connecting to 127\\.0\\.0\\.1 port ${port} after 1 s`));
    silent.close();
  });

  test('a dead link is noticed in bounded time (ServerAliveInterval/CountMax)', async () => {
    // A relay we can freeze: bytes stop flowing both ways, the TCP connection stays up.
    let frozen = false;
    const relay = net.createServer((c) => {
      const up = net.connect(server.port, '127.0.0.1');
      c.on('data', (d) => frozen || up.write(d));
      up.on('data', (d) => frozen || c.write(d));
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
      c.on('close', () => up.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', () => r()));
    const port = (relay.address() as net.AddressInfo).port;
    const kh = writeFile('kh-relay', khLine(port, hostKey));
    const cfg = `Host target\n HostName 127.0.0.1\n Port ${port}\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${kh}\n ServerAliveInterval 1\n ServerAliveCountMax 2\n`;
    const { client, logs } = await connect(resolve('target', cfg));
    const started = Date.now();
    frozen = true;
    await closed(client);
    const took = Date.now() - started;
    assert.ok(took < 6000, `took ${took} ms`);
    assert.ok(logs.some((l) => /Keepalive timeout/.test(l)), logs.join('\n'));
    relay.close();
  });
});

describe('proxies', () => {
  test('ProxyCommand: a node TCP relay with %h %p expanded', async () => {
    const relay = `${process.execPath} -e "const s=require('net').connect(+process.argv[2],process.argv[1]);process.stdin.pipe(s);s.pipe(process.stdout);s.on('error',()=>process.exit(1))"`;
    const cfg = goodConfig(server.port, ` ProxyCommand ${relay} %h %p\n`);
    const r = resolve('target', cfg);
    assert.ok(r.proxyCommand!.endsWith(` 127.0.0.1 ${server.port}`));
    const { client, logs } = await connect(r);
    assert.equal(await execOn(client, 'via proxy'), 'ran via proxy\n');
    assert.ok(logs.some((l) => l.startsWith('running ProxyCommand: ')));
    await endClient(client);
  });

  test('a ProxyCommand that exits early fails with PROXY_FAILED', async () => {
    const err = await connectFails(resolve('target', goodConfig(server.port, " ProxyCommand sh -c 'exit 3'\n")), 'PROXY_FAILED');
    assert.match(err.message, /ProxyCommand for 127\.0\.0\.1 exited with status 3 before the SSH handshake/);
  });

  test('ProxyJump through a second server that allows direct-tcpip, each hop with its own config', async () => {
    const jump = await startServer({ hostKey: jumpHostKey, clientKeys: [wrongKey], forwarding: true });
    try {
      const khJump = writeFile('kh-jump', khLine(jump.port, jumpHostKey));
      const cfg =
        goodConfig(server.port, ' ProxyJump jumper\n') +
        `Host jumper\n HostName 127.0.0.1\n Port ${jump.port}\n User jumpuser\n IdentityFile ${wrongKey.file}\n UserKnownHostsFile ${khJump}\n`;
      const { client, logs } = await connect(resolve('target', cfg));
      assert.equal(await execOn(client, 'through the jump'), 'ran through the jump\n');
      assert.deepEqual(jump.forwards, [`127.0.0.1:${server.port}`]);
      assert.ok(logs.some((l) => l === `connecting to jump host jumpuser@127.0.0.1 port ${jump.port} for 127.0.0.1`), logs.join('\n'));
      assert.ok(logs.some((l) => /connecting to tester@127\.0\.0\.1 port \d+ via 127\.0\.0\.1/.test(l)));
      await endClient(client);
      // The jump connection goes away with the target's; its sshd got the Nagle nudge (an exec).
      assert.deepEqual(jump.execs, ['true']);
    } finally {
      await jump.close();
    }
  });

  test('ProxyJump chain of two hops given as -J style overrides', async () => {
    const j1 = await startServer({ hostKey: jumpHostKey, clientKeys: [clientKey], forwarding: true });
    const j2 = await startServer({ hostKey: otherHostKey, clientKeys: [clientKey], forwarding: true });
    try {
      const kh = writeFile('kh-chain', khLine(j1.port, jumpHostKey) + khLine(j2.port, otherHostKey) + khLine(server.port, hostKey));
      const cfg = `Host *\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${kh}\n`;
      const r = resolve('127.0.0.1', cfg, { port: server.port, overrides: { ProxyJump: `127.0.0.1:${j1.port},127.0.0.1:${j2.port}` } });
      const { client } = await connect(r);
      assert.equal(await execOn(client, 'two hops'), 'ran two hops\n');
      assert.deepEqual(j1.forwards, [`127.0.0.1:${j2.port}`]);
      assert.deepEqual(j2.forwards, [`127.0.0.1:${server.port}`]);
      await endClient(client);
    } finally {
      await j1.close();
      await j2.close();
    }
  });

  test('a jump host that refuses forwarding: PROXY_FAILED', async () => {
    const jump = await startServer({ hostKey: jumpHostKey, clientKeys: [clientKey], forwarding: false });
    try {
      const khJump = writeFile('kh-jump2', khLine(jump.port, jumpHostKey));
      const cfg =
        goodConfig(server.port, ' ProxyJump jumper\n') +
        `Host jumper\n HostName 127.0.0.1\n Port ${jump.port}\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${khJump}\n`;
      const err = await connectFails(resolve('target', cfg), 'PROXY_FAILED');
      assert.match(err.message, new RegExp(`jump host 127\\.0\\.0\\.1 refused to forward to 127\\.0\\.0\\.1 port ${server.port}`));
    } finally {
      await jump.close();
    }
  });

  test('a jump host that cannot reach the target: SSH_CONNECT naming the jump host', async () => {
    const jump = await startServer({ hostKey: jumpHostKey, clientKeys: [clientKey], forwarding: true });
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const closedPort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    try {
      const khJump = writeFile('kh-jump3', khLine(jump.port, jumpHostKey));
      const cfg =
        goodConfig(closedPort, ' ProxyJump jumper\n') +
        `Host jumper\n HostName 127.0.0.1\n Port ${jump.port}\n IdentityFile ${clientKey.file}\n UserKnownHostsFile ${khJump}\n`;
      const err = await connectFails(resolve('target', cfg), 'SSH_CONNECT');
      assert.match(err.message, new RegExp(`cannot connect to 127\\.0\\.0\\.1 port ${closedPort} via jump host 127\\.0\\.0\\.1`));
    } finally {
      await jump.close();
    }
  });

  test('a ProxyJump loop in the config is cut off', async () => {
    const cfg = `Host *\n HostName 127.0.0.1\n ProxyJump loop\n Port ${server.port}\n`;
    await connectFails(resolve('target', cfg), 'PROXY_FAILED');
  });
});
