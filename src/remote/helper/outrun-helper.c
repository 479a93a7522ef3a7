/*
 * outrun-helper: the small static program outrun ships to the remote for what node cannot do
 * (unshare, setns, chroot, mount, setgroups, a proper tty).
 *
 *   outrun-helper agent SESSION_DIR [--as UID:GID] -- PROGRAM [ARGS...]
 *   outrun-helper bind ROOT
 *   outrun-helper exec SESSION_DIR [RUN]
 *   outrun-helper signal SESSION_DIR NAME [RUN] (NAME: INT, TERM, ..., KILL, HANGUP or TIMEOUT)
 *   outrun-helper try-userns DIR   (outrun --check: can this login mount FUSE in a user namespace?)
 *   outrun-helper --version
 *
 * RUN names one of several commands run in one session (a master's attached runs): each
 * records its pids under its own name, so that a signal reaches the right one.
 * SESSION_DIR is /run/outrun/NAME for root; for any other login (a rootless session) it is
 * $HOME/.cache/outrun/run/NAME, and `agent` runs PROGRAM in a new user namespace too (userns.c),
 * where UID:GID (the local ids) map to the login's own. Every error is one line on stderr starting "outrun-helper: ",
 * except the user-facing failures of `exec` that a shell would report ("outrun: ...").
 * Nothing but the `exec` handshake and `--version` ever writes to stdout: in `agent`, stdio
 * carries the RPC stream of the program it runs.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <dirent.h>

#include "host-view.h"
#include "userns.h"

#define HELPER_VERSION "1"
#define SESSION_PARENT "/run/outrun"
#define READY_LINE "OUTRUN1 READY\n"
#define SPEC_MAGIC "OUTRUN-SPEC-2"
#define SPEC_MAX (64u * 1024u * 1024u)
#define MAX_GROUPS 65536u
#define MAX_RLIMITS 64u
#define MAX_VIEW_PATHS 128u
#define SESSION_NAME_MAX 100
/* The value `signal ... HANGUP` queues with SIGHUP: the local terminal went away. */
#define HANGUP_VALUE 0x48555030 /* "HUP0" */
/* The value `signal ... TIMEOUT` queues with SIGTERM: outrun's --timeout ran out. */
#define TIMEOUT_VALUE 0x54494d30 /* "TIM0" */
/* exec-pty's window size (`signal ... SIZE=ROWSxCOLS`): real-time, so that sizes queue in order
 * and the last one sent is the last applied; the value is rows << 16 | cols. */
#define SIZE_SIGNAL (SIGRTMIN + 1)

/* Exit statuses (match src/client/errors.ts). */
#define EXIT_USAGE 2
#define EXIT_NOT_EXECUTABLE 126
#define EXIT_NOT_FOUND 127
#define EXIT_OUTRUN 254

extern char **environ;

/* ---------------------------------------------------------------- messages */

/* One line on stderr, written with a single write(2). */
static void vline(const char *prefix, const char *fmt, va_list ap) {
  char buf[2048];
  int n = snprintf(buf, sizeof buf, "%s", prefix);
  if (n < 0) return;
  int m = vsnprintf(buf + n, sizeof buf - (size_t)n, fmt, ap);
  if (m < 0) return;
  size_t len = (size_t)n + (size_t)m;
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  for (size_t i = (size_t)n; i < len; i++)
    if (buf[i] == '\n') buf[i] = ' ';
  buf[len++] = '\n';
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(2, buf + off, len - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    off += (size_t)w;
  }
}

__attribute__((format(printf, 1, 2))) static void msg(const char *fmt, ...) {
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  vline("outrun-helper: ", fmt, ap);
  va_end(ap);
  errno = saved;
}

/* User-facing failures of the command itself, worded as a shell would. */
__attribute__((format(printf, 1, 2))) static void umsg(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vline("outrun: ", fmt, ap);
  va_end(ap);
}

__attribute__((format(printf, 2, 3), noreturn)) static void die(int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vline("outrun-helper: ", fmt, ap);
  va_end(ap);
  exit(status);
}

static void usage(void) {
  msg("usage: outrun-helper agent SESSION_DIR [--as UID:GID] -- PROGRAM [ARGS...] | outrun-helper bind ROOT | "
      "outrun-helper exec SESSION_DIR [RUN] | outrun-helper exec-pty ROWS COLS SESSION_DIR [RUN] | outrun-helper signal SESSION_DIR NAME [RUN] | outrun-helper --version");
  exit(EXIT_USAGE);
}

/* ---------------------------------------------------------------- small utilities */

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Read exactly n bytes. Returns 0, or -1 with errno (0 for end of input). */
static int read_exact(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (r == 0) {
      errno = 0;
      return -1;
    }
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

/* Strict unsigned decimal: digits only, no sign, no spaces, no overflow past max. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
  if (*s == '\0') return -1;
  uint64_t v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    unsigned d = (unsigned)(*s - '0');
    if (v > (max - d) / 10) return -1;
    v = v * 10 + d;
  }
  *out = v;
  return 0;
}

static int parse_octal(const char *s, unsigned max, unsigned *out) {
  if (*s == '\0') return -1;
  unsigned v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '7') return -1;
    v = v * 8 + (unsigned)(*s - '0');
    if (v > max) return -1;
  }
  *out = v;
  return 0;
}

static int join_path(char *out, size_t size, const char *a, const char *b) {
  int n = snprintf(out, size, "%s/%s", a, b);
  if (n < 0 || (size_t)n >= size) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return 0;
}

/* Reads a pid file (decimal, optional trailing newline). Returns the pid or -1 with errno. */
static pid_t read_pid_file(const char *path) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -1;
  char buf[32];
  size_t len = 0;
  for (;;) {
    ssize_t r = read(fd, buf + len, sizeof buf - 1 - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      close(fd);
      errno = e;
      return -1;
    }
    if (r == 0 || (len += (size_t)r) == sizeof buf - 1) break;
  }
  close(fd);
  buf[len] = '\0';
  if (len > 0 && buf[len - 1] == '\n') buf[--len] = '\0';
  uint64_t v;
  if (parse_u64(buf, INT_MAX, &v) < 0 || v == 0) {
    errno = EINVAL;
    return -1;
  }
  return (pid_t)v;
}

/* Writes DIR/NAME containing "PID\n" atomically (temporary name, then rename). */
static int write_pid_file(const char *dir, const char *name, pid_t pid) {
  char path[PATH_MAX], tmp[PATH_MAX], tmpname[64];
  snprintf(tmpname, sizeof tmpname, ".%s.tmp", name);
  if (join_path(path, sizeof path, dir, name) < 0 || join_path(tmp, sizeof tmp, dir, tmpname) < 0) return -1;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  char buf[32];
  int n = snprintf(buf, sizeof buf, "%ld\n", (long)pid);
  if (write_all(fd, buf, (size_t)n) < 0 || close(fd) < 0) {
    int e = errno;
    unlink(tmp);
    errno = e;
    return -1;
  }
  if (rename(tmp, path) < 0) {
    int e = errno;
    unlink(tmp);
    errno = e;
    return -1;
  }
  return 0;
}

/* The name of a run's pid file: "exec.pid", or "exec-RUN.pid" for a named run. RUN is 1-32 of
 * [A-Za-z0-9] (it comes from the client: never a path). */
static void run_file(char *out, size_t size, const char *base, const char *run) {
  if (!run) {
    snprintf(out, size, "%s.pid", base);
    return;
  }
  size_t n = strlen(run);
  if (n < 1 || n > 32) die(EXIT_USAGE, "bad run name");
  for (size_t i = 0; i < n; i++)
    if (!isalnum((unsigned char)run[i])) die(EXIT_USAGE, "bad run name");
  snprintf(out, size, "%s-%s.pid", base, run);
}

/* ---------------------------------------------------------------- session directories */

/* Where sessions live: /run/outrun for root; a rootless login's own ~/.cache/outrun/run (it
 * cannot write /run). HOME comes from sshd: the helper is not setuid, a wrong HOME only hurts
 * the login itself. */
