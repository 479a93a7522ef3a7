// What a run needs from the remote, found out with one exec of a POSIX sh script, and judged
// item by item. A run (bootstrap.ts) refuses with the first missing item; `outrun --check`
// (doctor.ts) prints them all. One judgement for both: --check says yes exactly when a run
// would not refuse.
import type { ErrorCode } from './errors';
import { shellQuote } from './shell-quote';

export const PROBE_TAG = 'outrun-probe:';
export const ROOT_CACHE = '/var/cache/outrun';

/** Facts, each as the remote printed it (the wire is not trusted: everything is parsed here). */
export interface Probe {
  os: string;
  machine: string;
  uid: string;
  user: string;
  home: string;
  kernel: string;
  /** /dev/fuse: present (a character device), and readable and writable by the login. */
  fuse: boolean;
  fuseAccess: boolean;
  fuseMode: string;
  /** `fuse` in /proc/filesystems. */
  fuseFs: boolean;
  /** Sysctls that forbid unprivileged user namespaces ('' when absent). */
  usernsClone: string;
  maxUserNs: string;
  apparmorUserns: string;
  /** Whether `unshare -U true` worked ('' when the remote has no unshare), and the Seccomp:
   * mode of /proc/self/status (2: a filter, which may be what refuses it). */
  usernsTry: string;
  seccomp: string;
  newuidmap: boolean;
  subuid: boolean;
  subgid: boolean;
  /** Kilobytes free where the runtime goes (NaN: unknown). */
  freeKb: number;
  complete: boolean;
  cat: boolean;
  sftp: boolean;
  /** 1-minute load average and CPU count (a pool's placement; undefined: unknown). */
  load1?: number;
  cpus?: number;
  /** binfmt_misc, probed only on a remote of another architecture than this machine's
   * (undefined: not probed or not mounted there). */
  binfmt?: { enabled: boolean; entries: BinfmtEntry[] };
}

/** One binfmt_misc handler, as its /proc/sys/fs/binfmt_misc/NAME file describes it. */
export interface BinfmtEntry {
  name: string;
  enabled: boolean;
  interpreter: string;
  flags: string;
  offset: number;
  /** Raw bytes (a magic handler; extension handlers have none and never match an ELF file). */
  magic?: Buffer;
  mask?: Buffer;
}

/** `uname -m` spellings of each machine outrun has a runtime for, as the probe's case patterns. */
const MACHINE_ALIASES: Record<string, string[]> = { x86_64: ['x86_64', 'amd64'], aarch64: ['aarch64', 'arm64'] };

/** The cache base of a login: /var/cache/outrun for root, ~/.cache/outrun otherwise. */
export function cacheBaseOf(uid: string, home: string): string {
  return uid === '0' ? ROOT_CACHE : `${home.replace(/\/+$/, '')}/.cache/outrun`;
}

/** The probe: facts on tagged lines (login scripts may print their own noise on stdout). The
 * runtime root depends on the login, so the script picks it (or takes cacheRoot); the runtime
 * (its id, from `runtimeIds` by machine) depends on the remote's architecture, so it picks that
 * too. On an architecture other than `localMachine` it also lists the binfmt_misc handlers (can
 * the remote run this machine's programs?). */
