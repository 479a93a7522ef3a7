// The configs the differential test gives both to OpenSSH (`ssh -G`) and to outrun's parser.
// `@DIR@` stands for the case's own directory (Include paths, files named in values).

export interface ConfigCase {
  name: string;
  /** File name (relative to the case directory) => text. `config` is the one given to -F. */
  files: Record<string, string>;
  /** Destinations, each resolved with the arguments below ([user@]host). */
  destinations: string[];
  /** Extra ssh arguments: -o KEY=VALUE, -l USER, -p PORT (the subset outrun shares). */
  args?: string[];
}

export const CORPUS: ConfigCase[] = [
  {
    name: 'SendEnv gathers every line, -o too; -PATTERN takes back what it matches',
    files: {
      config: `
SendEnv LANG LC_*
Host box
  SendEnv FOO BAR_?
  SendEnv -LC_*
Host *
  SendEnv LANG ZED
`,
    },
    destinations: ['box', 'other'],
    args: ['-o', 'SendEnv=CLI_ONE', '-o', 'SendEnv=CLI_TWO'],
  },
  {
    name: 'first value wins, options before any Host apply to all',
    files: {
      config: `
Port 2201
Host box
  Port 2202
  User alice
  HostName 10.1.2.3
Host *
  User bob
  ConnectTimeout 7
  ServerAliveInterval 2m
  ServerAliveCountMax 9
`,
    },
    destinations: ['box', 'other', 'carol@box'],
  },
  {
    name: 'Host patterns: *, ?, negation, several per line, case as typed',
    files: {
      config: `
Host web?? !web13 *.lan
  User pattern
Host Web*
  Port 1111
Host db-* !db-test*
  Port 2222
Host *
  HostName %h.example
`,
    },
    destinations: ['web12', 'web13', 'web1', 'x.lan', 'db-prod', 'db-test1', 'Web12', 'WEB12'],
  },
  {
    name: 'Key=Value forms, quotes, comments, case-insensitive keywords',
    files: {
      config: `
host=box
  hostname = "10.9.8.7"
  USER=quoted   # a comment
  IdentityFile "@DIR@/key with space"
  identityfile=@DIR@/second
  BatchMode yes
  Compression=yes
  IdentitiesOnly yes
`,
    },
    destinations: ['box'],
  },
  {
    name: '% tokens in HostName, IdentityFile, UserKnownHostsFile, ProxyCommand, HostKeyAlias',
    files: {
      config: `
Host t-*
  HostName %h.tokens.example
  User tok
  Port 2022
  IdentityFile @DIR@/id_%r_%h_%p_%n
  IdentityFile @DIR@/id_%u_%%_%C
  UserKnownHostsFile @DIR@/kh_%h @DIR@/kh2_%k
  GlobalKnownHostsFile @DIR@/global_%n
  HostKeyAlias alias-%h
  ProxyCommand nc %h %p # after %r
`,
    },
    destinations: ['t-one', 'x@t-two'],
  },
  {
    name: 'Match host, originalhost, user, localuser, all, negation',
    files: {
      config: `
Host short
  HostName long.example
Match host long.example
  Port 3001
Match originalhost short user deploy
  IdentityFile @DIR@/deploy
Match !originalhost short
  Port 3002
Match localuser root,nobody user !mallory
  ConnectTimeout 11
Match all
  User fallback
`,
    },
    destinations: ['short', 'deploy@short', 'mallory@other', 'other'],
  },
  {
    name: 'Match exec with tokens, and final',
    files: {
      config: `
Host e-*
  HostName %h.exec.example
Match exec "test %h = e-yes.exec.example"
  Port 4001
Match exec "exit 1"
  Port 4002
Match final host *.exec.example
  User finaluser
Match final
  ServerAliveInterval 17
Host *
  Port 4003
`,
    },
    destinations: ['e-yes', 'e-no', 'plain'],
  },
  {
    name: 'Include with globs, in order, inside a matching Host only',
    files: {
      config: `
Include @DIR@/conf.d/*.conf
Host inc
  Include @DIR@/host-only
Host *
  Port 5009
`,
      'conf.d/10-a.conf': 'Host a-*\n  Port 5001\n  User from-a\n',
      'conf.d/20-b.conf': 'Host a-* b-*\n  Port 5002\n  User from-b\n  HostName b.example\n',
      'conf.d/ignored.txt': 'Host *\n  Port 5999\n',
      'host-only': 'Port 5003\nUser from-host-only\n',
    },
    destinations: ['a-1', 'b-1', 'inc', 'none'],
  },
  {
    name: '-o overrides, -l and -p beat the files',
    files: {
      config: `
Host box
  Port 6001
  User fileuser
  ConnectTimeout 3
  StrictHostKeyChecking accept-new
  ProxyJump j1,u@j2:2222
`,
    },
    destinations: ['box', 'other'],
    args: ['-o', 'ConnectTimeout=9', '-o', 'Port=6002', '-l', 'cliuser', '-o', 'User=ignored', '-o', 'ServerAliveCountMax=1'],
  },
  {
    name: 'StrictHostKeyChecking forms, known hosts files none, ProxyJump none',
    files: {
      config: `
Host no
  StrictHostKeyChecking no
Host off
  StrictHostKeyChecking off
Host yes
  StrictHostKeyChecking yes
Host *
  UserKnownHostsFile none
  ProxyJump none
  ProxyCommand nc never used
`,
    },
    destinations: ['no', 'off', 'yes', 'ask'],
  },
  {
    name: 'ProxyJump and ProxyCommand share one slot; none takes it, except ProxyJump none',
    files: {
      config: `
Host cmd-none
  ProxyCommand none
Host jump-none
  ProxyJump none
Host *-none
  ProxyJump j1
  ProxyCommand nc %h %p
Host jump-first
  ProxyJump u@j2:2200,j3
  ProxyCommand nc never
`,
    },
    destinations: ['cmd-none', 'jump-none', 'jump-first', 'x-none'],
  },
  {
    name: '-J on the command line beats the files',
    files: { config: 'Host *\n  ProxyJump fromfile\n' },
    destinations: ['box'],
    args: ['-J', 'fromcli:2222'],
  },
  {
    name: 'case: Match user exactly, Match host in any case, HostName lower-cased',
    files: {
      config: `
Host caps
  HostName Big.Example.COM
Match host BIG.example.com
  Port 7001
Match user Deploy
  ConnectTimeout 5
Match originalhost CAPS
  ServerAliveCountMax 8
Host *
  IdentityAgent %d/agent-%u.sock
`,
    },
    destinations: ['caps', 'Deploy@caps', 'deploy@caps'],
  },
  {
    name: 'Match canonical and final apply in the second pass only',
    files: {
      config: `
Match canonical
  Port 8001
Match !final
  User firstpass
Match final
  User finalpass
  ConnectTimeout 13
`,
    },
    destinations: ['anything'],
  },
];
