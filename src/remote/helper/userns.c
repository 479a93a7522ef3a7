/*
 * Rootless sessions: the user namespace a non-root login runs its session in.
 *
 * Why here and not in node: unshare(CLONE_NEWUSER) fails in a multithreaded process (node has
 * threads before any JS runs), so the single-threaded helper makes the namespace and then execs
 * node inside it. Why the parent writes the maps: an unprivileged process may only map its own
 * uid; ranges from /etc/subuid need newuidmap/newgidmap (setuid root), which must run from the
 * parent user namespace against the child's pid. So the child is cloned into the new namespaces
 * and waits on a pipe (it already does, for init.pid) while the parent maps it.
 */
#define _GNU_SOURCE
#include "userns.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static int write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  size_t n = strlen(text);
  ssize_t w = write(fd, text, n);
  int e = errno;
  close(fd);
  if (w != (ssize_t)n) {
    errno = w < 0 ? e : EIO;
    return -1;
  }
  return 0;
}

/* The first small integer in a /proc/sys file, or -1 if there is none. */
static long read_sysctl(const char *path) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[32];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  char *end;
  long v = strtol(buf, &end, 10);
  return end == buf ? -1 : v;
}

const char *userns_refusal(int err, char *buf, size_t size) {
  if (read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == 0)
    snprintf(buf, size, "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0); "
                        "enable them as root: sysctl -w kernel.unprivileged_userns_clone=1");
  else if (read_sysctl("/proc/sys/user/max_user_namespaces") == 0)
    snprintf(buf, size, "user namespaces are disabled (user.max_user_namespaces=0); "
                        "enable them as root: sysctl -w user.max_user_namespaces=15000");
  else if (err == ENOSPC)
    snprintf(buf, size, "the user namespace limit is reached (user.max_user_namespaces); raise it as root");
  else
    snprintf(buf, size, "unprivileged user namespaces are refused here (%s; a seccomp filter or a container "
                        "runtime may forbid them); log in as root, or allow unshare(CLONE_NEWUSER)", strerror(err));
  return buf;
}

pid_t userns_clone(void) {
  /* A raw clone without a stack behaves like fork; glibc's fork() cannot take namespace flags. */
  return (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL);
}

/* A range NAME_OR_UID:START:COUNT of /etc/subuid or /etc/subgid for this login (first one wins). */
static int sub_range(const char *file, const char *name, unsigned long id, unsigned long *start, unsigned long *count) {
  FILE *f = fopen(file, "re");
  if (!f) return -1;
  char line[512];
  int found = -1;
  char idtext[24];
  snprintf(idtext, sizeof idtext, "%lu", id);
  while (found < 0 && fgets(line, sizeof line, f)) {
    char *c1 = strchr(line, ':');
    if (!c1) continue;
    *c1 = '\0';
    if (!(name && strcmp(line, name) == 0) && strcmp(line, idtext) != 0) continue;
    char *end;
    unsigned long s = strtoul(c1 + 1, &end, 10);
    if (*end != ':') continue;
    unsigned long n = strtoul(end + 1, &end, 10);
    if (n == 0 || s > UINT32_MAX || n > UINT32_MAX) continue;
    *start = s;
    *count = n;
    found = 0;
  }
  fclose(f);
  return found;
}

static const char *find_tool(const char *name, char *buf, size_t size) {
  static const char *dirs[] = {"/usr/bin", "/bin", "/usr/sbin", "/sbin", "/usr/local/bin"};
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
    snprintf(buf, size, "%s/%s", dirs[i], name);
    if (access(buf, X_OK) == 0) return buf;
  }
  return NULL;
}

/* Runs TOOL PID INSIDE OUTSIDE 1 [ranges around INSIDE]: INSIDE is the local id, mapped to the
 * login's own; the range fills 0..count around it, so local root and the other local ids map. */
static int run_map_tool(const char *tool, pid_t pid, unsigned long inside, unsigned long outside, unsigned long start,
                        unsigned long count, char *why, size_t whysize) {
  char a[10][24];
  char *argv[12];
  int n = 0;
  argv[n++] = (char *)tool;
  snprintf(a[0], 24, "%ld", (long)pid);
  argv[n++] = a[0];
  snprintf(a[1], 24, "%lu", inside);
  snprintf(a[2], 24, "%lu", outside);
  snprintf(a[3], 24, "1");
  argv[n++] = a[1], argv[n++] = a[2], argv[n++] = a[3];
  unsigned long below = inside < count ? inside : count;
  if (below > 0) {
    snprintf(a[4], 24, "0");
    snprintf(a[5], 24, "%lu", start);
    snprintf(a[6], 24, "%lu", below);
    argv[n++] = a[4], argv[n++] = a[5], argv[n++] = a[6];
  }
  if (inside < count) {
    snprintf(a[7], 24, "%lu", inside + 1);
    snprintf(a[8], 24, "%lu", start + inside);
    snprintf(a[9], 24, "%lu", count - inside);
    argv[n++] = a[7], argv[n++] = a[8], argv[n++] = a[9];
  }
  argv[n] = NULL;
  pid_t p = fork();
  if (p < 0) {
    snprintf(why, whysize, "fork: %s", strerror(errno));
    return -1;
  }
  if (p == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) dup2(null, 1);
    execv(tool, argv);
    _exit(127);
  }
  int st;
  while (waitpid(p, &st, 0) < 0)
    if (errno != EINTR) {
      snprintf(why, whysize, "waitpid: %s", strerror(errno));
      return -1;
    }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
    snprintf(why, whysize, "%s failed (status %d)", tool, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
    return -1;
  }
  return 0;
}