static const char *session_parent(void) {
  static char parent[PATH_MAX];
  if (parent[0]) return parent;
  if (getuid() == 0) {
    snprintf(parent, sizeof parent, "%s", SESSION_PARENT);
    return parent;
  }
  const char *home = getenv("HOME");
  if (!home || home[0] != '/' || strstr(home, "/.") || strlen(home) > PATH_MAX - 64)
    die(EXIT_OUTRUN, "HOME (%s) is not an absolute path: a rootless session lives in ~/.cache/outrun/run", home ? home : "unset");
  size_t n = strlen(home);
  while (n > 1 && home[n - 1] == '/') n--;
  snprintf(parent, sizeof parent, "%.*s/.cache/outrun/run", (int)n, home);
  return parent;
}

/* SESSION_DIR must be exactly PARENT/NAME (session_parent) with NAME of [A-Za-z0-9._-], not
 * starting with '.'. */
static void check_session_path(const char *dir) {
  const char *parent = session_parent();
  size_t plen = strlen(parent);
  const char *name = dir + plen + 1;
  if (strncmp(dir, parent, plen) != 0 || dir[plen] != '/' || *name == '\0' || *name == '.' ||
      strlen(name) > SESSION_NAME_MAX)
    die(EXIT_USAGE, "session directory %s is not of the form %s/NAME", dir, parent);
  for (const char *c = name; *c; c++)
    if (!isalnum((unsigned char)*c) && *c != '.' && *c != '_' && *c != '-')
      die(EXIT_USAGE, "session directory %s is not of the form %s/NAME", dir, parent);
}

/* A directory (not a symlink) owned by us (root, or the rootless login) with mode 0700. Returns 0, or -1 with errno (EPERM for
 * wrong type/owner/mode). */
static int check_private_dir(const char *path, const char **why) {
  struct stat st;
  if (lstat(path, &st) < 0) {
    *why = NULL;
    return -1;
  }
  *why = !S_ISDIR(st.st_mode)                ? "is not a directory"
         : st.st_uid != getuid()             ? (getuid() == 0 ? "is not owned by root" : "is not owned by this login")
         : (st.st_mode & 07777) != 0700      ? "does not have mode 0700"
                                             : NULL;
  if (*why) {
    errno = EPERM;
    return -1;
  }
  return 0;
}

static int rm_first_errno;
static char rm_first_path[PATH_MAX];

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  int r;
  if (type == FTW_DP || type == FTW_DNR) {
    r = rmdir(path);
  } else {
    r = unlink(path);
    if (r < 0 && (errno == EISDIR || errno == EPERM) && type == FTW_NS) r = rmdir(path);
  }
  if (r < 0 && errno != ENOENT && rm_first_errno == 0) {
    rm_first_errno = errno;
    snprintf(rm_first_path, sizeof rm_first_path, "%s", path);
  }
  return 0;
}

/* Removes a tree without following symlinks or crossing mount points. 0, or -1 with a message. */
static int remove_tree(const char *dir) {
  rm_first_errno = 0;
  rm_first_path[0] = '\0';
  if (nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0) {
    if (errno == ENOENT) return 0;
    msg("removing %s: %s", dir, strerror(errno));
    return -1;
  }
  if (rm_first_errno) {
    msg("removing %s: %s", rm_first_path, strerror(rm_first_errno));
    return -1;
  }
  return 0;
}

/* Creates the session parent (0700, ours) or checks an existing one. A rootless login's
 * ~/.cache/outrun is made 0700 on the way (the runtime and the caches live there too). */
static void ensure_session_parent(void) {
  const char *why;
  const char *parent = session_parent();
  if (getuid() != 0) {
    char up[PATH_MAX];
    snprintf(up, sizeof up, "%s", parent);
    *strrchr(up, '/') = '\0'; /* ~/.cache/outrun */
    char *slash = strrchr(up, '/');
    *slash = '\0';
    if (mkdir(up, 0700) < 0 && errno != EEXIST) die(EXIT_OUTRUN, "creating %s: %s", up, strerror(errno));
    *slash = '/';
    if (mkdir(up, 0700) < 0 && errno != EEXIST) die(EXIT_OUTRUN, "creating %s: %s", up, strerror(errno));
    if (check_private_dir(up, &why) < 0 && why && chmod(up, 0700) < 0)
      die(EXIT_OUTRUN, "refusing to use %s: it %s", up, why);
  }
  if (mkdir(parent, 0700) == 0) {
    /* mkdir applies the umask: force the mode. */
    if ((getuid() == 0 && chown(parent, 0, 0) < 0) || chmod(parent, 0700) < 0)
      die(EXIT_OUTRUN, "setting up %s: %s", parent, strerror(errno));
  } else if (errno != EEXIST) {
    die(EXIT_OUTRUN, "creating %s: %s", parent, strerror(errno));
  }
  if (check_private_dir(parent, &why) < 0) {
    if (why) die(EXIT_OUTRUN, "refusing to use %s: it %s", parent, why);
    die(EXIT_OUTRUN, "checking %s: %s", parent, strerror(errno));
  }
}

/* This machine's name (uname's nodename): a rootless session parent in a home shared by many
 * machines (NFS, a Slurm cluster) holds sessions of each; a pid means something only on its own. */
static const char *node_name(void) {
  static struct utsname u;
  if (!u.nodename[0] && uname(&u) < 0) snprintf(u.nodename, sizeof u.nodename, "?");
  return u.nodename;
}

/* Whether DIR's helper.host (written before helper.pid) names another machine. */
static int session_elsewhere(const char *dir) {
  char path[PATH_MAX], buf[sizeof ((struct utsname *)0)->nodename + 2];
  if (join_path(path, sizeof path, dir, "helper.host") < 0) return 0;
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return 0; /* a session of an older helper: judged by its pid alone, as before */
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  if (buf[n - 1] == '\n') buf[n - 1] = '\0';
  return strcmp(buf, node_name()) != 0;
}

/* Writes DIR/helper.host: this machine's name. */
static int write_host_file(const char *dir) {
  char path[PATH_MAX];
  if (join_path(path, sizeof path, dir, "helper.host") < 0) return -1;
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  char line[sizeof ((struct utsname *)0)->nodename + 2];
  int n = snprintf(line, sizeof line, "%s\n", node_name());
  if (write_all(fd, line, (size_t)n) < 0 || close(fd) < 0) return -1;
  return 0;
}

/* Removes the sessions whose helper.pid names a process that no longer exists (on this machine:
 * a session another machine runs in a shared home is left alone). */
static void clean_stale_sessions(void) {
  const char *parent = session_parent();
  DIR *d = opendir(parent);
  if (!d) die(EXIT_OUTRUN, "listing %s: %s", parent, strerror(errno));
  struct dirent *e;
  while ((errno = 0, e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char dir[PATH_MAX], pidfile[PATH_MAX];
    if (join_path(dir, sizeof dir, parent, e->d_name) < 0) continue;
    struct stat st;
    if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) continue;
    if (join_path(pidfile, sizeof pidfile, dir, "helper.pid") < 0) continue;
    pid_t pid = read_pid_file(pidfile);
    if (pid <= 0) continue; /* no pid file yet: possibly a session being created right now */
    if (session_elsewhere(dir)) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    remove_tree(dir); /* a failure is reported and is not fatal */
  }
  if (errno != 0) die(EXIT_OUTRUN, "listing %s: %s", parent, strerror(errno));
  closedir(d);
}

/* ---------------------------------------------------------------- signals */

static void noop_handler(int sig) { (void)sig; }

/* Handle (never ignore) and block every signal in set: they are then taken with sigwaitinfo.
 * A handler rather than SIG_DFL matters for a namespace's PID 1 (the kernel drops signals it has
 * no handler for) and overrides an inherited SIG_IGN (SIGCHLD ignored would auto-reap). */
static void catch_and_block(const sigset_t *set) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = noop_handler;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  for (int s = 1; s < NSIG; s++)
    if (sigismember(set, s) == 1) sigaction(s, &sa, NULL);
  sigprocmask(SIG_BLOCK, set, NULL);
}

/* Default dispositions for every signal and an empty mask: the state a program expects. */
static void reset_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_DFL;
  sigemptyset(&sa.sa_mask);
  for (int s = 1; s < NSIG; s++) sigaction(s, &sa, NULL); /* fails harmlessly for KILL/STOP/32/33 */
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
}

static int sigwait_retry(const sigset_t *set, siginfo_t *info) {
  for (;;) {
    int s = sigwaitinfo(set, info);
    if (s > 0) return s;
    if (errno != EINTR) return -1;
  }
}

