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
}

/** The cache base of a login: /var/cache/outrun for root, ~/.cache/outrun otherwise. */
export function cacheBaseOf(uid: string, home: string): string {
  return uid === '0' ? ROOT_CACHE : `${home.replace(/\/+$/, '')}/.cache/outrun`;
}

/** The probe: facts on tagged lines (login scripts may print their own noise on stdout). The
 * runtime root depends on the login, so the script picks it (or takes cacheRoot). */
export function probeScript(runtimeId: string, cacheRoot?: string): string {
  const t = PROBE_TAG;
  const q = (s: string) => shellQuote([s]);
  return [
    `printf '${t}os=%s\\n' "$(uname -s 2>/dev/null)"`,
    `printf '${t}machine=%s\\n' "$(uname -m 2>/dev/null)"`,
    `printf '${t}kernel=%s\\n' "$(uname -r 2>/dev/null)"`,
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
    // Touch the marker so that cache collection removes the least recently used runtimes.
    `m="$r/${runtimeId}/.complete"`,
    `if [ -f "$m" ]; then touch -c "$m" 2>/dev/null; echo ${t}complete=1; else echo ${t}complete=0; fi`,
  ].join('; ');
}

export function parseProbe(out: string): Probe | undefined {
  const kv = new Map<string, string>();
  for (const line of out.split('\n')) {
    const i = line.indexOf(PROBE_TAG);
    if (i < 0) continue;
    const rest = line.slice(i + PROBE_TAG.length).trim();
    const eq = rest.indexOf('=');
    if (eq > 0) kv.set(rest.slice(0, eq), rest.slice(eq + 1).slice(0, 4096));
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
  };
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

export interface AssessInput {
  probe: Probe;
  host: string;
  /** The local runtime's architecture (uname -m) and its size in bytes. */
  machine: string;
  runtimeBytes: number;
  runtimeId: string;
}

/** Every item, in the order --check prints them. */
export function assess({ probe: p, host, machine, runtimeBytes, runtimeId }: AssessInput): CheckItem[] {
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
  const got = normalizeMachine(p.machine);
  items.push({
    name: 'architecture',
    ok: got === machine,
    detail: got === machine ? `${got}, the runtime's` : `remote ${host} is ${got || 'of unknown architecture'} but this outrun runtime is ${machine}`,
    code: 'ARCH_MISMATCH',
    fix: `outrun ships the local node binary: use a ${machine} remote, or run outrun from a ${got || 'matching'} machine`,
  });
  const base = cacheBaseOf(p.uid, p.home);
  const need = Math.ceil(runtimeBytes / 1024);
  if (p.complete) {
    items.push({ name: 'runtime', ok: true, detail: `installed (${base}/runtime/${runtimeId})` });
  } else {
    const ok = Number.isNaN(p.freeKb) || p.freeKb >= need;
    items.push({
      name: 'runtime',
      ok,
      detail: `not installed: a run uploads ${(runtimeBytes / 1e6).toFixed(0)} MB to ${base}/runtime` +
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
