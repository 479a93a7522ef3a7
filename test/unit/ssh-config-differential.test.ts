// Differential: for every config of the corpus and every destination, the values outrun resolves
// equal what OpenSSH itself resolves (`ssh -G`, which reads the config and prints the result
// without connecting), for each key outrun honours. Where a key is left at its default, outrun's
// own default is expected instead (outrun deliberately differs there: ConnectTimeout 20,
// ServerAliveInterval 5, three default identity files).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, test } from 'node:test';
import { parseArgs, toResolveOptions } from '../../src/client/cli-args';
import { expandTokens, resolveSshConfig, type ResolvedHost } from '../../src/client/ssh-config';
import { CORPUS } from './ssh-config-corpus';

// ssh takes the home directory and user name from the password database, not from $HOME.
const HOME = os.userInfo().homedir;
const LOCAL_USER = os.userInfo().username;
const KEYS = [
  'hostname', 'user', 'port', 'identityfile', 'identitiesonly', 'userknownhostsfile', 'globalknownhostsfile',
  'stricthostkeychecking', 'hostkeyalias', 'proxyjump', 'proxycommand', 'connecttimeout', 'serveraliveinterval',
  'serveralivecountmax', 'batchmode', 'identityagent', 'compression', 'sendenv',
] as const;
type Key = (typeof KEYS)[number];
type Values = Partial<Record<Key, string>>;

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'outrun-ssh-g-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/** `ssh -G`'s values for the keys above; list keys (identityfile) joined with newlines. */
function sshG(args: string[]): Values {
  const r = spawnSync('ssh', ['-G', ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME }, timeout: 10_000 });
  assert.equal(r.error, undefined, 'ssh missing: scripts/system-packages test installs openssh-client');
  assert.equal(r.status, 0, `ssh -G ${args.join(' ')} failed: ${r.stderr}`);
  const out: Values = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S+) (.*)$/.exec(line);
    if (!m || !(KEYS as readonly string[]).includes(m[1])) continue;
    const key = m[1] as Key;
    out[key] = out[key] === undefined ? m[2] : `${out[key]}\n${m[2]}`;
  }
  return out;
}

/** ssh -G prints IdentityFile and ProxyCommand before their tokens and `~` are expanded (the
 * known hosts files after): expand them with the values ssh itself resolved. */
function expandedLikeSsh(values: Values, originalHost: string): Values {
  const l = os.hostname();
  const tokens: Record<string, string> = {
    h: values.hostname!, p: values.port!, r: values.user!, n: originalHost, u: LOCAL_USER, d: HOME,
    l, L: l.split('.')[0]!, i: String(process.getuid!()), k: values.hostkeyalias ?? originalHost,
    j: values.proxyjump ?? '',
  };
  tokens.C = createHash('sha1').update(`${l}${tokens.h}${tokens.p}${tokens.r}${tokens.j}`).digest('hex');
  const expand = (v: string) => expandTokens(v, tokens, 'test').replace(/^~(?=\/|$)/, HOME);
  const out = { ...values };
  if (out.identityfile !== undefined) out.identityfile = out.identityfile.split('\n').map(expand).join('\n');
  if (out.proxycommand !== undefined) out.proxycommand = expandTokens(out.proxycommand, tokens, 'test');
  return out;
}

/** outrun's resolution in ssh -G's spelling. */
function asSshG(r: ResolvedHost): Values {
  const yn = (b: boolean) => (b ? 'yes' : 'no');
  const out: Values = {
    hostname: r.hostName,
    user: r.user,
    port: String(r.port),
    identityfile: r.identityFiles.join('\n'),
    identitiesonly: yn(r.identitiesOnly),
    userknownhostsfile: r.userKnownHostsFiles.join(' ') || 'none',
    globalknownhostsfile: r.globalKnownHostsFiles.join(' ') || 'none',
    stricthostkeychecking: { yes: 'true', no: 'false', ask: 'ask', 'accept-new': 'accept-new' }[r.strictHostKeyChecking],
    connecttimeout: r.connectTimeout === 0 ? 'none' : String(r.connectTimeout),
    serveraliveinterval: String(r.serverAliveInterval),
    serveralivecountmax: String(r.serverAliveCountMax),
    batchmode: yn(r.batchMode),
    compression: yn(r.compression),
  };
  if (r.hostKeyAlias !== undefined) out.hostkeyalias = r.hostKeyAlias;
  if (r.proxyJump !== undefined) out.proxyjump = r.proxyJump;
  if (r.proxyCommand !== undefined) out.proxycommand = r.proxyCommand;
  if (r.identityAgent !== undefined) out.identityagent = r.identityAgent;
  if (r.sendEnv.length) out.sendenv = r.sendEnv.join('\n');
  return out;
}

function outrun(argv: string[], warnings: string[]): ResolvedHost {
  const parsed = parseArgs([...argv, 'true']);
  assert.equal(parsed.action, 'run');
  if (parsed.action !== 'run') throw new Error('unreachable');
  return resolveSshConfig({
    ...toResolveOptions(parsed),
    home: HOME,
    localUser: LOCAL_USER,
    env: {},
    warn: (m) => warnings.push(m),
  });
}

describe('ssh_config resolved as ssh -G resolves it', () => {
  for (const c of CORPUS) {
    test(c.name, () => {
      const dir = path.join(scratch, c.name.replace(/[^a-z0-9]+/gi, '-'));
      for (const [name, text] of Object.entries(c.files)) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        fs.writeFileSync(path.join(dir, name), text.replaceAll('@DIR@', dir));
      }
      const config = path.join(dir, 'config');
      for (const dest of c.destinations) {
        const argv = ['-F', config, ...(c.args ?? []), dest];
        const originalHost = dest.replace(/^.*@/, '');
        const ssh = expandedLikeSsh(sshG(argv), originalHost);
        const sshDefault = expandedLikeSsh(sshG(['-F', 'none', originalHost]), originalHost);
        // Under BatchMode, ssh's keepalive default is 300 s (outrun keeps its own, 5 s).
        const batch = ['-o', `BatchMode=${ssh.batchmode}`];
        sshDefault.serveraliveinterval = sshG(['-F', 'none', ...batch, originalHost]).serveraliveinterval;
        const warnings: string[] = [];
        const ours = asSshG(outrun(argv, warnings));
        const oursDefault = asSshG(outrun(['-F', 'none', originalHost], []));
        for (const key of KEYS) {
          const expected = ssh[key] === sshDefault[key] ? oursDefault[key] : ssh[key];
          assert.equal(ours[key], expected, `${dest}: ${key} (ssh -G: ${JSON.stringify(ssh[key])})`);
        }
        assert.deepEqual(warnings, [], `${dest}: no warnings expected`);
      }
    });
  }
});