/* Exit the way status says: with the same code, or killed by the same signal (no core dump). */
__attribute__((noreturn)) static void exit_like(int status) {
  if (WIFEXITED(status)) exit(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    struct rlimit zero = {0, 0};
    setrlimit(RLIMIT_CORE, &zero);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    signal(sig, SIG_DFL);
    kill(getpid(), sig);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    sigprocmask(SIG_UNBLOCK, &one, NULL);
    exit(128 + sig);
  }
  exit(EXIT_OUTRUN);
}

static int status_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return EXIT_OUTRUN;
}

/* ---------------------------------------------------------------- agent */

/* Once the agent is started, the helpers' own copies of stdin and stdout (the RPC stream) would
 * only delay its end of file: point them at /dev/null. stderr stays, for messages. */
static void drop_stdio(void) {
  int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (fd < 0) return;
  dup2(fd, 0);
  dup2(fd, 1);
  if (fd > 1) close(fd);
}

/* PID 1 of the session's pid namespace. */
__attribute__((noreturn)) static void agent_init(int sync_fd, char **prog) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) {
    msg("prctl PR_SET_PDEATHSIG: %s", strerror(errno));
    _exit(EXIT_OUTRUN);
  }
  /* The outer process sends one byte once init.pid is written; end of file means it died
   * (or failed) before that: nothing to do then. */
  char go;
  ssize_t r;
  do r = read(sync_fd, &go, 1);
  while (r < 0 && errno == EINTR);
  if (r != 1) _exit(EXIT_OUTRUN);
  close(sync_fd);

  /* A private mount namespace: everything mounted in the session stays in it and vanishes with
   * it. It is made here, not in the outer process, so that the outer process stays in the host's
   * namespace and removes a session directory on which nothing is mounted. */
  if (unshare(CLONE_NEWNS) < 0) {
    msg("unshare(CLONE_NEWNS): %s", strerror(errno));
    _exit(EXIT_OUTRUN);
  }
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
    msg("making / a private mount: %s", strerror(errno));
    _exit(EXIT_OUTRUN);
  }

  sigset_t set;
  sigemptyset(&set);
  int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) sigaddset(&set, fwd[i]);
  sigaddset(&set, SIGCHLD);
  catch_and_block(&set);

  pid_t agent = fork();
  if (agent < 0) {
    msg("fork: %s", strerror(errno));
    _exit(EXIT_OUTRUN);
  }
  if (agent == 0) {
    reset_signals();
    if (getuid() != 0 || geteuid() != 0) {
      /* rootless, mapped to a non-zero local uid: the agent still has to mount */
      if (userns_keep_mount_cap() < 0) msg("keeping CAP_SYS_ADMIN for the agent: %s", strerror(errno));
    }
    execvp(prog[0], prog);
    msg("cannot run %s: %s", prog[0], strerror(errno));
    _exit(errno == ENOENT ? EXIT_NOT_FOUND : EXIT_NOT_EXECUTABLE);
  }
  drop_stdio();

  int agent_status = 0;
  for (;;) {
    int sig = sigwait_retry(&set, NULL);
    if (sig < 0) {
      msg("sigwaitinfo: %s", strerror(errno));
      kill(-1, SIGKILL);
      _exit(EXIT_OUTRUN);
    }
    if (sig != SIGCHLD) {
      kill(agent, sig);
      continue;
    }
    int st;
    pid_t p;
    int done = 0;
    while ((p = waitpid(-1, &st, WNOHANG)) > 0)
      if (p == agent) {
        agent_status = st;
        done = 1;
      }
    if (done) break;
  }
  /* The agent is gone: end everything left in the namespace, reap it, leave. */
  kill(-1, SIGKILL);
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
  }
  _exit(status_code(agent_status));
}

/* UID:GID, both decimal. */
static void parse_ids(const char *s, uid_t *uid, gid_t *gid) {
  char buf[64];
  uint64_t u, g;
  const char *colon = strchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof buf) usage();
  memcpy(buf, s, (size_t)(colon - s));
  buf[colon - s] = '\0';
  if (parse_u64(buf, UINT32_MAX - 1, &u) < 0 || parse_u64(colon + 1, UINT32_MAX - 1, &g) < 0) usage();
  *uid = (uid_t)u;
  *gid = (gid_t)g;
}