export function probeScript(runtimeIds: Record<string, string>, localMachine: string, cacheRoot?: string): string {
  const t = PROBE_TAG;
  const q = (s: string) => shellQuote([s]);
  const cases = Object.entries(runtimeIds)
    .map(([m, id]) => `${(MACHINE_ALIASES[m] ?? [m]).map(q).join('|')}) id=${q(id)};;`)
    .join(' ');
  const local = (MACHINE_ALIASES[localMachine] ?? [localMachine]).map(q).join('|');
  const bm = '/proc/sys/fs/binfmt_misc';
  return [
    `printf '${t}os=%s\\n' "$(uname -s 2>/dev/null)"`,
    `printf '${t}machine=%s\\n' "$(uname -m 2>/dev/null)"`,
    `printf '${t}kernel=%s\\n' "$(uname -r 2>/dev/null)"`,
    `printf '${t}load=%s\\n' "$(cut -d' ' -f1 /proc/loadavg 2>/dev/null)"`,
    `printf '${t}cpus=%s\\n' "$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo 2>/dev/null)"`,
    `u=$(id -u 2>/dev/null) || u=`,
    `[ -n "$u" ] || while read -r k v rest; do [ "$k" = Uid: ] && u=$v; done </proc/self/status`,
    `printf '${t}uid=%s\\n' "$u"`,
    `printf '${t}user=%s\\n' "$(id -un 2>/dev/null || echo "$USER")"`,
    `printf '${t}home=%s\\n' "$HOME"`,
    `if [ -c /dev/fuse ]; then echo ${t}fuse=1; else echo ${t}fuse=0; fi`,
    `if [ -r /dev/fuse ] && [ -w /dev/fuse ]; then echo ${t}fuseaccess=1; else echo ${t}fuseaccess=0; fi`,
    `printf '${t}fusemode=%s\\n' "$(ls -lL /dev/fuse 2>/dev/null | { read -r m n o g rest; echo "$m $o:$g"; })"`,
    `if grep -qw fuse /proc/filesystems 2>/dev/null; then echo ${t}fusefs=1; else echo ${t}fusefs=0; fi`,
    `printf '${t}usernsclone=%s\\n' "$(cat /proc/sys/kernel/unprivileged_userns_clone 2>/dev/null)"`,
    `printf '${t}maxuserns=%s\\n' "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null)"`,
    `printf '${t}apparmoruserns=%s\\n' "$(cat /proc/sys/kernel/apparmor_restrict_unprivileged_userns 2>/dev/null)"`,
    `if command -v unshare >/dev/null 2>&1; then if unshare -U true >/dev/null 2>&1; then echo ${t}usernstry=1; else echo ${t}usernstry=0; fi; fi`,
    `printf '${t}seccomp=%s\\n' "$(sed -n 's/^Seccomp:[[:space:]]*//p' /proc/self/status 2>/dev/null)"`,
    `n=0; for d in /usr/bin /bin /usr/sbin /sbin /usr/local/bin; do [ -x $d/newuidmap ] && [ -x $d/newgidmap ] && n=1; done; echo ${t}newuidmap=$n`,
    `un=$(id -un 2>/dev/null)`,
    `s=0; grep -qE "^($un|$u):[0-9]+:[1-9]" /etc/subuid 2>/dev/null && s=1; echo ${t}subuid=$s`,
    `s=0; grep -qE "^($un|$u):[0-9]+:[1-9]" /etc/subgid 2>/dev/null && s=1; echo ${t}subgid=$s`,
    cacheRoot
      ? `r=${q(cacheRoot)}`
      : `if [ "$u" = 0 ]; then r=${ROOT_CACHE}/runtime; else r="$HOME/.cache/outrun/runtime"; fi`,
    // Free space of the nearest directory that exists on the way to the runtime root.
    `d=$r; while [ ! -d "$d" ] && [ "$d" != / ]; do d=$(dirname "$d"); done`,
    `printf '${t}freekb=%s\\n' "$(df -Pk "$d" 2>/dev/null | { read -r h; read -r f b us av rest; echo "$av"; })"`,
    `if command -v cat >/dev/null 2>&1; then echo ${t}cat=1; else echo ${t}cat=0; fi`,
    `s=0; for f in /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server /usr/lib/ssh/sftp-server /usr/libexec/sftp-server; do [ -x $f ] && s=1; done; echo ${t}sftp=$s`,
    `case $(uname -m) in ${cases} *) id=;; esac`,
    // Each handler on one line: NAME|its file's lines joined by '|'.
    `case $(uname -m) in ${local}) ;; *) if [ -r ${bm}/status ]; then ` +
      `printf '${t}binfmtstatus=%s\\n' "$(cat ${bm}/status 2>/dev/null)"; ` +
      `for f in ${bm}/*; do n=\${f##*/}; case $n in register|status|'*') continue;; esac; ` +
      `printf '${t}binfmt=%s|%s\\n' "$n" "$(tr '\\n' '|' <"$f" 2>/dev/null)"; done; fi;; esac`,
    // Touch the marker so that cache collection removes the least recently used runtimes.
    `m="$r/$id/.complete"`,
    `if [ -n "$id" ] && [ -f "$m" ]; then touch -c "$m" 2>/dev/null; echo ${t}complete=1; else echo ${t}complete=0; fi`,
  ].join('; ');
}