int userns_map(pid_t pid, uid_t local_uid, gid_t local_gid, char *why, size_t whysize) {
  uid_t uid = getuid();
  gid_t gid = getgid();
  const char *name = getenv("USER");
  if (!name || !*name) name = getenv("LOGNAME");
  unsigned long us, uc, gs, gc;
  char uidtool[64], gidtool[64];
  const char *nu = find_tool("newuidmap", uidtool, sizeof uidtool);
  const char *ng = find_tool("newgidmap", gidtool, sizeof gidtool);
  if (nu && ng && sub_range("/etc/subuid", name, uid, &us, &uc) == 0 && sub_range("/etc/subgid", name, uid, &gs, &gc) == 0) {
    /* Whole ranges: local root and other owners map, groups can be set. newuidmap checks the
     * ranges against /etc/subuid itself: what we read there is only a proposal. */
    if (run_map_tool(nu, pid, local_uid, uid, us, uc, why, whysize) < 0) return -1;
    if (run_map_tool(ng, pid, local_gid, gid, gs, gc, why, whysize) < 0) return -1;
    return 0;
  }
  /* Only what an unprivileged process may: the local ids to the login's own; setgroups denied. */
  char path[64], map[64];
  snprintf(path, sizeof path, "/proc/%ld/setgroups", (long)pid);
  if (write_file(path, "deny") < 0) {
    snprintf(why, whysize, "writing %s: %s", path, strerror(errno));
    return -1;
  }
  snprintf(path, sizeof path, "/proc/%ld/uid_map", (long)pid);
  snprintf(map, sizeof map, "%lu %lu 1\n", (unsigned long)local_uid, (unsigned long)uid);
  if (write_file(path, map) < 0) {
    snprintf(why, whysize, "writing %s: %s", path, strerror(errno));
    return -1;
  }
  snprintf(path, sizeof path, "/proc/%ld/gid_map", (long)pid);
  snprintf(map, sizeof map, "%lu %lu 1\n", (unsigned long)local_gid, (unsigned long)gid);
  if (write_file(path, map) < 0) {
    snprintf(why, whysize, "writing %s: %s", path, strerror(errno));
    return -1;
  }
  return 0;
}

int userns_keep_mount_cap(void) {
  /* uid 0 in the namespace keeps its capabilities across execve anyway. */
  if (getuid() == 0) return 0;
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d) < 0) return -1;
  d[CAP_SYS_ADMIN / 32].inheritable |= 1u << (CAP_SYS_ADMIN % 32);
  if (syscall(SYS_capset, &h, d) < 0) return -1;
  return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0);
}

int userns_try_fuse(const char *dir) {
  uid_t uid = getuid();
  gid_t gid = getgid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) {
    char why[512];
    fprintf(stderr, "outrun-helper: cannot create a user namespace: %s\n", userns_refusal(errno, why, sizeof why));
    return 1;
  }
  char map[64];
  snprintf(map, sizeof map, "0 %lu 1\n", (unsigned long)uid);
  if (write_file("/proc/self/setgroups", "deny") < 0 || write_file("/proc/self/uid_map", map) < 0) {
    fprintf(stderr, "outrun-helper: mapping our uid in a user namespace: %s\n", strerror(errno));
    return 1;
  }
  snprintf(map, sizeof map, "0 %lu 1\n", (unsigned long)gid);
  if (write_file("/proc/self/gid_map", map) < 0) {
    fprintf(stderr, "outrun-helper: mapping our gid in a user namespace: %s\n", strerror(errno));
    return 1;
  }
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    fprintf(stderr, "outrun-helper: opening /dev/fuse: %s\n", strerror(errno));
    return 1;
  }
  char data[128];
  snprintf(data, sizeof data, "fd=%d,rootmode=40000,user_id=0,group_id=0", fd);
  if (mount("outrun-check", dir, "fuse", MS_NODEV | MS_NOSUID, data) < 0) {
    fprintf(stderr, "outrun-helper: mounting FUSE in a user namespace: %s\n", strerror(errno));
    return 1;
  }
  umount2(dir, MNT_DETACH);
  close(fd);
  return 0;
}

int userns_setgroups_denied(void) {
  int fd = open("/proc/self/setgroups", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[16];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  return n >= 4 && strncmp(buf, "deny", 4) == 0;
}
