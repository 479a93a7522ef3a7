/* --no-chroot: the remote's own tree, with the local paths the command needs bound over it at
 * the same absolute paths (see host-view.h). Runs in the command's child, before it drops its
 * privileges; nothing here outlives the command's mount namespace. */
#define _GNU_SOURCE
#include "host-view.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* Directories this view made (tmpfs roots and what was created in them): a missing path under
 * one of them is simply created there. */
#define MADE_MAX 256
static char *made[MADE_MAX];
static size_t nmade;

static int was_made(const char *dir) {
  for (size_t i = 0; i < nmade; i++)
    if (strcmp(made[i], dir) == 0) return 1;
  return 0;
}

static void note_made(const char *dir) {
  if (nmade < MADE_MAX && !was_made(dir)) made[nmade++] = strdup(dir);
}

static int path_of(char *out, size_t size, const char *a, const char *b) {
  int n = snprintf(out, size, "%s%s%s", a, a[strlen(a) - 1] == '/' ? "" : "/", b);
  if (n < 0 || (size_t)n >= size) {
    errno = ENAMETOOLONG;
    return -1;
  }
  return 0;
}

/* What follows `dir` in `path` when `path` lies below it ("a/b" for "/x" and "/x/a/b"), else NULL. */
static const char *below_dir(const char *dir, const char *path) {
  if (strcmp(dir, "/") == 0) return path + 1;
  size_t n = strlen(dir);
  return strncmp(path, dir, n) == 0 && path[n] == '/' ? path + n + 1 : NULL;
}

/* A stand-in for entry `name` of `from` in `to`: the same kind of node, the original bound on it
 * (a symlink is copied). An entry that cannot be bound is left out (it stays as it was on the
 * remote for nobody: the tmpfs hides it). */
static int stand_in(const char *from, const char *to, const char *name) {
  char src[PATH_MAX], dst[PATH_MAX];
  if (path_of(src, sizeof src, from, name) < 0 || path_of(dst, sizeof dst, to, name) < 0) return -1;
  struct stat st;
  if (lstat(src, &st) < 0) return errno == ENOENT ? 0 : -1;
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlink(src, target, sizeof target - 1);
    if (n < 0) return -1;
    target[n] = '\0';
    return symlink(target, dst);
  }
  if (S_ISDIR(st.st_mode)) {
    if (mkdir(dst, 0755) < 0) return -1;
  } else {
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    close(fd);
  }
  if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) == 0) return 0;
  if (errno != EACCES && errno != EPERM) return -1;
  if (S_ISDIR(st.st_mode)) rmdir(dst);
  else unlink(dst);
  return 0;
}

/* Puts a tmpfs holding `dir`'s entries in its place (`dir` exists and is a directory). */
static int replicate(const char *dir, const char *stage) {
  struct stat st;
  if (stat(dir, &st) < 0) return -1;
  if (mount("outrun-view", stage, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") < 0) return -1;
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    rc = stand_in(dir, stage, e->d_name);
  }
  closedir(d);
  if (rc < 0) return -1;
  /* When `dir` holds the stage, the entry bound through brought a copy of the stage's own
   * mount along (at the stage's path inside the stand-in): it goes. */
  const char *below = below_dir(dir, stage);
  char inner[PATH_MAX];
  if (below && path_of(inner, sizeof inner, stage, below) == 0) umount2(inner, MNT_DETACH);
  chmod(stage, st.st_mode & 07777);
  (void)!chown(stage, st.st_uid, st.st_gid); /* a rootless view may not: the stand-in stays ours */
  if (strcmp(dir, "/") == 0) {
    /* A mount over / is not seen from /: the stand-in becomes the root instead. */
    if (chroot(stage) < 0 || chdir("/") < 0) return -1;
  } else if (mount(stage, dir, NULL, MS_MOVE, NULL) < 0) {
    return -1;
  }
  note_made(dir);
  return 0;
}

/* Makes `path` (missing) as a directory or an empty file, replicating its deepest existing
 * ancestor on a tmpfs unless this view made that ancestor. */
static int make_point(const char *path, int dir, const char *stage) {
  char anc[PATH_MAX];
  snprintf(anc, sizeof anc, "%s", path);
  struct stat st;
  for (;;) {
    char *slash = strrchr(anc, '/');
    if (slash == anc) slash[1] = '\0';
    else *slash = '\0';
    if (stat(anc, &st) == 0) break;
    if (errno != ENOENT || slash == anc) return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  if (!was_made(anc) && replicate(anc, stage) < 0) return -1;
  /* Each missing component below the ancestor, the last one as the source's kind. */
  char part[PATH_MAX];
  size_t at = strcmp(anc, "/") == 0 ? 0 : strlen(anc);
  for (;;) {
    const char *next = strchr(path + at + 1, '/');
    size_t end = next ? (size_t)(next - path) : strlen(path);
    memcpy(part, path, end);
    part[end] = '\0';
    if (!next && !dir) {
      int fd = open(part, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0) return -1;
      close(fd);
      return 0;
    }
    if (mkdir(part, 0755) < 0 && errno != EEXIST) return -1;
    note_made(part);
    if (!next) return 0;
    at = end;
  }
}

static int by_length(const void *a, const void *b) {
  size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
  return la < lb ? -1 : la > lb;
}

int host_view(const char *root, const char *stage, char **paths, size_t n, const char **failed) {
  *failed = "/";
  if (unshare(CLONE_NEWNS) < 0) return -1;
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) return -1;
  if (mkdir(stage, 0700) < 0 && errno != EEXIST) return -1;
  /* Outer paths first: an inner one is then bound over what the outer brought. */
  qsort(paths, n, sizeof *paths, by_length);
  char src[PATH_MAX];
  for (size_t i = 0; i < n; i++) {
    const char *p = paths[i];
    *failed = p;
    if (snprintf(src, sizeof src, "%s%s", root, p) >= (int)sizeof src) {
      errno = ENAMETOOLONG;
      return -1;
    }
    struct stat sst, tst;
    if (stat(src, &sst) < 0) return -1;
    if (stat(p, &tst) == 0) {
      if (S_ISDIR(sst.st_mode) != S_ISDIR(tst.st_mode)) {
        errno = S_ISDIR(sst.st_mode) ? ENOTDIR : EISDIR;
        return -1;
      }
    } else if (errno != ENOENT || make_point(p, S_ISDIR(sst.st_mode), stage) < 0) {
      return -1;
    }
    if (mount(src, p, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
  }
  return 0;
}