export function parseProbe(out: string): Probe | undefined {
  const kv = new Map<string, string>();
  const handlers: BinfmtEntry[] = [];
  for (const line of out.split('\n')) {
    const i = line.indexOf(PROBE_TAG);
    if (i < 0) continue;
    const rest = line.slice(i + PROBE_TAG.length).trim();
    const eq = rest.indexOf('=');
    if (eq <= 0) continue;
    const key = rest.slice(0, eq);
    const value = rest.slice(eq + 1).slice(0, 4096);
    if (key !== 'binfmt') kv.set(key, value);
    else if (handlers.length < 256) {
      const h = parseBinfmtEntry(value);
      if (h) handlers.push(h);
    }
  }
  if (!kv.has('complete')) return undefined;
  const flag = (k: string) => kv.get(k) === '1';
  const text = (k: string) => (kv.get(k) ?? '').replace(/[^\x20-\x7e]/g, '?');
  const free = text('freekb');
  return {
    os: text('os'),
    machine: text('machine'),
    uid: /^\d+$/.test(text('uid')) ? text('uid') : '',
    user: text('user'),
    home: text('home'),
    kernel: text('kernel'),
    fuse: flag('fuse'),
    fuseAccess: flag('fuseaccess'),
    fuseMode: text('fusemode').trim(),
    fuseFs: flag('fusefs'),
    usernsClone: text('usernsclone'),
    maxUserNs: text('maxuserns'),
    apparmorUserns: text('apparmoruserns'),
    usernsTry: text('usernstry'),
    seccomp: text('seccomp'),
    newuidmap: flag('newuidmap'),
    subuid: flag('subuid'),
    subgid: flag('subgid'),
    freeKb: /^\d+$/.test(free) ? Number(free) : NaN,
    complete: flag('complete'),
    // Unknown (not printed) is not a refusal: the upload then finds out for itself.
    cat: kv.get('cat') !== '0',
    sftp: kv.get('sftp') !== '0',
    ...(/^\d{1,6}(\.\d{1,3})?$/.test(text('load')) ? { load1: Number(text('load')) } : {}),
    ...(/^[1-9]\d{0,5}$/.test(text('cpus')) ? { cpus: Number(text('cpus')) } : {}),
    ...(kv.has('binfmtstatus') ? { binfmt: { enabled: kv.get('binfmtstatus') === 'enabled', entries: handlers } } : {}),
  };
}

/** NAME|enabled|interpreter PATH|flags: F|offset 0|magic HEX|mask HEX| (binfmt_misc's own
 * format, one file per handler), or undefined when it is not that. */
export function parseBinfmtEntry(value: string): BinfmtEntry | undefined {
  const [name, state, ...lines] = value.split('|');
  if (!name || !/^[A-Za-z0-9._+-]{1,64}$/.test(name) || (state !== 'enabled' && state !== 'disabled')) return undefined;
  const field = (key: string) => lines.find((l) => l.startsWith(`${key} `))?.slice(key.length + 1).trim();
  const hex = (v: string | undefined) => (v !== undefined && /^([0-9a-f]{2}){1,128}$/.test(v) ? Buffer.from(v, 'hex') : undefined);
  const offset = Number(field('offset') ?? '0');
  return {
    name,
    enabled: state === 'enabled',
    interpreter: (field('interpreter') ?? '').replace(/[^\x20-\x7e]/g, '?'),
    flags: (field('flags:') ?? '').replace(/[^A-Z]/g, ''),
    offset: Number.isSafeInteger(offset) && offset >= 0 && offset < 128 ? offset : -1,
    magic: hex(field('magic')),
    mask: hex(field('mask')),
  };
}

/** ELF e_machine of each machine outrun has a runtime for. */
const ELF_MACHINE: Record<string, number> = { x86_64: 62, aarch64: 183 };

/** A 64-bit little-endian ELF header's first 20 bytes, of type ET_EXEC (2) or ET_DYN (3). */
function elfHeader(machine: number, type: number): Buffer {
  const h = Buffer.alloc(20);
  h.write('\x7fELF', 0, 'latin1');
  h[4] = 2; // ELFCLASS64
  h[5] = 1; // ELFDATA2LSB
  h[6] = 1; // EV_CURRENT
  h.writeUInt16LE(type, 16);
  h.writeUInt16LE(machine, 18);
  return h;
}