static int cmd_agent(int argc, char **argv) {
  if (argc < 5) usage();
  const char *session = argv[2];
  int rootless = getuid() != 0;
  uid_t local_uid = 0;
  gid_t local_gid = 0;
  int at = 3;
  if (strcmp(argv[at], "--as") == 0) {
    if (argc < 7) usage();
    parse_ids(argv[at + 1], &local_uid, &local_gid);
    at += 2;
  } else if (rootless) {
    die(EXIT_USAGE, "a rootless session needs --as UID:GID (the local ids)");
  }
  if (strcmp(argv[at], "--") != 0 || argc < at + 2) usage();
  char **prog = argv + at + 1;
  check_session_path(session);

  ensure_session_parent();
  clean_stale_sessions();
  if (mkdir(session, 0700) < 0) {
    if (errno == EEXIST) die(EXIT_OUTRUN, "session directory %s already exists", session);
    die(EXIT_OUTRUN, "creating %s: %s", session, strerror(errno));
  }
  if (chmod(session, 0700) < 0) {
    msg("chmod %s: %s", session, strerror(errno));
    remove_tree(session);
    exit(EXIT_OUTRUN);
  }
  if (write_host_file(session) < 0) {
    msg("writing %s/helper.host: %s", session, strerror(errno));
    remove_tree(session);
    exit(EXIT_OUTRUN);
  }
  if (write_pid_file(session, "helper.pid", getpid()) < 0) {
    msg("writing %s/helper.pid: %s", session, strerror(errno));
    remove_tree(session);
    exit(EXIT_OUTRUN);
  }

  sigset_t set;
  sigemptyset(&set);
  int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT};
  for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) sigaddset(&set, fwd[i]);
  sigaddset(&set, SIGCHLD);
  catch_and_block(&set);

  int sync[2];
  if (pipe2(sync, O_CLOEXEC) < 0) {
    msg("pipe: %s", strerror(errno));
    remove_tree(session);
    exit(EXIT_OUTRUN);
  }
  pid_t init;
  if (rootless) {
    /* One clone: the user namespace owns the pid namespace (and the mount namespace PID 1 makes). */
    init = userns_clone();
    if (init < 0) {
      char why[512];
      int e = errno;
      msg("cannot create a user namespace: %s", userns_refusal(e, why, sizeof why));
      remove_tree(session);
      exit(EXIT_OUTRUN);
    }
  } else {
    if (unshare(CLONE_NEWPID) < 0) {
      msg("unshare(CLONE_NEWPID): %s", strerror(errno));
      remove_tree(session);
      exit(EXIT_OUTRUN);
    }
    init = fork();
  }
  if (init < 0) {
    msg("fork: %s", strerror(errno));
    remove_tree(session);
    exit(EXIT_OUTRUN);
  }
  if (init == 0) {
    close(sync[1]);
    agent_init(sync[0], prog);
  }
  close(sync[0]);

  if (rootless) {
    char why[512];
    if (userns_map(init, local_uid, local_gid, why, sizeof why) < 0) {
      msg("mapping the local uid %lu and gid %lu in the user namespace: %s", (unsigned long)local_uid,
          (unsigned long)local_gid, why);
      kill(init, SIGKILL);
      while (waitpid(init, NULL, 0) < 0 && errno == EINTR) {
      }
      remove_tree(session);
      exit(EXIT_OUTRUN);
    }
  }
  if (write_pid_file(session, "init.pid", init) < 0) {
    msg("writing %s/init.pid: %s", session, strerror(errno));
    kill(init, SIGKILL);
    while (waitpid(init, NULL, 0) < 0 && errno == EINTR) {
    }
    remove_tree(session);
    exit(EXIT_OUTRUN);
  }
  write_all(sync[1], "g", 1); /* if this fails, PID 1 sees end of file and exits */
  close(sync[1]);
  drop_stdio();

  int status = 0;
  for (;;) {
    int sig = sigwait_retry(&set, NULL);
    if (sig < 0) {
      msg("sigwaitinfo: %s", strerror(errno));
      kill(init, SIGKILL);
      while (waitpid(init, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    if (sig != SIGCHLD) {
      kill(init, sig);
      continue;
    }
    pid_t p;
    while ((p = waitpid(init, &status, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (p == init) break;
  }
  int rc = status_code(status);
  if (remove_tree(session) < 0 && rc == 0) rc = EXIT_OUTRUN;
  return rc;
}

/* ---------------------------------------------------------------- bind */

static int cmd_bind(int argc, char **argv) {
  if (argc != 3) usage();
  const char *root = argv[2];
  if (root[0] != '/') {
    msg("bind: %s is not an absolute path", root);
    return 1;
  }
  char proc[PATH_MAX], sys[PATH_MAX], dev[PATH_MAX];
  if (join_path(proc, sizeof proc, root, "proc") < 0 || join_path(sys, sizeof sys, root, "sys") < 0 ||
      join_path(dev, sizeof dev, root, "dev") < 0) {
    msg("bind: %s: %s", root, strerror(errno));
    return 1;
  }
  if (mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
    /* In a user namespace the kernel refuses a new proc where the remote's is partly hidden
     * (mounts over parts of it): bind that one then (it shows the remote's pids). */
    if (!(errno == EPERM && getuid() != 0 && mount("/proc", proc, NULL, MS_BIND | MS_REC, NULL) == 0)) {
      msg("mounting proc on %s: %s", proc, strerror(errno));
      return 1;
    }
  }
  if (mount("/sys", sys, NULL, MS_BIND | MS_REC, NULL) < 0) {
    msg("binding /sys on %s: %s", sys, strerror(errno));
    goto undo_proc;
  }
  if (mount(NULL, sys, NULL, MS_REC | MS_SLAVE, NULL) < 0) {
    msg("making %s a slave mount: %s", sys, strerror(errno));
    goto undo_sys;
  }
  if (mount("/dev", dev, NULL, MS_BIND | MS_REC, NULL) < 0) {
    msg("binding /dev on %s: %s", dev, strerror(errno));
    goto undo_sys;
  }
  if (mount(NULL, dev, NULL, MS_REC | MS_SLAVE, NULL) < 0) {
    msg("making %s a slave mount: %s", dev, strerror(errno));
    umount2(dev, MNT_DETACH);
    goto undo_sys;
  }
  return 0;
undo_sys:
  umount2(sys, MNT_DETACH);
undo_proc:
  umount2(proc, MNT_DETACH);
  return 1;
}

/* ---------------------------------------------------------------- exec */

struct rlim_req {
  int resource;
  struct rlimit lim;
};

struct spec {
  uid_t uid;
  gid_t gid;
  mode_t umask;
  const char *cwd;
  /* --no-chroot: the remote's tree with these local paths bound over it (host-view.c). */
  int host_view;
  size_t nview;
  char **view;
  size_t ngroups;
  gid_t *groups;
  size_t nrlimits;
  struct rlim_req *rlimits;
  size_t argc;
  char **argv;
  size_t envc;
  char **envp;
};

struct cursor {
  char *p;
  char *end;
};

/* The next NUL-terminated string, or NULL if none is complete. */
static char *next_str(struct cursor *c) {
  if (c->p >= c->end) return NULL;
  char *nul = memchr(c->p, '\0', (size_t)(c->end - c->p));
  if (!nul) return NULL;
  char *s = c->p;
  c->p = nul + 1;
  return s;
}

#define SPEC_FAIL(...)      \
  do {                      \
    msg(__VA_ARGS__);       \
    exit(EXIT_OUTRUN);      \
  } while (0)

static uint64_t spec_count(struct cursor *c, const char *what, uint64_t max) {
  char *s = next_str(c);
  if (!s) SPEC_FAIL("malformed exec spec: missing %s count", what);
  uint64_t n;
  if (parse_u64(s, max, &n) < 0) SPEC_FAIL("malformed exec spec: bad %s count \"%.40s\"", what, s);
  /* Every item takes at least one byte: a count beyond what is left cannot be honest. */
  if (n > (uint64_t)(c->end - c->p)) SPEC_FAIL("malformed exec spec: %s count %llu exceeds the spec", what, (unsigned long long)n);
  return n;
}

static int parse_rlim_value(const char *s, rlim_t *out) {
  if (strcmp(s, "inf") == 0) {
    *out = RLIM_INFINITY;
    return 0;
  }
  uint64_t v;
  if (parse_u64(s, UINT64_MAX, &v) < 0) return -1;
  *out = (rlim_t)v;
  return 0;
}

static void parse_spec(char *buf, size_t len, struct spec *sp) {
  struct cursor c = {buf, buf + len};
  char *s;
  uint64_t v;

  s = next_str(&c);
  if (!s || strcmp(s, SPEC_MAGIC) != 0) SPEC_FAIL("malformed exec spec: it does not start with " SPEC_MAGIC);

  s = next_str(&c);
  if (!s || parse_u64(s, UINT32_MAX - 1, &v) < 0) SPEC_FAIL("malformed exec spec: bad uid");
  sp->uid = (uid_t)v;
  s = next_str(&c);
  if (!s || parse_u64(s, UINT32_MAX - 1, &v) < 0) SPEC_FAIL("malformed exec spec: bad gid");
  sp->gid = (gid_t)v;
  unsigned um;
  s = next_str(&c);
  if (!s || parse_octal(s, 0777, &um) < 0) SPEC_FAIL("malformed exec spec: bad umask");
  sp->umask = (mode_t)um;
  s = next_str(&c);
  if (!s || s[0] != '/') SPEC_FAIL("malformed exec spec: the working directory is not an absolute path");
  sp->cwd = s;

  s = next_str(&c);
  if (!s || (strcmp(s, "chroot") != 0 && strcmp(s, "host") != 0)) SPEC_FAIL("malformed exec spec: the view is neither chroot nor host");
  sp->host_view = strcmp(s, "host") == 0;
  sp->nview = spec_count(&c, "view path", MAX_VIEW_PATHS);
  if (sp->nview && !sp->host_view) SPEC_FAIL("malformed exec spec: paths to bind in a chroot view");
  sp->view = calloc(sp->nview + 1, sizeof(char *));
  if (!sp->view) SPEC_FAIL("out of memory");
  for (size_t i = 0; i < sp->nview; i++) {
    s = next_str(&c);
    if (!s || s[0] != '/' || strcmp(s, "/") == 0 || strstr(s, "/../") || strstr(s, "/./") || strstr(s, "//"))
      SPEC_FAIL("malformed exec spec: view path #%zu is not a canonical absolute path below /", i + 1);
    sp->view[i] = s;
  }

  sp->ngroups = spec_count(&c, "group", MAX_GROUPS);
  sp->groups = calloc(sp->ngroups + 1, sizeof(gid_t));
  if (!sp->groups) SPEC_FAIL("out of memory");
  for (size_t i = 0; i < sp->ngroups; i++) {
    s = next_str(&c);
    if (!s || parse_u64(s, UINT32_MAX - 1, &v) < 0) SPEC_FAIL("malformed exec spec: bad group #%zu", i + 1);
    sp->groups[i] = (gid_t)v;
  }

  sp->nrlimits = spec_count(&c, "rlimit", MAX_RLIMITS);
  sp->rlimits = calloc(sp->nrlimits + 1, sizeof(struct rlim_req));
  if (!sp->rlimits) SPEC_FAIL("out of memory");
  for (size_t i = 0; i < sp->nrlimits; i++) {
    s = next_str(&c);
    if (!s) SPEC_FAIL("malformed exec spec: missing rlimit #%zu", i + 1);
    char *c1 = strchr(s, ':');
    char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    if (!c1 || !c2) SPEC_FAIL("malformed exec spec: rlimit \"%.60s\" is not RESOURCE:SOFT:HARD", s);
    *c1 = '\0';
    *c2 = '\0';
    struct rlim_req *r = &sp->rlimits[i];
    if (parse_u64(s, RLIMIT_NLIMITS - 1, &v) < 0) SPEC_FAIL("malformed exec spec: bad rlimit resource \"%.20s\"", s);
    r->resource = (int)v;
    if (parse_rlim_value(c1 + 1, &r->lim.rlim_cur) < 0 || parse_rlim_value(c2 + 1, &r->lim.rlim_max) < 0)
      SPEC_FAIL("malformed exec spec: bad value for rlimit %d", r->resource);
    if (r->lim.rlim_cur > r->lim.rlim_max)
      SPEC_FAIL("malformed exec spec: rlimit %d has a soft limit above its hard limit", r->resource);
  }

  sp->argc = spec_count(&c, "argument", UINT32_MAX);
  if (sp->argc < 1) SPEC_FAIL("malformed exec spec: no command");
  sp->argv = calloc(sp->argc + 1, sizeof(char *));
  if (!sp->argv) SPEC_FAIL("out of memory");
  for (size_t i = 0; i < sp->argc; i++) {
    sp->argv[i] = next_str(&c);
    if (!sp->argv[i]) SPEC_FAIL("malformed exec spec: missing argument #%zu", i);
  }

  sp->envc = spec_count(&c, "environment", UINT32_MAX);
  sp->envp = calloc(sp->envc + 1, sizeof(char *));
  if (!sp->envp) SPEC_FAIL("out of memory");
  for (size_t i = 0; i < sp->envc; i++) {
    s = next_str(&c);
    if (!s) SPEC_FAIL("malformed exec spec: missing environment entry #%zu", i + 1);
    char *eq = strchr(s, '=');
    if (!eq || eq == s) SPEC_FAIL("malformed exec spec: environment entry #%zu is not NAME=VALUE", i + 1);
    sp->envp[i] = s;
  }

  if (c.p != c.end) SPEC_FAIL("malformed exec spec: %zu unexpected bytes at its end", (size_t)(c.end - c.p));
}

static const char *rlimit_name(int r) {
  static const char *const names[] = {"RLIMIT_CPU",    "RLIMIT_FSIZE",  "RLIMIT_DATA",    "RLIMIT_STACK",
                                      "RLIMIT_CORE",   "RLIMIT_RSS",    "RLIMIT_NPROC",   "RLIMIT_NOFILE",
                                      "RLIMIT_MEMLOCK", "RLIMIT_AS",    "RLIMIT_LOCKS",   "RLIMIT_SIGPENDING",
                                      "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO",  "RLIMIT_RTTIME"};
  return r >= 0 && (size_t)r < sizeof names / sizeof names[0] ? names[r] : "RLIMIT_?";
}

static void rlim_text(rlim_t v, char *buf, size_t size) {
  if (v == RLIM_INFINITY)
    snprintf(buf, size, "inf");
  else
    snprintf(buf, size, "%llu", (unsigned long long)v);
}

/* The stages at which the command's process can fail, reported through the error pipe. */
enum stage { ST_SETPGID = 1, ST_TCSETPGRP, ST_CHROOT, ST_VIEW, ST_RLIMIT, ST_SETGROUPS, ST_SETGID, ST_SETUID, ST_CHDIR, ST_EXEC, ST_PTY };

struct child_error {
  int stage;
  int err;
  int arg;
};

__attribute__((noreturn)) static void child_fail(int fd, int stage, int arg) {
  struct child_error e = {stage, errno, arg};
  write_all(fd, &e, sizeof e);
  _exit(EXIT_NOT_FOUND);
}

static struct termios saved_tio;
static int tio_saved;

static void restore_tty(void) {
  if (tio_saved) {
    tcsetattr(0, TCSANOW, &saved_tio);
    tio_saved = 0;
  }
}

/* --no-chroot: the login's environment (ours, from sshd), with the local variables the spec
 * carries (SendEnv) put over it, and PWD the working directory. */
static char **host_environment(const struct spec *sp) {
  size_t own = 0;
  while (environ[own]) own++;
  char **out = calloc(own + sp->envc + 2, sizeof(char *));
  if (!out) SPEC_FAIL("out of memory");
  size_t n = 0;
  for (size_t i = 0; i < own; i++) {
    const char *eq = strchr(environ[i], '=');
    size_t name = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
    int replaced = strncmp(environ[i], "PWD=", 4) == 0 || strncmp(environ[i], "OLDPWD=", 7) == 0;
    for (size_t j = 0; !replaced && j < sp->envc; j++)
      replaced = strncmp(sp->envp[j], environ[i], name) == 0 && sp->envp[j][name] == '=';
    if (!replaced) out[n++] = environ[i];
  }
  for (size_t j = 0; j < sp->envc; j++) out[n++] = sp->envp[j];
  size_t pl = strlen(sp->cwd) + 5;
  char *pwd = malloc(pl);
  if (!pwd) SPEC_FAIL("out of memory");
  snprintf(pwd, pl, "PWD=%s", sp->cwd);
  out[n++] = pwd;
  out[n] = NULL;
  return out;
}

__attribute__((noreturn)) static void not_running(const char *session, const char *why) {
  die(EXIT_OUTRUN, "session %s is not running: %s", session, why);
}

/* Joins the pid and mount namespaces of the session's PID 1. */
static void join_session(const char *session) {
  const char *why;
  if (check_private_dir(session, &why) < 0) not_running(session, why ? why : strerror(errno));
  char path[PATH_MAX];
  if (join_path(path, sizeof path, session, "init.pid") < 0) not_running(session, strerror(errno));
  pid_t pid = read_pid_file(path);
  if (pid < 0) not_running(session, errno == EINVAL ? "init.pid is malformed" : strerror(errno));

  /* A /proc/PID directory fd stays bound to that very process: if it dies and its pid is reused,
   * lookups through it fail instead of reaching the newcomer. */
  char procdir[64];
  snprintf(procdir, sizeof procdir, "/proc/%ld", (long)pid);
  int pd = open(procdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (pd < 0) not_running(session, strerror(errno));
  int pidns = openat(pd, "ns/pid", O_RDONLY | O_CLOEXEC);
  int mntns = pidns < 0 ? -1 : openat(pd, "ns/mnt", O_RDONLY | O_CLOEXEC);
  /* A rootless session's namespaces belong to its user namespace: that is joined first. */
  int userns = mntns < 0 || getuid() == 0 ? -1 : openat(pd, "ns/user", O_RDONLY | O_CLOEXEC);
  if (pidns < 0 || mntns < 0 || (getuid() != 0 && userns < 0)) not_running(session, strerror(errno));

  /* It must be the PID 1 of a pid namespace (guards against a reused pid). */
  int sfd = openat(pd, "status", O_RDONLY | O_CLOEXEC);
  if (sfd < 0) not_running(session, strerror(errno));
  char st[4096];
  ssize_t n = read(sfd, st, sizeof st - 1);
  close(sfd);
  if (n < 0) not_running(session, strerror(errno));
  st[n] = '\0';
  char *ns = strstr(st, "\nNSpid:");
  char *eol = ns ? strchr(ns + 1, '\n') : NULL;
  if (eol) *eol = '\0';
  char *last = ns ? strrchr(ns, '\t') : NULL;
  if (!last || strcmp(last + 1, "1") != 0 || last == strchr(ns, '\t'))
    not_running(session, "its init.pid does not name the init of a pid namespace");
  close(pd);

  if (userns >= 0 && setns(userns, CLONE_NEWUSER) < 0) not_running(session, strerror(errno));
  if (userns >= 0) close(userns);
  if (setns(pidns, CLONE_NEWPID) < 0) not_running(session, strerror(errno));
  /* Joining a mount namespace needs an fs_struct of our own. This helper is single-threaded, so
   * it has one; but under qemu-user (a remote that emulates this helper's CPU) qemu runs a
   * thread of its own that shares it, and setns refuses with EINVAL. */
  if (unshare(CLONE_FS) < 0) not_running(session, strerror(errno));
  if (setns(mntns, CLONE_NEWNS) < 0) not_running(session, strerror(errno));
  close(pidns);
  close(mntns);
}

/* exec-pty: the helper opens the command's terminal itself instead of sshd (so that the command
 * outlives the SSH connection behind a relay) and copies bytes between its master and our own
 * stdin/stdout. 0: no pty of our own. */
static int own_pty;
static struct winsize own_ws;

/* What the run loop needs of a signal, from sigwaitinfo or a signalfd. */
struct sig_event {
  int signo, code, value;
  pid_t pid;
};

/* Bytes one way through the pty: read from `from` into buf, written to `to`. */
struct pipe_dir {
  int from, to, open;
  char buf[65536];
  size_t len, off;
};

/* Copies stdin to the master and the master to stdout until a signal comes (returned in *ev);
 * all three fds are non-blocking, so a stalled stdout (the relay's bound) never stops signals. */
static int pty_wait(int sfd, struct pipe_dir *in, struct pipe_dir *out, struct sig_event *ev) {
  for (;;) {
    struct pollfd p[5];
    int n = 0, iin = -1, iout = -1, oin = -1, oout = -1;
    p[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
    n++;
    if (in->open && in->len == 0) p[iin = n++] = (struct pollfd){.fd = in->from, .events = POLLIN};
    if (in->len > 0) p[iout = n++] = (struct pollfd){.fd = in->to, .events = POLLOUT};
    if (out->open && out->len == 0) p[oin = n++] = (struct pollfd){.fd = out->from, .events = POLLIN};
    if (out->len > 0) p[oout = n++] = (struct pollfd){.fd = out->to, .events = POLLOUT};
    if (poll(p, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    struct pipe_dir *dirs[2] = {in, out};
    int rd[2] = {iin, oin}, wr[2] = {iout, oout};
    for (int d = 0; d < 2; d++) {
      struct pipe_dir *pd = dirs[d];
      if (rd[d] >= 0 && p[rd[d]].revents) {
        ssize_t r = read(pd->from, pd->buf, sizeof pd->buf);
        /* EIO on the master: no slave is open any more (the command and its children ended). */
        if (r > 0) pd->len = (size_t)r, pd->off = 0;
        else if (r == 0 || (errno != EINTR && errno != EAGAIN)) pd->open = 0;
      }
      if (wr[d] >= 0 && p[wr[d]].revents) {
        ssize_t w = write(pd->to, pd->buf + pd->off, pd->len - pd->off);
        if (w > 0) {
          pd->off += (size_t)w;
          if (pd->off == pd->len) pd->len = pd->off = 0;
        } else if (w < 0 && errno != EINTR && errno != EAGAIN) {
          pd->len = pd->off = 0; /* nobody reads it any more: dropped, as a closed terminal would */
          pd->open = 0;
        }
      }
    }
    if (p[0].revents) {
      struct signalfd_siginfo si;
      ssize_t r = read(sfd, &si, sizeof si);
      if (r == (ssize_t)sizeof si) {
        *ev = (struct sig_event){(int)si.ssi_signo, si.ssi_code, si.ssi_int, (pid_t)si.ssi_pid};
        return 0;
      }
      if (r < 0 && errno != EAGAIN && errno != EINTR) return -1;
    }
  }
}

/* After the command ended: what it wrote that is still in the master goes out, then we exit. */
static void pty_drain(int m, struct pipe_dir *out) {
  int fl = fcntl(1, F_GETFL);
  if (fl >= 0) fcntl(1, F_SETFL, fl & ~O_NONBLOCK);
  if (out->len > 0) write_all(1, out->buf + out->off, out->len - out->off);
  for (;;) {
    ssize_t r = read(m, out->buf, sizeof out->buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    if (write_all(1, out->buf, (size_t)r) < 0) return;
  }
}

static int cmd_exec(int argc, char **argv) {
  if (argc != 3 && argc != 4) usage();
  const char *session = argv[2];
  check_session_path(session);
  char exec_pid_name[64], cmd_pid_name[64];
  run_file(exec_pid_name, sizeof exec_pid_name, "exec", argc == 4 ? argv[3] : NULL);
  run_file(cmd_pid_name, sizeof cmd_pid_name, "cmd", argc == 4 ? argv[3] : NULL);

  /* a. Handshake. The tty goes raw first, so nothing is echoed and READY is sent verbatim. */
  int tty = !own_pty && isatty(0);
  if (tty) {
    if (tcgetattr(0, &saved_tio) < 0) die(EXIT_OUTRUN, "tcgetattr: %s", strerror(errno));
    tio_saved = 1;
    struct termios raw = saved_tio;
    cfmakeraw(&raw);
    raw.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
    if (tcsetattr(0, TCSANOW, &raw) < 0) die(EXIT_OUTRUN, "tcsetattr: %s", strerror(errno));
  }
  if (write_all(1, READY_LINE, sizeof READY_LINE - 1) < 0) {
    int e = errno;
    restore_tty();
    die(EXIT_OUTRUN, "writing the handshake: %s", strerror(e));
  }
  unsigned char hdr[4];
  if (read_exact(0, hdr, 4) < 0) {
    int e = errno;
    restore_tty();
    die(EXIT_OUTRUN, "reading the exec spec length: %s", e ? strerror(e) : "unexpected end of input");
  }
  uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
  if (len < 1 || len > SPEC_MAX) {
    restore_tty();
    die(EXIT_OUTRUN, "malformed exec spec: length %u is out of range (1..%u)", len, SPEC_MAX);
  }
  char *buf = malloc(len);
  if (!buf) {
    restore_tty();
    die(EXIT_OUTRUN, "allocating %u bytes for the exec spec: %s", len, strerror(errno));
  }
  if (read_exact(0, buf, len) < 0) {
    int e = errno;
    restore_tty();
    die(EXIT_OUTRUN, "reading the exec spec: %s", e ? strerror(e) : "unexpected end of input");
  }
  restore_tty();

  /* b. Spec. */
  struct spec sp;
  memset(&sp, 0, sizeof sp);
  parse_spec(buf, len, &sp);

  /* c. Namespaces. */
  join_session(session);

  /* d. The command. Signals to forward are blocked now and taken with sigwaitinfo later, so none
   * is lost between the fork and the wait. */
  static const int fwd[] = {SIGTERM, SIGINT,  SIGHUP,  SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH,
                            SIGCONT, SIGTSTP, SIGTTIN, SIGPIPE, SIGABRT, SIGFPE,  SIGILL,  SIGSEGV};
  sigset_t set;
  sigemptyset(&set);
  for (size_t i = 0; i < sizeof fwd / sizeof fwd[0]; i++) sigaddset(&set, fwd[i]);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIZE_SIGNAL);
  catch_and_block(&set);
  sigset_t ttou;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  sigprocmask(SIG_BLOCK, &ttou, NULL); /* tcsetpgrp from a background group */

  pid_t fg_before = tty ? tcgetpgrp(0) : -1;
  /* Our own pty, from the remote's devpts as the agent's mount namespace sees it (the chroot
   * binds the same /dev, so the slave's name is the same in there and `tty` prints it). */
  int m = -1;
  char slave[128];
  if (own_pty) {
    m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, sizeof slave) != 0)
      die(EXIT_OUTRUN, "opening a pseudo-terminal: %s", strerror(errno));
    if (ioctl(m, TIOCSWINSZ, &own_ws) < 0) die(EXIT_OUTRUN, "setting the terminal size: %s", strerror(errno));
  }
  int ep[2];
  if (pipe2(ep, O_CLOEXEC) < 0) die(EXIT_OUTRUN, "pipe: %s", strerror(errno));
  char root[PATH_MAX], stage[PATH_MAX];
  if (join_path(root, sizeof root, session, "root") < 0 || join_path(stage, sizeof stage, session, "view-stage") < 0)
    die(EXIT_OUTRUN, "%s: %s", session, strerror(errno));
  /* --no-chroot keeps the login's identity where it is root (as `ssh host cmd` would run); a
   * rootless session's login is the local uid already. */
  int keep_identity = sp.host_view && getuid() == 0;
  if (sp.host_view) sp.envp = host_environment(&sp);

  pid_t child = fork();
  if (child < 0) {
    if (errno == ENOMEM) not_running(session, "its pid namespace has no init any more");
    die(EXIT_OUTRUN, "fork: %s", strerror(errno));
  }
  if (child == 0) {
    close(ep[0]);
    if (own_pty) {
      /* A session of its own whose controlling terminal is the slave, as sshd would do it. */
      int s = setsid() < 0 ? -1 : open(slave, O_RDWR | O_CLOEXEC);
      if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0) child_fail(ep[1], ST_PTY, 0);
      if (dup2(s, 0) < 0 || dup2(s, 1) < 0 || dup2(s, 2) < 0) child_fail(ep[1], ST_PTY, 0);
      close(s);
    } else if (setpgid(0, 0) < 0) {
      child_fail(ep[1], ST_SETPGID, 0);
    }
    if (tty && tcsetpgrp(0, getpid()) < 0 && errno != ENOTTY) child_fail(ep[1], ST_TCSETPGRP, 0);
    if (sp.host_view) {
      const char *failed;
      if (host_view(root, stage, sp.view, sp.nview, &failed) < 0) {
        int at = failed >= buf && failed < buf + len ? (int)(failed - buf) : -1;
        child_fail(ep[1], ST_VIEW, at);
      }
    } else if (chroot(root) < 0) {
      child_fail(ep[1], ST_CHROOT, 0);
    }
    /* Limits before dropping privileges, so that raising a hard limit is possible. */
    for (size_t i = 0; i < sp.nrlimits; i++) {
      __rlimit_resource_t res = (__rlimit_resource_t)sp.rlimits[i].resource;
      if (setrlimit(res, &sp.rlimits[i].lim) == 0) continue;
      /* The remote may not allow raising a hard limit as high as the local one (no
       * CAP_SYS_RESOURCE): then the remote's hard limit caps both values. */
      struct rlimit cur, capped = sp.rlimits[i].lim;
      if (errno != EPERM || getrlimit(res, &cur) < 0) child_fail(ep[1], ST_RLIMIT, (int)i);
      if (capped.rlim_max > cur.rlim_max) capped.rlim_max = cur.rlim_max;
      if (capped.rlim_cur > capped.rlim_max) capped.rlim_cur = capped.rlim_max;
      if (setrlimit(res, &capped) < 0) child_fail(ep[1], ST_RLIMIT, (int)i);
    }
    /* A rootless session mapped without newgidmap may not change groups: the command keeps the
     * login's (they show as the overflow gid). */
    if (!keep_identity) {
      if (!userns_setgroups_denied() && setgroups(sp.ngroups, sp.groups) < 0) child_fail(ep[1], ST_SETGROUPS, 0);
      if (setgid(sp.gid) < 0) child_fail(ep[1], ST_SETGID, 0);
      if (setuid(sp.uid) < 0) child_fail(ep[1], ST_SETUID, 0);
    }
    /* Entered as the user, so that permissions are checked as the user. */
    if (chdir(sp.cwd) < 0) child_fail(ep[1], ST_CHDIR, 0);
    umask(sp.umask);
    reset_signals();
    environ = sp.envp;
    execvp(sp.argv[0], sp.argv);
    child_fail(ep[1], ST_EXEC, 0);
  }
  close(ep[1]);
  /* Both sides do it: no race with a signal forwarded to the group. Not with our own pty: the
   * child's setsid would fail on a group leader; the group exists once ep closes at its exec. */
  if (!own_pty) setpgid(child, child);

  struct child_error ce;
  ssize_t r;
  do r = read(ep[0], &ce, sizeof ce);
  while (r < 0 && errno == EINTR);
  close(ep[0]);

  if (r == (ssize_t)sizeof ce) {
    int st;
    while (waitpid(child, &st, 0) < 0 && errno == EINTR) {
    }
    if (tty && fg_before > 0) tcsetpgrp(0, fg_before);
    const char *es = strerror(ce.err);
    switch (ce.stage) {
      case ST_EXEC:
        if (ce.err == ENOENT) {
          if (strchr(sp.argv[0], '/')) {
            umsg("%s: %s", sp.argv[0], es);
          } else {
            umsg("%s: command not found", sp.argv[0]);
          }
          exit(EXIT_NOT_FOUND);
        }
        umsg("%s: %s", sp.argv[0], es);
        exit(EXIT_NOT_EXECUTABLE);
      case ST_CHDIR:
        umsg("cannot enter the working directory %s on the remote: %s", sp.cwd, es);
        exit(EXIT_OUTRUN);
      case ST_SETPGID: die(EXIT_OUTRUN, "setpgid: %s", es);
      case ST_PTY: die(EXIT_OUTRUN, "making %s the command's terminal: %s", slave, es);
      case ST_TCSETPGRP: die(EXIT_OUTRUN, "making the command the terminal's foreground job: %s", es);
      case ST_CHROOT: die(EXIT_OUTRUN, "chroot to %s: %s", root, es);
      case ST_VIEW:
        umsg("cannot put the local %s at the same path on the remote (--no-chroot): %s", ce.arg >= 0 && (size_t)ce.arg < len ? buf + ce.arg : "tree", es);
        exit(EXIT_OUTRUN);
      case ST_RLIMIT: {
        struct rlim_req *rq = &sp.rlimits[ce.arg >= 0 && (size_t)ce.arg < sp.nrlimits ? ce.arg : 0];
        char soft[24], hard[24];
        rlim_text(rq->lim.rlim_cur, soft, sizeof soft);
        rlim_text(rq->lim.rlim_max, hard, sizeof hard);
        die(EXIT_OUTRUN, "setrlimit %s (resource %d) to %s:%s: %s", rlimit_name(rq->resource), rq->resource, soft, hard, es);
      }
      case ST_SETGROUPS: die(EXIT_OUTRUN, "setgroups (%zu groups): %s", sp.ngroups, es);
      case ST_SETGID: die(EXIT_OUTRUN, "setgid %lu: %s", (unsigned long)sp.gid, es);
      case ST_SETUID: die(EXIT_OUTRUN, "setuid %lu: %s", (unsigned long)sp.uid, es);
      default: die(EXIT_OUTRUN, "starting the command: %s", es);
    }
  }

  /* Where `outrun-helper signal` finds us: OpenSSH refuses "signal" channel requests for root
   * sessions (no post-auth privilege separation), so the client signals through that instead. */
  if (write_pid_file(session, exec_pid_name, getpid()) < 0 || write_pid_file(session, cmd_pid_name, child) < 0)
    umsg("warning: cannot record the command's pid in %s: %s", session, strerror(errno));

  /* e. Running: forward signals until the command ends. */
  int status = 0;
  int hung_up = 0;
  int group = tty || own_pty; /* signals go to the terminal's job, not only to the command */
  int sfd = -1;
  static struct pipe_dir pin, pout;
  if (own_pty) {
    sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) die(EXIT_OUTRUN, "signalfd: %s", strerror(errno));
    for (int fd = 0; fd < 2; fd++) {
      int fl = fcntl(fd, F_GETFL);
      if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) die(EXIT_OUTRUN, "fcntl: %s", strerror(errno));
    }
    if (fcntl(m, F_SETFL, O_RDWR | O_NONBLOCK) < 0) die(EXIT_OUTRUN, "fcntl: %s", strerror(errno));
    pin.from = 0, pin.to = m, pin.open = 1;
    pout.from = m, pout.to = 1, pout.open = 1;
  }
  for (;;) {
    struct sig_event si;
    int sig;
    if (own_pty) {
      if (pty_wait(sfd, &pin, &pout, &si) < 0) die(EXIT_OUTRUN, "copying the terminal: %s", strerror(errno));
      sig = si.signo;
    } else {
      siginfo_t info;
      sig = sigwait_retry(&set, &info);
      if (sig < 0) die(EXIT_OUTRUN, "sigwaitinfo: %s", strerror(errno));
      si = (struct sig_event){sig, info.si_code, info.si_value.sival_int, info.si_pid};
    }
    /* The relay gave up on the client (past the reconnect limit): the terminal is gone. */
    int relay_gone = own_pty && sig == SIGTERM && si.code == SI_USER && si.pid == getppid();
    if (relay_gone || (sig == SIGHUP && si.code == SI_QUEUE && si.value == HANGUP_VALUE)) {
      if (own_pty) {
        /* Closing the master hangs the slave up: SIGHUP (and SIGCONT) to the command's session,
         * its reads end, as when a terminal goes away. */
        kill(-child, SIGHUP);
        if (m >= 0) close(m);
        m = -1;
        pin.open = pout.open = 0;
        pin.len = pout.len = 0;
        continue;
      }
      /* The local terminal went away (`outrun-helper signal ... HANGUP`): the command's terminal
       * goes too, as the local kernel would do it. SIGHUP first, so that the command has it
       * before its reads end; the kernel's own SIGHUP to this session leader is then only the
       * echo of it. */
      kill(tty ? -child : child, SIGHUP);
      if (tty && ioctl(0, TIOCVHANGUP, 0) == 0) hung_up = 1;
      continue;
    }
    if (sig == SIGHUP && hung_up && si.code == SI_KERNEL) continue;
    if (sig == SIZE_SIGNAL) {
      /* The kernel sends SIGWINCH to the terminal's foreground job itself. */
      struct winsize ws = {.ws_row = (unsigned short)((unsigned)si.value >> 16), .ws_col = (unsigned short)(si.value & 0xffff)};
      if (own_pty && m >= 0 && si.code == SI_QUEUE && ws.ws_row && ws.ws_col) ioctl(m, TIOCSWINSZ, &ws);
      continue;
    }
    if (sig == SIGTERM && si.code == SI_QUEUE && si.value == TIMEOUT_VALUE) {
      /* --timeout ran out (`outrun-helper signal ... TIMEOUT`): what timeout(1) sends, SIGTERM
       * to the command and to its whole process group (with or without a terminal), then
       * SIGCONT to both, so that a stopped command sees the SIGTERM too. */
      kill(child, SIGTERM);
      kill(-child, SIGTERM);
      kill(child, SIGCONT);
      kill(-child, SIGCONT);
      continue;
    }
    if (sig != SIGCHLD) {
      kill(group ? -child : child, sig);
      continue;
    }
    pid_t p;
    while ((p = waitpid(child, &status, WNOHANG)) < 0 && errno == EINTR) {
    }
    if (p == child) break;
  }
  if (tty && fg_before > 0) tcsetpgrp(0, fg_before);
  if (own_pty && m >= 0) pty_drain(m, &pout);
  /* A named run's files go with it (a master's session outlives many runs). */
  if (argc == 4) {
    char path[PATH_MAX];
    if (join_path(path, sizeof path, session, cmd_pid_name) == 0) unlink(path);
    if (join_path(path, sizeof path, session, exec_pid_name) == 0) unlink(path);
  }
  exit_like(status);
}

/* ---------------------------------------------------------------- signal */

static const struct {
  const char *name;
  int sig;
} signal_names[] = {{"INT", SIGINT},   {"TERM", SIGTERM}, {"HUP", SIGHUP},   {"QUIT", SIGQUIT},
                    {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"ALRM", SIGALRM}, {"WINCH", SIGWINCH},
                    {"CONT", SIGCONT}, {"TSTP", SIGTSTP}, {"PIPE", SIGPIPE}, {"KILL", SIGKILL}};

/* The parent pid of PID from /proc/PID/status, or -1. */
static pid_t parent_of(pid_t pid) {
  char path[64], buf[4096];
  snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char *p = strstr(buf, "\nPPid:");
  uint64_t v;
  if (!p) return -1;
  p += 7;
  while (*p == ' ' || *p == '\t') p++;
  char num[24];
  size_t i = 0;
  while (i < sizeof num - 1 && p[i] >= '0' && p[i] <= '9') num[i] = p[i], i++;
  num[i] = '\0';
  return parse_u64(num, INT_MAX, &v) < 0 ? -1 : (pid_t)v;
}

/* outrun-helper signal SESSION_DIR NAME: hands NAME to the session's `exec` helper, which forwards
 * it to the command as sshd would have. KILL cannot be forwarded (it would end the helper), so it
 * goes straight to the command's process group. HANGUP (the local terminal went away) makes the
 * exec helper give the command SIGHUP and hang up its terminal: reads then see end of file and
 * writes fail with EIO, the foreground group gets SIGHUP when the helper ends, as locally. TIMEOUT
 * (--timeout ran out) makes it send SIGTERM and SIGCONT to the command and its process group, as
 * timeout(1) does. */
static int cmd_signal(int argc, char **argv) {
  if (argc != 4 && argc != 5) usage();
  const char *session = argv[2];
  check_session_path(session);
  char exec_pid_name[64], cmd_pid_name[64];
  run_file(exec_pid_name, sizeof exec_pid_name, "exec", argc == 5 ? argv[4] : NULL);
  run_file(cmd_pid_name, sizeof cmd_pid_name, "cmd", argc == 5 ? argv[4] : NULL);
  int sig = 0;
  int hangup = strcmp(argv[3], "HANGUP") == 0;
  int timeout = strcmp(argv[3], "TIMEOUT") == 0;
  unsigned rows = 0, cols = 0;
  char tail;
  int size = sscanf(argv[3], "SIZE=%ux%u%c", &rows, &cols, &tail) == 2;
  if (size && (rows < 1 || rows > 65535 || cols < 1 || cols > 65535)) die(EXIT_USAGE, "bad terminal size %s", argv[3]);
  for (size_t i = 0; i < sizeof signal_names / sizeof signal_names[0]; i++)
    if (strcmp(argv[3], signal_names[i].name) == 0) sig = signal_names[i].sig;
  if (!sig && !hangup && !timeout && !size) die(EXIT_USAGE, "unknown signal %s", argv[3]);
  const char *why;
  if (check_private_dir(session, &why) < 0) die(EXIT_OUTRUN, "session %s: %s", session, why ? why : strerror(errno));
  char path[PATH_MAX];
  if (join_path(path, sizeof path, session, exec_pid_name) < 0) die(EXIT_OUTRUN, "%s: %s", session, strerror(errno));
  pid_t helper = read_pid_file(path);
  if (helper < 0) die(EXIT_OUTRUN, "session %s runs no command: %s", session, strerror(errno));
  /* The pid must still be an outrun-helper (same executable as us), not a recycled pid. */
  char exe[64];
  struct stat self, other;
  snprintf(exe, sizeof exe, "/proc/%ld/exe", (long)helper);
  if (stat("/proc/self/exe", &self) < 0 || stat(exe, &other) < 0 || self.st_dev != other.st_dev ||
      self.st_ino != other.st_ino)
    die(EXIT_OUTRUN, "session %s runs no command any more", session);
  if (timeout) {
    /* SIGTERM with a value that says "timeout": the exec helper sends it to the command's group. */
    union sigval v = {.sival_int = TIMEOUT_VALUE};
    if (sigqueue(helper, SIGTERM, v) < 0) die(EXIT_OUTRUN, "sigqueue %ld: %s", (long)helper, strerror(errno));
    return 0;
  }
  if (size) {
    union sigval v = {.sival_int = (int)(rows << 16 | cols)};
    if (sigqueue(helper, SIZE_SIGNAL, v) < 0) die(EXIT_OUTRUN, "sigqueue %ld: %s", (long)helper, strerror(errno));
    return 0;
  }
  if (hangup) {
    /* SIGHUP with a value that says "hang-up": the exec helper hangs up the command's terminal. */
    union sigval v = {.sival_int = HANGUP_VALUE};
    if (sigqueue(helper, SIGHUP, v) < 0) die(EXIT_OUTRUN, "sigqueue %ld: %s", (long)helper, strerror(errno));
    return 0;
  }
  if (sig != SIGKILL) {
    if (kill(helper, sig) < 0) die(EXIT_OUTRUN, "kill %ld: %s", (long)helper, strerror(errno));
    return 0;
  }
  if (join_path(path, sizeof path, session, cmd_pid_name) < 0) die(EXIT_OUTRUN, "%s: %s", session, strerror(errno));
  pid_t cmd = read_pid_file(path);
  if (cmd < 0 || parent_of(cmd) != helper) die(EXIT_OUTRUN, "session %s runs no command any more", session);
  if (kill(-cmd, SIGKILL) < 0 && kill(cmd, SIGKILL) < 0) die(EXIT_OUTRUN, "kill %ld: %s", (long)cmd, strerror(errno));
  return 0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
  if (argc < 2) usage();
  if (strcmp(argv[1], "--version") == 0) {
    if (argc != 2) usage();
    static const char v[] = "outrun-helper " HELPER_VERSION "\n";
    return write_all(1, v, sizeof v - 1) < 0 ? EXIT_OUTRUN : 0;
  }
  if (strcmp(argv[1], "agent") == 0) return cmd_agent(argc, argv);
  if (strcmp(argv[1], "bind") == 0) return cmd_bind(argc, argv);
  if (strcmp(argv[1], "exec") == 0) return cmd_exec(argc, argv);
  if (strcmp(argv[1], "exec-pty") == 0) {
    /* exec-pty ROWS COLS SESSION_DIR [RUN]: as exec, on a pty of our own of that size. */
    if (argc != 5 && argc != 6) usage();
    char *end;
    unsigned long rows = strtoul(argv[2], &end, 10);
    if (*end || rows < 1 || rows > 65535) usage();
    unsigned long cols = strtoul(argv[3], &end, 10);
    if (*end || cols < 1 || cols > 65535) usage();
    own_pty = 1;
    own_ws = (struct winsize){.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
    argv[3] = argv[1];
    return cmd_exec(argc - 2, argv + 2);
  }
  if (strcmp(argv[1], "signal") == 0) return cmd_signal(argc, argv);
  if (strcmp(argv[1], "try-userns") == 0) {
    if (argc != 3 || argv[2][0] != '/') usage();
    return userns_try_fuse(argv[2]);
  }
  usage();
}
