// What outrun does with each ssh_config(5) keyword of OpenSSH's client.
//
// - honoured: read and used (src/client/ssh-config.ts applies them);
// - no-effect: does not change where or how outrun connects (logging, forwarding options that
//   only act with a forward, settings outrun has anyway): accepted without a word;
// - unsupported: would change where or how to connect, and outrun does not do it: reported on
//   stderr (once per keyword), unless its value is one of `neutral` (the value that asks for
//   nothing, e.g. `ControlMaster no`).
//
// To support a keyword, move it to `honoured` here and apply it in ssh-config.ts; nothing else
// refers to the lists.

export type KeywordUse =
  | { use: 'honoured' }
  | { use: 'no-effect' }
  | { use: 'unsupported'; what: string; neutral: readonly string[] };

const honoured = { use: 'honoured' } as const;
const noEffect = { use: 'no-effect' } as const;
function unsupported(what: string, ...neutral: string[]): KeywordUse {
  return { use: 'unsupported', what, neutral };
}

/** Keyed by the lower-cased keyword. Host, Match, Include and IgnoreUnknown are the syntax's own. */
export const SSH_CONFIG_KEYWORDS: Readonly<Record<string, KeywordUse>> = {
  // Where to connect, as whom, and how the host key is checked.
  hostname: honoured,
  user: honoured,
  port: honoured,
  proxyjump: honoured,
  proxycommand: honoured,
  hostkeyalias: honoured,
  userknownhostsfile: honoured,
  globalknownhostsfile: honoured,
  stricthostkeychecking: honoured,
  connecttimeout: honoured,
  serveraliveinterval: honoured,
  serveralivecountmax: honoured,
  batchmode: honoured,
  compression: honoured,
  identityfile: honoured,
  identitiesonly: honoured,
  identityagent: honoured,
  // The local variables a --no-chroot command gets (a chroot one gets the whole environment).
  sendenv: honoured,

  // Connection sharing (issue 11 adds it).
  controlmaster: unsupported('connection sharing', 'no'),
  controlpath: unsupported('connection sharing', 'none'),
  controlpersist: unsupported('connection sharing', 'no'),

  // Where and how the TCP connection is made.
  addressfamily: unsupported('the address family', 'any'),
  bindaddress: unsupported('the local address'),
  bindinterface: unsupported('the local interface'),
  connectionattempts: unsupported('several connection attempts', '1'),
  canonicalizehostname: unsupported('host name canonicalization', 'no'),
  proxyusefdpass: unsupported('a ProxyCommand passing a descriptor', 'no'),
  channeltimeout: unsupported('channel timeouts', 'none'),

  // The transport's algorithms.
  ciphers: unsupported('the cipher list'),
  macs: unsupported('the MAC list'),
  kexalgorithms: unsupported('the key exchange list'),
  hostkeyalgorithms: unsupported('the host key algorithm list'),
  pubkeyacceptedalgorithms: unsupported('the public key algorithm list'),
  pubkeyacceptedkeytypes: unsupported('the public key algorithm list'),
  hostbasedacceptedalgorithms: unsupported('host-based authentication'),
  hostbasedkeytypes: unsupported('host-based authentication'),
  casignaturealgorithms: unsupported('the CA signature algorithm list'),
  requiredrsasize: unsupported('a minimum RSA key size'),
  rekeylimit: unsupported('rekeying limits', 'default none'),

  // Authentication.
  pubkeyauthentication: unsupported('turning public key authentication off', 'yes'),
  passwordauthentication: unsupported('turning password authentication off', 'yes'),
  kbdinteractiveauthentication: unsupported('turning keyboard-interactive authentication off', 'yes'),
  challengeresponseauthentication: unsupported('turning keyboard-interactive authentication off', 'yes'),
  hostbasedauthentication: unsupported('host-based authentication', 'no'),
  preferredauthentications: unsupported('the order of authentication methods'),
  numberofpasswordprompts: unsupported('the number of password prompts', '3'),
  kbdinteractivedevices: unsupported('keyboard-interactive devices'),
  certificatefile: unsupported('certificates'),
  pkcs11provider: unsupported('PKCS#11 keys', 'none'),
  securitykeyprovider: unsupported('security keys', 'internal'),
  // An authentication method outrun does not offer: a server that insists on it refuses the
  // login, which outrun reports as an authentication failure (Debian turns it on for every host).
  gssapiauthentication: noEffect,
  gssapidelegatecredentials: noEffect,
  gssapikeyexchange: noEffect,
  gssapiclientidentity: noEffect,
  gssapiserveridentity: noEffect,
  gssapirenewalforcesrekey: noEffect,
  gssapitrustdns: noEffect,
  gssapikexalgorithms: noEffect,

  // Host keys.
  checkhostip: unsupported('checking the address in known_hosts', 'no'),
  verifyhostkeydns: unsupported('host keys from DNS', 'no'),
  revokedhostkeys: unsupported('a revoked host keys file', 'none'),
  knownhostscommand: unsupported('a known hosts command', 'none'),
  nohostauthenticationforlocalhost: unsupported('skipping host key checks for localhost', 'no'),
  hashknownhosts: unsupported('unhashed known_hosts entries (outrun always hashes)', 'yes'),
  updatehostkeys: noEffect,
  fingerprinthash: noEffect,
  visualhostkey: noEffect,

  // What the session does besides the command.
  forwardagent: unsupported('agent forwarding', 'no'),
  forwardx11: unsupported('X11 forwarding', 'no'),
  forwardx11trusted: noEffect,
  forwardx11timeout: noEffect,
  xauthlocation: noEffect,
  localforward: unsupported('port forwarding'),
  remoteforward: unsupported('port forwarding'),
  dynamicforward: unsupported('port forwarding'),
  tunnel: unsupported('tunnel devices', 'no'),
  tunneldevice: noEffect,
  clearallforwardings: noEffect,
  exitonforwardfailure: noEffect,
  gatewayports: noEffect,
  permitremoteopen: noEffect,
  streamlocalbindmask: noEffect,
  streamlocalbindunlink: noEffect,
  remotecommand: unsupported('a remote command (outrun runs the one given to it)', 'none'),
  requesttty: unsupported('RequestTTY (use -t or -T)', 'auto'),
  sessiontype: unsupported('session types', 'default'),
  stdinnull: unsupported('StdinNull', 'no'),
  forkafterauthentication: unsupported('going to the background', 'no'),
  permitlocalcommand: unsupported('a local command after connecting', 'no'),
  localcommand: noEffect, // only with PermitLocalCommand
  setenv: unsupported('SetEnv (the command gets the local environment)'),
  tcpkeepalive: noEffect, // outrun has its own keepalives (ServerAliveInterval)
  keepalive: noEffect,
  ipqos: noEffect,

  // Names only canonicalization uses (reported through CanonicalizeHostname).
  canonicaldomains: noEffect,
  canonicalizefallbacklocal: noEffect,
  canonicalizemaxdots: noEffect,
  canonicalizepermittedcnames: noEffect,

  // The local user interface, logging.
  addkeystoagent: noEffect,
  usekeychain: noEffect,
  escapechar: noEffect,
  enableescapecommandline: noEffect,
  obscurekeystroketiming: noEffect,
  loglevel: noEffect,
  logverbose: noEffect,
  syslogfacility: noEffect,
  enablesshkeysign: noEffect,
  tag: noEffect,

  // Deprecated or removed from OpenSSH; ssh itself ignores them.
  protocol: noEffect,
  cipher: noEffect,
  compressionlevel: noEffect,
  useprivilegedport: noEffect,
  useroaming: noEffect,
  rsaauthentication: noEffect,
  rhostsrsaauthentication: noEffect,
  fallbacktorsh: noEffect,
  usersh: noEffect,
  identityfile2: noEffect,
  globalknownhostsfile2: noEffect,
  userknownhostsfile2: noEffect,
  smartcarddevice: noEffect,
};

/** What outrun does with `keyword` (any case); undefined when it is no ssh_config keyword known here. */
export function keywordUse(keyword: string): KeywordUse | undefined {
  return Object.hasOwn(SSH_CONFIG_KEYWORDS, keyword.toLowerCase()) ? SSH_CONFIG_KEYWORDS[keyword.toLowerCase()] : undefined;
}