function matches(entry: BinfmtEntry, header: Buffer): boolean {
  const { magic, mask, offset } = entry;
  if (!magic || offset < 0 || offset + magic.length > header.length) return false;
  for (let i = 0; i < magic.length; i++) {
    const m = mask ? mask[i] ?? 0xff : 0xff;
    if (((header[offset + i]! ^ magic[i]!) & m) !== 0) return false;
  }
  return true;
}

/**
 * The remote's binfmt_misc handler that runs `machine`'s programs inside outrun's chroot: an
 * enabled one that takes both static and position-independent executables of that machine and
 * has the F flag (its interpreter was opened when it was registered: in the chroot, the local
 * tree, its path would not exist). Undefined when there is none; `near` is one that matches
 * but lacks something (for the message).
 */
export function emulatorFor(probe: Probe, machine: string): { handler?: BinfmtEntry; near?: BinfmtEntry } {
  const em = ELF_MACHINE[machine];
  if (!probe.binfmt?.enabled || em === undefined) return {};
  const takes = (e: BinfmtEntry) => matches(e, elfHeader(em, 2)) && matches(e, elfHeader(em, 3));
  const found = probe.binfmt.entries.filter(takes);
  return { handler: found.find((e) => e.enabled && e.flags.includes('F')), near: found[0] };
}

export function normalizeMachine(m: string): string {
  return m === 'amd64' ? 'x86_64' : m === 'arm64' ? 'aarch64' : m;
}

/** One thing a run needs: whether it is there, what was found, and what to do if it is not. */
export interface CheckItem {
  name: string;
  ok: boolean;
  detail: string;
  /** For a missing item: the refusal's code and what to do. */
  code?: ErrorCode;
  fix?: string;
}

function kernelAtLeast(release: string, major: number, minor: number): boolean | undefined {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return undefined;
  const a = Number(m[1]);
  const b = Number(m[2]);
  return a > major || (a === major && b >= minor);
}

/** How a run uses the remote: the local tree as / (chroot, the default), the remote's own
 * programs (--no-chroot), or either (a master, which serves both kinds of run). */
export type RunMode = 'chroot' | 'host' | 'either';

export interface AssessInput {
  probe: Probe;
  host: string;
  /** This machine's architecture (uname -m): the local programs a chroot run executes. */
  localMachine: string;
  /** The runtimes this outrun can ship, by architecture: id and size in bytes. */
  runtimes: Record<string, { id: string; bytes: number }>;
  mode?: RunMode;
}

/** Every item, in the order --check prints them. */
export function assess({ probe: p, host, localMachine, runtimes, mode = 'chroot' }: AssessInput): CheckItem[] {
  const items: CheckItem[] = [];
  const root = p.uid === '0';
  const who = `${p.user || '?'} (uid ${p.uid || '?'})`;
  if (p.os && p.os !== 'Linux') {
    items.push({ name: 'system', ok: false, detail: `${host} runs ${p.os}`, code: 'ARCH_MISMATCH', fix: 'outrun only runs commands on Linux remotes' });
  }
  items.push({
    name: 'login',
    ok: p.uid !== '',
    detail: p.uid === '' ? 'the uid of the login is unknown' : root ? `${who}: root mode` : `${who}: rootless mode (a user namespace of its own)`,
    code: 'UPLOAD_FAILED',
    fix: 'check that the remote account has a working POSIX sh and id',
  });
  // User namespaces: refused by one of these sysctls, or (AppArmor) allowed but powerless.
  if (root) {
    items.push({ name: 'user namespaces', ok: true, detail: 'not needed (root)' });
  } else if (p.usernsClone === '0') {
    items.push({
      name: 'user namespaces',
      ok: false,
      detail: `unprivileged user namespaces are disabled on ${host} (kernel.unprivileged_userns_clone=0)`,
      code: 'REMOTE_NO_USERNS',
      fix: 'have its admin run sysctl -w kernel.unprivileged_userns_clone=1, or log in as root',
    });
  } else if (p.maxUserNs === '0') {
    items.push({
      name: 'user namespaces',
      ok: false,
      detail: `user namespaces are disabled on ${host} (user.max_user_namespaces=0)`,
      code: 'REMOTE_NO_USERNS',
      fix: 'have its admin run sysctl -w user.max_user_namespaces=15000, or log in as root',
    });
  } else if (p.apparmorUserns === '1') {
    items.push({
      name: 'user namespaces',
      ok: false,
      detail: `AppArmor restricts unprivileged user namespaces on ${host} (kernel.apparmor_restrict_unprivileged_userns=1)`,
      code: 'REMOTE_NO_USERNS',
      fix: 'have its admin allow them (sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile with "userns," for ~/.cache/outrun/runtime/*/outrun-helper), or log in as root',
    });
  } else if (p.usernsTry === '0') {
    const filter = p.seccomp === '2' ? '; a seccomp filter is in place (Seccomp: 2 in /proc/self/status)' : '';
    items.push({
      name: 'user namespaces',
      ok: false,
      detail: `unprivileged user namespaces are refused on ${host} (unshare -U fails${filter})`,
      code: 'REMOTE_NO_USERNS',
      fix: 'log in as root, or have its admin (or container runtime) allow unshare(CLONE_NEWUSER)',
    });
  } else {
    items.push({ name: 'user namespaces', ok: true, detail: `allowed for ${p.user || 'the login'}` });
  }
  // FUSE: the device, the file system type, access for a rootless login.
  if (!p.fuse && !p.fuseFs) {
    items.push({
      name: '/dev/fuse',
      ok: false,
      detail: `remote ${host} has no FUSE (no /dev/fuse, no fuse in /proc/filesystems)`,
      code: 'REMOTE_NO_FUSE',
      fix: 'load FUSE there (modprobe fuse); in a container, pass the device (--device /dev/fuse)',
    });
  } else if (!p.fuse) {
    items.push({
      name: '/dev/fuse',
      ok: false,
      detail: `remote ${host} has no /dev/fuse`,
      code: 'REMOTE_NO_FUSE',
      fix: 'create it (mknod -m 666 /dev/fuse c 10 229); in a container, pass the device (--device /dev/fuse)',
    });
  } else if (!root && !p.fuseAccess) {
    items.push({
      name: '/dev/fuse',
      ok: false,
      detail: `/dev/fuse on ${host} is not readable and writable by ${p.user || 'the login'} (${p.fuseMode || 'mode unknown'})`,
      code: 'REMOTE_NO_FUSE',
      fix: 'have its admin make it 0666 (chmod 666 /dev/fuse; Debian\'s udev rule does) or add the login to its group, or log in as root',
    });
  } else {
    items.push({ name: '/dev/fuse', ok: true, detail: `present (${p.fuseMode || '?'})${root ? '' : `, usable by ${p.user || 'the login'}`}` });
  }
  const k418 = kernelAtLeast(p.kernel, 4, 18);
  const usernsOk = items.find((i) => i.name === 'user namespaces')!.ok;
  if (!root && !usernsOk) {
    items.push({ name: 'FUSE in a user namespace', ok: false, detail: 'impossible without user namespaces (see above)', code: 'REMOTE_NO_USERNS' });
  } else if (!root) {
    const ok = k418 !== false && p.fuseFs;
    items.push({
      name: 'FUSE in a user namespace',
      ok,
      detail: ok
        ? `Linux ${p.kernel} allows it (4.18+)`
        : !p.fuseFs
          ? `fuse is not in /proc/filesystems on ${host}`
          : `Linux ${p.kernel} is older than 4.18, which first allows FUSE mounts in a user namespace`,
      code: 'REMOTE_NO_FUSE',
      fix: ok ? undefined : 'log in as root, or use a remote with Linux 4.18 or later',
    });
  }
  if (!root) {
    items.push({
      name: 'subordinate ids',
      ok: true,
      detail:
        p.newuidmap && p.subuid && p.subgid
          ? 'newuidmap, newgidmap and /etc/subuid, /etc/subgid ranges: local root and other owners map, groups apply'
          : `${p.newuidmap ? 'no /etc/subuid or /etc/subgid range for the login' : 'no newuidmap/newgidmap'}: only the local uid and gid map ` +
            '(files of other owners show as 65534, setuid gains nothing, groups cannot change)',
    });
  }
  items.push(architectureItem(p, host, localMachine, runtimes, mode));
  const runtime = runtimes[normalizeMachine(p.machine)];
  const base = cacheBaseOf(p.uid, p.home);
  if (!runtime) {
    items.push({ name: 'runtime', ok: false, detail: 'none for this architecture (see above)', code: 'ARCH_MISMATCH' });
  } else if (p.complete) {
    items.push({ name: 'runtime', ok: true, detail: `installed (${base}/runtime/${runtime.id})` });
  } else {
    const need = Math.ceil(runtime.bytes / 1024);
    const ok = Number.isNaN(p.freeKb) || p.freeKb >= need;
    items.push({
      name: 'runtime',
      ok,
      detail: `not installed: a run uploads ${(runtime.bytes / 1e6).toFixed(0)} MB to ${base}/runtime` +
        (Number.isNaN(p.freeKb) ? ' (free space unknown)' : `, ${(p.freeKb / 1e6).toFixed(1)} GB free there`),
      code: 'UPLOAD_FAILED',
      fix: ok ? undefined : `free ${(need / 1e3).toFixed(0)} MB in ${base} on ${host}`,
    });
  }
  const pt = kernelAtLeast(p.kernel, 6, 9);
  items.push({
    name: 'kernel',
    ok: true,
    detail:
      `Linux ${p.kernel || '?'}: FUSE max_pages and cached listings ${kernelAtLeast(p.kernel, 4, 20) === false ? 'absent (4.20+; slower)' : 'yes'}, ` +
      `passthrough ${root ? (pt === false ? 'absent (6.9+; reads go through the agent)' : 'yes') : 'not used (root only)'}`,
  });
  items.push({
    name: 'upload',
    ok: p.sftp || p.cat,
    detail: p.sftp ? 'SFTP (uncompressed: no decompressor needed)' : p.cat ? 'cat over exec channels (uncompressed: no decompressor needed)' : 'neither sftp-server nor cat found',
    code: 'UPLOAD_FAILED',
    fix: 'install openssh-sftp-server or coreutils there',
  });
  return items;
}

/** The architecture: a runtime (the agent) for the remote's, and, for a chroot run on another
 * one, a binfmt_misc handler that runs this machine's programs there. */
function architectureItem(p: Probe, host: string, local: string, runtimes: AssessInput['runtimes'], mode: RunMode): CheckItem {
  const got = normalizeMachine(p.machine);
  const name = 'architecture';
  const code = 'ARCH_MISMATCH' as const;
  if (got === local) return { name, ok: true, detail: `${got}, as this machine` };
  if (!runtimes[got]) {
    const have = Object.keys(runtimes).sort().join(' and ');
    const built = got === 'x86_64' || got === 'aarch64';
    return {
      name,
      ok: false,
      detail: `remote ${host} is ${got || 'of unknown architecture'} and this outrun has a runtime for ${have} only`,
      code,
      fix: built
        ? `build outrun from a clone with npm run build, which cross-builds the ${got} runtime (it needs Debian's cross compiler: scripts/system-packages build installs it)`
        : `use an ${Object.keys(runtimes).sort().join(' or ')} remote`,
    };
  }
  if (mode === 'host') return { name, ok: true, detail: `${got}, this machine is ${local}: the ${got} runtime, and the remote's own programs (--no-chroot)` };
  const { handler, near } = emulatorFor(p, local);
  if (handler) {
    return {
      name,
      ok: true,
      detail: `${got}, this machine is ${local}: the ${got} runtime; local programs run through ${host}'s binfmt_misc handler ${handler.name} (${handler.interpreter || '?'}), emulated`,
    };
  }
  if (mode === 'either') return { name, ok: true, detail: `${got}, this machine is ${local}: --no-chroot runs only` };
  const why = near
    ? `its binfmt_misc handler ${near.name} ${!near.enabled ? 'is disabled' : 'lacks the F flag (its interpreter is not found inside the chroot)'}`
    : p.binfmt && !p.binfmt.enabled
      ? 'binfmt_misc is disabled there'
      : `it has no binfmt_misc handler for ${local} programs`;
  return {
    name,
    ok: false,
    detail: `remote ${host} is ${got} and cannot run this machine's ${local} programs (${why})`,
    code,
    fix: `run the remote's own programs with --no-chroot, or have its admin register qemu-user-static's ${local} handler with the F flag (Debian: apt-get install qemu-user-static binfmt-support)`,
  };
}
