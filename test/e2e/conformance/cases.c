/*
 * POSIX conformance cases for the filesystem a command sees. The e2e suite compiles this once
 * on the local machine and runs it twice: locally and through outrun (where it reaches a fresh
 * local directory through the FUSE mount). Each case works in its own subdirectory of argv[1]
 * and prints what it observes (results, errno names, the stat fields a program can rely on) as
 * "== name" followed by lines; the test compares the two outputs case by case.
 * Paths are never printed raw: the directory is printed as DIR so both runs are comparable.
 *
 *   cases DIR [case...]
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static char base[4096];

static const char *ename(int e) {
  const char *n = strerrorname_np(e);
  return n ? n : "E?";
}

/* Prints "label -> ok" or "label -> ENAME" for a call returning <0 on error. */
static long check(const char *label, long r) {
  if (r < 0) printf("%s -> %s\n", label, ename(errno));
  else printf("%s -> ok\n", label);
  return r;
}

static void put(const char *path, const char *data) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) { printf("put %s -> %s\n", path, ename(errno)); return; }
  if (write(fd, data, strlen(data)) < 0) printf("put write -> %s\n", ename(errno));
  close(fd);
}

static void show_file(const char *label, const char *path) {
  char buf[256];
  int fd = open(path, O_RDONLY);
  if (fd < 0) { printf("%s: open -> %s\n", label, ename(errno)); return; }
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n < 0) { printf("%s: read -> %s\n", label, ename(errno)); return; }
  buf[n] = 0;
  printf("%s: [%s]\n", label, buf);
}

static void show_fd(const char *label, int fd) {
  char buf[256];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n < 0) { printf("%s: pread -> %s\n", label, ename(errno)); return; }
  buf[n] = 0;
  printf("%s: [%s]\n", label, buf);
}

static const char *ftype(mode_t m) {
  switch (m & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "dir";
    case S_IFLNK: return "symlink";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "chardev";
    case S_IFBLK: return "blockdev";
  }
  return "?";
}

/* The stat fields that must be the same locally and through outrun (not ino, dev, blocks). */
static void show_stat(const char *label, const char *path, int follow) {
  struct stat st;
  int r = follow ? stat(path, &st) : lstat(path, &st);
  if (r < 0) { printf("%s: stat -> %s\n", label, ename(errno)); return; }
  printf("%s: %s mode=%o nlink=%lu uid=%u gid=%u size=%lld\n", label, ftype(st.st_mode), st.st_mode & 07777,
         (unsigned long)st.st_nlink, st.st_uid, st.st_gid, (long long)st.st_size);
}

static void show_fstat(const char *label, int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) { printf("%s: fstat -> %s\n", label, ename(errno)); return; }
  printf("%s: %s mode=%o nlink=%lu size=%lld\n", label, ftype(st.st_mode), st.st_mode & 07777,
         (unsigned long)st.st_nlink, (long long)st.st_size);
}

/* Directory entries, sorted, with every byte outside printable ASCII escaped as \xNN. */
static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static void show_dir(const char *label, const char *path) {
  DIR *d = opendir(path);
  if (!d) { printf("%s: opendir -> %s\n", label, ename(errno)); return; }
  char *names[512];
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) && n < 512) names[n++] = strdup(e->d_name);
  closedir(d);
  qsort(names, n, sizeof *names, cmpstr);
  printf("%s:", label);
  for (int i = 0; i < n; i++) {
    putchar(' ');
    for (unsigned char *p = (unsigned char *)names[i]; *p; p++) {
      if (*p > 32 && *p < 127 && *p != '\\') putchar(*p);
      else printf("\\x%02x", *p);
    }
    free(names[i]);
  }
  putchar('\n');
}

static int child_status(pid_t pid) {
  int st;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- cases ----------------------------------------------------------------------------- */

static void case_rename_over_existing(void) {
  put("a", "AAA");
  put("b", "BBB");
  int fd = open("b", O_RDONLY);
  check("rename a b", rename("a", "b"));
  show_file("b", "b");
  show_fd("old fd of b", fd);
  close(fd);
  show_stat("a", "a", 0);
  mkdir("d1", 0755); mkdir("d2", 0755); mkdir("full", 0755); put("full/x", "x");
  check("rename dir over empty dir", rename("d1", "d2"));
  show_stat("d1", "d1", 0);
  check("rename dir over non-empty dir", rename("d2", "full"));
  check("rename file over dir", rename("b", "full"));
  check("rename dir over file", rename("full", "b"));
  check("rename missing", rename("nope", "b"));
  check("rename to itself", rename("b", "b"));
  link("b", "b2");
  check("rename onto own hard link", rename("b", "b2"));
  show_stat("b", "b", 0);
  show_dir("dir", ".");
}

static void case_hard_links(void) {
  put("a", "one");
  check("link a b", link("a", "b"));
  check("link a c", link("a", "c"));
  show_stat("a", "a", 0);
  show_stat("b", "b", 0);
  int fd = open("b", O_WRONLY | O_APPEND);
  if (write(fd, "+two", 4) < 0) printf("write -> %s\n", ename(errno));
  close(fd);
  show_file("a after write through b", "a");
  check("unlink a", unlink("a"));
  show_stat("b", "b", 0);
  show_stat("c", "c", 0);
  check("link onto existing", link("b", "c"));
  mkdir("d", 0755);
  check("link a directory", link("d", "d2"));
  check("link missing", link("nope", "x"));
  show_stat("d", "d", 0);
  mkdir("d/sub", 0755);
  show_stat("d with a subdir", "d", 0);
  struct stat s1, s2;
  stat("b", &s1); stat("c", &s2);
  printf("b and c same inode: %s\n", s1.st_ino == s2.st_ino ? "yes" : "no");
}

static void case_symlinks(void) {
  char target[8192], buf[8192];
  put("t", "target");
  check("symlink relative", symlink("t", "rel"));
  snprintf(target, sizeof target, "%s/symlinks/t", base);
  check("symlink absolute", symlink(target, "abs"));
  check("symlink dangling", symlink("missing", "dang"));
  check("symlink loop1", symlink("loop2", "loop1"));
  check("symlink loop2", symlink("loop1", "loop2"));
  check("symlink self", symlink("self", "self"));
  check("symlink onto existing", symlink("t", "rel"));
  mkdir("dir", 0755); put("dir/inner", "inner");
  check("symlink to dir", symlink("dir", "dirlink"));
  show_file("rel", "rel");
  show_file("abs", "abs");
  show_file("dang", "dang");
  show_file("loop1", "loop1");
  show_file("self", "self");
  show_file("dirlink/inner", "dirlink/inner");
  show_stat("lstat rel", "rel", 0);
  show_stat("lstat dang", "dang", 0);
  show_stat("stat dang", "dang", 1);
  show_stat("stat loop1", "loop1", 1);
  ssize_t n = readlink("abs", buf, sizeof buf - 1);
  if (n >= 0) {
    buf[n] = 0;
    printf("readlink abs: %s\n", strncmp(buf, base, strlen(base)) == 0 ? "DIR + ..." : buf);
    printf("readlink abs is the target: %s\n", strcmp(buf, target) == 0 ? "yes" : "no");
  } else printf("readlink abs -> %s\n", ename(errno));
  n = readlink("rel", buf, sizeof buf - 1);
  if (n >= 0) { buf[n] = 0; printf("readlink rel: %s\n", buf); }
  check("readlink of a file", readlink("t", buf, sizeof buf));
  n = readlink("rel", buf, 1);
  printf("readlink into 1 byte: %zd\n", n);
  check("open rel O_NOFOLLOW", open("rel", O_RDONLY | O_NOFOLLOW));
  check("open loop1 O_CREAT", open("loop1", O_WRONLY | O_CREAT, 0644));
  int fd = open("dang", O_WRONLY | O_CREAT, 0644);
  check("open dang O_CREAT creates the target", fd);
  if (fd >= 0) close(fd);
  show_stat("missing (target of dang)", "missing", 0);
  check("unlink rel", unlink("rel"));
  show_stat("t after unlinking a link to it", "t", 0);
  char deep[64] = "l0";
  symlink("t", "l0");
  for (int i = 1; i <= 45; i++) {
    char name[16], prev[16];
    snprintf(name, sizeof name, "l%d", i);
    snprintf(prev, sizeof prev, "l%d", i - 1);
    symlink(prev, name);
    if (i == 39 || i == 40 || i == 45) {
      snprintf(deep, sizeof deep, "chain of %d links", i + 1);
      int f = open(name, O_RDONLY);
      printf("%s -> %s\n", deep, f < 0 ? ename(errno) : "ok");
      if (f >= 0) close(f);
    }
  }
}

static void case_fifo(void) {
  check("mkfifo", mkfifo("f", 0640));
  show_stat("f", "f", 0);
  check("mkfifo existing", mkfifo("f", 0640));
  pid_t pid = fork();
  if (pid == 0) {
    int w = open("f", O_WRONLY);
    if (w < 0) _exit(1);
    if (write(w, "through the fifo", 16) != 16) _exit(2);
    close(w);
    _exit(0);
  }
  int r = open("f", O_RDONLY);
  char buf[64] = {0};
  ssize_t n = r >= 0 ? read(r, buf, sizeof buf - 1) : -1;
  printf("read %zd: [%s]\n", n, n > 0 ? buf : "");
  n = r >= 0 ? read(r, buf, sizeof buf - 1) : -1;
  printf("then read %zd (EOF)\n", n);
  if (r >= 0) close(r);
  printf("writer status %d\n", child_status(pid));
  check("open O_RDONLY|O_NONBLOCK without writer", r = open("f", O_RDONLY | O_NONBLOCK));
  check("open O_WRONLY|O_NONBLOCK without reader", open("f", O_WRONLY | O_NONBLOCK));
  if (r >= 0) close(r);
  check("mknod regular", mknod("reg", S_IFREG | 0600, 0));
  show_stat("reg", "reg", 0);
}

static void case_sparse_and_large(void) {
  const off_t five_gib = 5LL << 30, at = (4LL << 30) + 12345;
  int fd = open("big", O_RDWR | O_CREAT | O_TRUNC, 0644);
  check("ftruncate 5 GiB", ftruncate(fd, five_gib));
  printf("pwrite past 4 GiB: %zd\n", pwrite(fd, "XYZ", 3, at));
  show_fstat("big", fd);
  char buf[8] = {0};
  printf("pread past 4 GiB: %zd [%.3s]\n", pread(fd, buf, 3, at), buf);
  memset(buf, 'q', sizeof buf);
  ssize_t n = pread(fd, buf, 4, 3LL << 30);
  printf("pread in a hole: %zd zeros=%d\n", n, buf[0] == 0 && buf[1] == 0 && buf[2] == 0 && buf[3] == 0);
  n = pread(fd, buf, 8, five_gib - 2);
  printf("pread across the end: %zd\n", n);
  printf("pread at the end: %zd\n", pread(fd, buf, 8, five_gib));
  printf("lseek SEEK_END: %lld\n", (long long)lseek(fd, 0, SEEK_END));
  struct stat st;
  fstat(fd, &st);
  printf("stays sparse (allocated < 1 MiB): %s\n", (long long)st.st_blocks * 512 < (1 << 20) ? "yes" : "no");
  close(fd);
  fd = open("big", O_WRONLY | O_APPEND);
  printf("append past 4 GiB: %zd\n", write(fd, "END", 3));
  close(fd);
  show_stat("big", "big", 0);
  fd = open("big", O_RDONLY);
  memset(buf, 0, sizeof buf);
  printf("tail: %zd [%.3s]\n", pread(fd, buf, 3, five_gib), buf);
  close(fd);
  check("truncate to 6 GiB", truncate("big", 6LL << 30));
  show_stat("big", "big", 0);
  check("unlink big", unlink("big"));
}

static void case_o_append(void) {
  put("f", "abc");
  int fd = open("f", O_WRONLY | O_APPEND);
  lseek(fd, 0, SEEK_SET);
  printf("write: %zd\n", write(fd, "def", 3));
  printf("offset after: %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
  int fd2 = open("f", O_WRONLY | O_APPEND);
  printf("write fd2: %zd\n", write(fd2, "ghi", 3));
  printf("write fd1 again: %zd\n", write(fd, "jkl", 3));
  printf("pwrite at 0 (Linux appends): %zd\n", pwrite(fd, "mno", 3, 0));
  close(fd); close(fd2);
  show_file("f", "f");
  int plain = open("f", O_WRONLY);
  fd = open("f", O_WRONLY | O_APPEND);
  pwrite(plain, "0123456789012345678", 19, 0); /* grows the file behind the append fd's back */
  printf("append after growth elsewhere: %zd\n", write(fd, "!", 1));
  close(fd); close(plain);
  show_file("f", "f");
  fd = open("f", O_RDONLY | O_APPEND);
  printf("write to O_RDONLY|O_APPEND: %zd %s\n", write(fd, "x", 1), ename(errno));
  close(fd);
}

static void case_o_excl(void) {
  int fd = open("f", O_WRONLY | O_CREAT | O_EXCL, 0600);
  check("O_CREAT|O_EXCL new", fd);
  if (fd >= 0) close(fd);
  show_stat("f", "f", 0);
  check("O_CREAT|O_EXCL existing", open("f", O_WRONLY | O_CREAT | O_EXCL, 0600));
  symlink("missing", "dang");
  check("O_CREAT|O_EXCL on a dangling symlink", open("dang", O_WRONLY | O_CREAT | O_EXCL, 0600));
  show_stat("missing", "missing", 0);
  mkdir("d", 0755);
  check("O_CREAT|O_EXCL on a dir", open("d", O_WRONLY | O_CREAT | O_EXCL, 0600));
  check("O_CREAT on a dir", open("d", O_WRONLY | O_CREAT, 0600));
  check("O_CREAT in a missing dir", open("nodir/f", O_WRONLY | O_CREAT, 0600));
  check("O_DIRECTORY on a file", open("f", O_RDONLY | O_DIRECTORY));
  check("O_WRONLY on a dir", open("d", O_WRONLY));
  check("open a file as a dir component", open("f/x", O_RDONLY));
  /* Racing exclusive creates: exactly one wins. */
  int wins = 0;
  for (int i = 0; i < 4; i++) {
    if (fork() == 0) {
      int f = open("race", O_WRONLY | O_CREAT | O_EXCL, 0600);
      _exit(f >= 0 ? 0 : errno == EEXIST ? 1 : 2);
    }
  }
  for (int i = 0; i < 4; i++) {
    int st;
    wait(&st);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) wins++;
  }
  printf("racing exclusive creates won: %d\n", wins);
}

static void case_o_trunc(void) {
  put("f", "0123456789");
  int fd = open("f", O_WRONLY | O_TRUNC);
  show_fstat("after O_TRUNC", fd);
  write(fd, "ab", 2);
  close(fd);
  show_file("f", "f");
  fd = open("f", O_RDONLY | O_TRUNC);
  check("O_RDONLY|O_TRUNC", fd);
  if (fd >= 0) { show_fstat("after O_RDONLY|O_TRUNC", fd); close(fd); }
  int keep = open("f", O_RDONLY);
  put("f", "xyz");
  show_fd("another fd after O_TRUNC and rewrite", keep);
  close(keep);
  chmod("f", 0444);
  check("O_TRUNC on a read-only file (root)", fd = open("f", O_WRONLY | O_TRUNC));
  if (fd >= 0) close(fd);
}

static void case_truncate(void) {
  put("f", "0123456789");
  check("truncate to 4", truncate("f", 4));
  show_file("f", "f");
  check("truncate to 8", truncate("f", 8));
  int fd = open("f", O_RDONLY);
  char buf[16];
  ssize_t n = read(fd, buf, sizeof buf);
  printf("read %zd:", n);
  for (ssize_t i = 0; i < n; i++) printf(" %02x", (unsigned char)buf[i]);
  printf("\n");
  close(fd);
  fd = open("f", O_RDWR);
  check("ftruncate to 2", ftruncate(fd, 2));
  show_fstat("f", fd);
  check("ftruncate negative", ftruncate(fd, -1));
  lseek(fd, 5, SEEK_SET);
  write(fd, "Z", 1);
  show_fstat("after write past the end", fd);
  close(fd);
  fd = open("f", O_RDONLY);
  check("ftruncate on O_RDONLY", ftruncate(fd, 0));
  close(fd);
  mkdir("d", 0755);
  check("truncate a dir", truncate("d", 0));
  check("truncate missing", truncate("nope", 0));
  symlink("f", "link");
  check("truncate through a symlink", truncate("link", 1));
  show_stat("f", "f", 0);
}

static void case_unlink_open_file(void) {
  put("f", "still here");
  int fd = open("f", O_RDWR);
  check("unlink", unlink("f"));
  show_fd("read through fd", fd);
  show_fstat("fstat", fd);
  printf("write through fd: %zd\n", pwrite(fd, "STILL", 5, 0));
  show_fd("read again", fd);
  show_stat("f", "f", 0);
  show_dir("dir", ".");
  close(fd);
  show_dir("dir after close", ".");
  /* The name can be reused while the old file is open. */
  put("g", "old");
  fd = open("g", O_RDONLY);
  unlink("g");
  put("g", "new");
  show_fd("old fd", fd);
  show_file("new g", "g");
  close(fd);
  mkdir("holder", 0755);
  put("holder/f", "held");
  fd = open("holder/f", O_RDWR);
  check("unlink holder/f", unlink("holder/f"));
  show_dir("holder", "holder");
  check("rename its dir", rename("holder", "moved"));
  printf("write past the end: %zd\n", pwrite(fd, "grown", 5, 100));
  show_fstat("fstat after growing", fd);
  check("ftruncate", ftruncate(fd, 3));
  show_fstat("fstat after ftruncate", fd);
  show_fd("read", fd);
  close(fd);
  check("rmdir its dir after close", rmdir("moved"));
  mkdir("d", 0755);
  int dfd = open("d", O_RDONLY | O_DIRECTORY);
  check("rmdir an open dir", rmdir("d"));
  check("create in the removed dir", openat(dfd, "x", O_WRONLY | O_CREAT, 0644));
  close(dfd);
}

static void case_rmdir_holding_unlinked_open_file(void) {
  mkdir("holder", 0755);
  put("holder/f", "held");
  int fd = open("holder/f", O_RDWR);
  check("unlink holder/f", unlink("holder/f"));
  show_dir("holder", "holder");
  check("rmdir its dir while the file is open", rmdir("holder"));
  show_fd("read", fd);
  close(fd);
  check("rmdir after close", rmdir("holder"));
}

static void case_mmap(void) {
  char data[10000];
  for (int i = 0; i < (int)sizeof data; i++) data[i] = 'a' + i % 26;
  int fd = open("f", O_RDWR | O_CREAT | O_TRUNC, 0644);
  write(fd, data, sizeof data);
  char *p = mmap(NULL, sizeof data, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) printf("mmap read -> %s\n", ename(errno));
  else { printf("mmap read equal: %s\n", memcmp(p, data, sizeof data) == 0 ? "yes" : "no"); munmap(p, sizeof data); }
  p = mmap(NULL, sizeof data, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) printf("mmap shared -> %s\n", ename(errno));
  else {
    memcpy(p + 5000, "SHARED", 6);
    memcpy(p, "HEAD", 4);
    check("msync", msync(p, sizeof data, MS_SYNC));
    munmap(p, sizeof data);
  }
  close(fd);
  char buf[16] = {0};
  fd = open("f", O_RDONLY);
  pread(fd, buf, 6, 5000);
  printf("read after shared write: [%s]\n", buf);
  pread(fd, buf, 4, 0);
  buf[4] = 0;
  printf("head: [%s]\n", buf);
  show_fstat("f", fd);
  check("mmap shared writable on O_RDONLY", (long)mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == -1 ? -1 : 0);
  close(fd);
  /* A private mapping's writes stay private. */
  fd = open("f", O_RDWR);
  p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  if (p != MAP_FAILED) { memcpy(p, "PRIV", 4); munmap(p, 4096); }
  close(fd);
  show_file("f head after private write", "f");
}

static void show_times(const char *label, const char *path) {
  struct stat st;
  if (lstat(path, &st) < 0) { printf("%s: -> %s\n", label, ename(errno)); return; }
  printf("%s: atime=%lld.%09ld mtime=%lld.%09ld\n", label, (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
         (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
}

static void case_utimens_seconds(void) {
  put("f", "x");
  struct timespec ts[2] = {{1000000000, 0}, {1234567890, 0}};
  check("utimensat whole seconds", utimensat(AT_FDCWD, "f", ts, 0));
  show_times("f", "f");
  struct timespec far[2] = {{5000000000LL, 0}, {5000000001LL, 0}};
  check("utimensat after 2106", utimensat(AT_FDCWD, "f", far, 0));
  show_times("f", "f");
  time_t before = time(NULL);
  check("utimensat NULL (now)", utimensat(AT_FDCWD, "f", NULL, 0));
  struct stat st;
  stat("f", &st);
  printf("now is recent: %s\n", st.st_mtim.tv_sec >= before - 2 && st.st_mtim.tv_sec <= time(NULL) + 2 ? "yes" : "no");
  check("utimensat missing", utimensat(AT_FDCWD, "nope", ts, 0));
  symlink("f", "l");
  check("utimensat a symlink itself", utimensat(AT_FDCWD, "l", ts, AT_SYMLINK_NOFOLLOW));
}

static void case_utimens_before_1970(void) {
  put("f", "x");
  struct timespec old[2] = {{-1000, 0}, {-1, 0}};
  check("utimensat before 1970", utimensat(AT_FDCWD, "f", old, 0));
  show_times("f", "f");
}

static void case_utimens_nanoseconds(void) {
  put("f", "x");
  struct timespec ts[2] = {{1000000000, 123456789}, {1234567890, 987654321}};
  check("utimensat with nanoseconds", utimensat(AT_FDCWD, "f", ts, 0));
  show_times("f", "f");
}

static void case_utimens_only_mtime(void) {
  put("f", "x");
  struct timespec both[2] = {{1000000000, 0}, {1000000000, 0}};
  utimensat(AT_FDCWD, "f", both, 0);
  struct timespec ts[2] = {{0, UTIME_OMIT}, {1234567890, 0}};
  check("utimensat mtime only (touch -m)", utimensat(AT_FDCWD, "f", ts, 0));
  show_times("f", "f");
}

static void case_chmod_chown_as_non_root(void) {
  put("roots", "r");
  chmod("roots", 0644);
  mkdir("open", 0777);
  chmod("open", 0777);
  put("open/mine", "m");
  chown("open/mine", 65534, 65534);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) { printf("setuid failed\n"); _exit(9); }
    check("chmod a file of root", chmod("roots", 0600));
    check("chown a file of root", chown("roots", 65534, 65534));
    check("write a file of root", open("roots", O_WRONLY));
    check("create in a dir of root", open("mine", O_WRONLY | O_CREAT, 0644));
    int fd = open("open/mine", O_WRONLY | O_APPEND);
    check("write own file", fd);
    if (fd >= 0) close(fd);
    show_stat("open/mine", "open/mine", 0);
    check("chmod own file", chmod("open/mine", 0600));
    check("chmod own file setgid, not in group 0", chmod("open/mine", 02755));
    show_stat("open/mine", "open/mine", 0);
    check("chown own file to root", chown("open/mine", 0, 0));
    check("chown own file to own ids (no-op)", chown("open/mine", 65534, 65534));
    check("chown own file to a group not ours", chown("open/mine", -1, 0));
    check("chmod 000 own file", chmod("open/mine", 0));
    check("open own mode-000 file", open("open/mine", O_RDONLY));
    check("utimensat explicit on a file of root", utimensat(AT_FDCWD, "roots", (struct timespec[2]){{1, 0}, {1, 0}}, 0));
    check("utimensat now on a file of root", utimensat(AT_FDCWD, "roots", NULL, 0));
    check("unlink a file of root", unlink("roots"));
    check("truncate a file of root", truncate("roots", 0));
    check("access W_OK a file of root", access("roots", W_OK));
    check("access R_OK a file of root", access("roots", R_OK));
    fflush(stdout);
    _exit(0);
  }
  printf("child status %d\n", child_status(pid));
  check("root chmod", chmod("roots", 0600));
  check("root chown", chown("roots", 65534, 65534));
  show_stat("roots", "roots", 0);
  check("root chown -1 -1", chown("roots", -1, -1));
  check("root chmod setuid", chmod("roots", 04755));
  show_stat("roots", "roots", 0);
  check("chown then the setuid bit is cleared", chown("roots", 0, 0));
  show_stat("roots", "roots", 0);
}

static void case_rename_across_dirs(void) {
  mkdir("a", 0755); mkdir("b", 0755); mkdir("a/sub", 0755);
  put("a/f", "file"); put("a/sub/g", "deep");
  check("rename a/f b/f2", rename("a/f", "b/f2"));
  show_file("b/f2", "b/f2");
  check("rename a/sub b/sub", rename("a/sub", "b/sub"));
  show_file("b/sub/g", "b/sub/g");
  show_stat("a", "a", 0);
  show_stat("b", "b", 0);
  check("rename a dir into itself", rename("b", "b/sub/inner"));
  check("rename into a missing dir", rename("b/f2", "nodir/f2"));
  check("rename a dir over a file in another dir", rename("b/sub", "a/../b/f2"));
  int fd = open("b/f2", O_RDONLY);
  check("rename an open file to another dir", rename("b/f2", "a/back"));
  show_fd("fd after rename", fd);
  close(fd);
  show_dir("a", "a");
  show_dir("b", "b");
}

static void case_rename_flags(void) {
  put("a", "A"); put("b", "B");
  check("renameat2 RENAME_NOREPLACE onto existing", renameat2(AT_FDCWD, "a", AT_FDCWD, "b", RENAME_NOREPLACE));
  check("renameat2 RENAME_NOREPLACE to new", renameat2(AT_FDCWD, "a", AT_FDCWD, "c", RENAME_NOREPLACE));
  check("renameat2 RENAME_EXCHANGE", renameat2(AT_FDCWD, "b", AT_FDCWD, "c", RENAME_EXCHANGE));
  show_file("b", "b");
  show_file("c", "c");
}

/* A process that changes its uid (possible only for root) and creates a file. */
static void case_owner_after_setuid(void) {
  mkdir("open", 0777);
  chmod("open", 0777);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0) _exit(9);
    int fd = open("open/new", O_WRONLY | O_CREAT, 0644);
    check("create as uid 65534", fd);
    mkdir("open/newdir", 0755);
    fflush(stdout);
    _exit(0);
  }
  printf("child status %d\n", child_status(pid));
  show_stat("open/new", "open/new", 0);
  show_stat("open/newdir", "open/newdir", 0);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)sb; (void)f;
  if (strcmp(p, ".") == 0) return 0;
  int r = flag == FTW_DP ? rmdir(p) : unlink(p);
  if (r < 0) printf("remove %.60s -> %s\n", p, ename(errno));
  return r;
}
static int count_files, count_dirs, max_level;
static int count_entry(const char *p, const struct stat *sb, int flag, struct FTW *f) {
  (void)p; (void)sb;
  if (flag == FTW_D) count_dirs++; else if (flag == FTW_F) count_files++;
  if (f->level > max_level) max_level = f->level;
  return 0;
}

static void case_deep_trees(void) {
  char path[8192] = "t";
  mkdir("t", 0755);
  int made = 0;
  for (int i = 0; i < 200; i++) {
    strcat(path, "/level-directory");
    if (mkdir(path, 0755) < 0) { printf("mkdir at depth %d -> %s\n", i, ename(errno)); break; }
    made++;
    if (i % 50 == 0) { char f[8300]; snprintf(f, sizeof f, "%s/file", path); put(f, "x"); }
  }
  printf("made %d levels, path length %zu\n", made, strlen(path));
  char f[8300];
  snprintf(f, sizeof f, "%s/bottom", path);
  int bottom = open(f, O_WRONLY | O_CREAT, 0644);
  check("create at the bottom", bottom);
  if (bottom >= 0) close(bottom);
  /* Relative walking with chdir works at any depth. */
  char cwd[16384];
  if (chdir("t") == 0) {
    int depth = 0;
    while (chdir("level-directory") == 0) depth++;
    int fd = open("bottom", O_WRONLY | O_CREAT, 0644);
    printf("chdir down %d levels, create there: %s\n", depth, fd >= 0 ? "ok" : ename(errno));
    if (fd >= 0) close(fd);
    printf("getcwd at the bottom: %s\n", getcwd(cwd, sizeof cwd) ? "ok" : ename(errno));
    chdir(base); chdir("deep_trees");
  }
  count_files = count_dirs = max_level = 0;
  check("nftw walk", nftw("t", count_entry, 16, FTW_PHYS));
  printf("walked %d dirs, %d files, max level %d\n", count_dirs, count_files, max_level);
  /* A wide directory. */
  mkdir("wide", 0755);
  for (int i = 0; i < 1500; i++) { char n[64]; snprintf(n, sizeof n, "wide/entry-%04d", i); close(open(n, O_WRONLY | O_CREAT, 0644)); }
  count_files = count_dirs = max_level = 0;
  nftw("wide", count_entry, 16, FTW_PHYS);
  printf("wide: %d files\n", count_files);
  check("remove everything", nftw(".", rm_entry, 16, FTW_DEPTH | FTW_PHYS));
  show_dir("left", ".");
}

/* Relative paths stay short, but the path from the root passes PATH_MAX (4096 bytes). */
static void case_deep_paths_over_path_max(void) {
  char path[8192] = "t";
  mkdir("t", 0755);
  for (int i = 0; i < 300; i++) {
    strcat(path, "/level-directory");
    if (mkdir(path, 0755) < 0) { printf("mkdir at depth %d -> %s\n", i, ename(errno)); break; }
  }
  check("chdir t", chdir("t"));
  int depth = 0, made = 0;
  for (;;) {
    int fd = open("here", O_WRONLY | O_CREAT, 0644);
    if (fd < 0) { printf("create at depth %d -> %s\n", depth, ename(errno)); break; }
    close(fd);
    made++;
    if (chdir("level-directory") < 0) break;
    depth++;
  }
  printf("descended %d levels, created %d files\n", depth, made);
  char cwd[16384];
  printf("getcwd: %s\n", getcwd(cwd, sizeof cwd) ? "ok" : ename(errno));
  check("mkdir at the bottom", mkdir("a-name-long-enough-to-pass-path-max-here", 0755));
  check("stat .", access(".", F_OK));
}

static void case_names(void) {
  const char *names[] = {"with space", "new\nline", "tab\there", " leading-space", "trailing-space ", "-dash",
                         "quote'\"", "back\\slash", "caf\xc3\xa9", "\xe2\x9c\x93", "*?[glob]", "a:b;c|d&e", ".hidden", "..dots..", NULL};
  for (int i = 0; names[i]; i++) {
    char data[64];
    snprintf(data, sizeof data, "content %d", i);
    put(names[i], data);
  }
  show_dir("dir", ".");
  for (int i = 0; names[i]; i++) {
    char label[64];
    snprintf(label, sizeof label, "name %d", i);
    show_file(label, names[i]);
  }
  char long_name[256];
  memset(long_name, 'n', 255); long_name[255] = 0;
  int fd = open(long_name, O_WRONLY | O_CREAT, 0644);
  check("255-byte name", fd);
  if (fd >= 0) close(fd);
  char too_long[257];
  memset(too_long, 'n', 256); too_long[256] = 0;
  check("256-byte name", open(too_long, O_WRONLY | O_CREAT, 0644));
  mkdir("new\nline dir", 0755);
  put("new\nline dir/in it", "x");
  check("rename a newline name", rename("new\nline", "new\nline renamed"));
  show_dir("dir", "new\nline dir");
}

/* Names that are not UTF-8: a name is bytes and must survive. */
static void case_names_not_utf8(void) {
  const char *names[] = {"latin1-caf\xe9", "bad-\xff\xfe", "lone-\x80", NULL};
  for (int i = 0; names[i]; i++) {
    char label[64];
    snprintf(label, sizeof label, "create %d", i);
    int fd = open(names[i], O_WRONLY | O_CREAT, 0644);
    check(label, fd);
    if (fd >= 0) { write(fd, label, strlen(label)); close(fd); }
  }
  show_dir("dir", ".");
  for (int i = 0; names[i]; i++) {
    char label[64];
    snprintf(label, sizeof label, "read %d", i);
    show_file(label, names[i]);
  }
}

static void case_unix_socket(void) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strcpy(a.sun_path, "sock");
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  check("bind", bind(s, (struct sockaddr *)&a, sizeof a));
  check("listen", listen(s, 1));
  show_stat("sock", "sock", 0);
  int s2 = socket(AF_UNIX, SOCK_STREAM, 0);
  check("bind the same name again", bind(s2, (struct sockaddr *)&a, sizeof a));
  pid_t pid = fork();
  if (pid == 0) {
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&a, sizeof a) < 0) _exit(1);
    _exit(write(c, "over the socket", 15) == 15 ? 0 : 2);
  }
  int conn = accept(s, NULL, NULL);
  char buf[32] = {0};
  printf("accepted: %s, read %zd [%s]\n", conn >= 0 ? "yes" : ename(errno), conn >= 0 ? read(conn, buf, 31) : -1, buf);
  printf("client status %d\n", child_status(pid));
  close(s);
  show_dir("dir", ".");
  check("unlink the socket", unlink("sock"));
}

static void case_xattrs(void) {
  char buf[256];
  put("f", "x");
  check("setxattr user.one", setxattr("f", "user.one", "value 1", 7, 0));
  check("setxattr user.two", setxattr("f", "user.two", "\0binary\xff", 8, 0));
  check("setxattr XATTR_CREATE existing", setxattr("f", "user.one", "v", 1, XATTR_CREATE));
  check("setxattr XATTR_REPLACE missing", setxattr("f", "user.three", "v", 1, XATTR_REPLACE));
  ssize_t n = getxattr("f", "user.one", buf, sizeof buf);
  if (n < 0) printf("getxattr user.one -> %s\n", ename(errno));
  else printf("getxattr user.one: %zd [%.*s]\n", n, (int)n, buf);
  n = getxattr("f", "user.two", NULL, 0);
  printf("getxattr size of user.two: %zd %s\n", n, n < 0 ? ename(errno) : "");
  n = getxattr("f", "user.two", buf, 2);
  printf("getxattr user.two into 2 bytes: %zd %s\n", n, n < 0 ? ename(errno) : "");
  n = listxattr("f", buf, sizeof buf);
  if (n < 0) printf("listxattr -> %s\n", ename(errno));
  else {
    printf("listxattr:");
    for (char *p = buf; p < buf + n; p += strlen(p) + 1) printf(" %s", p);
    printf("\n");
  }
  // A write keeps user.* attributes and drops a file capability (the kernel asks for it
  // before each write): the agent remembers both answers across writes.
  int wfd = open("f", O_WRONLY | O_APPEND);
  for (int i = 0; i < 3; i++) printf("write %d: %zd\n", i, write(wfd, "more", 4));
  close(wfd);
  n = getxattr("f", "user.two", NULL, 0);
  printf("getxattr size of user.two after writes: %zd %s\n", n, n < 0 ? ename(errno) : "");
  put("capf", "x");
  // struct vfs_cap_data, revision 2: CAP_NET_RAW permitted (setting it needs CAP_SETFCAP).
  uint32_t cap[5] = {0x02000000, 1u << 13, 0, 0, 0};
  printf("setxattr security.capability: %s\n", setxattr("capf", "security.capability", cap, sizeof cap, 0) == 0 ? "ok" : ename(errno));
  n = getxattr("capf", "security.capability", NULL, 0);
  printf("getxattr size of security.capability: %zd %s\n", n, n < 0 ? ename(errno) : "");
  wfd = open("capf", O_WRONLY);
  printf("write over it: %zd\n", write(wfd, "y", 1));
  n = getxattr("capf", "security.capability", NULL, 0);
  printf("capability after the write: %zd %s\n", n, n < 0 ? ename(errno) : "");
  printf("write again: %zd\n", write(wfd, "z", 1));
  close(wfd);
  n = getxattr("capf", "security.capability", NULL, 0);
  printf("capability after the second write: %zd %s\n", n, n < 0 ? ename(errno) : "");
  check("removexattr user.one", removexattr("f", "user.one"));
  n = getxattr("f", "user.one", buf, sizeof buf);
  printf("getxattr after remove: %zd %s\n", n, n < 0 ? ename(errno) : "");
  check("removexattr missing", removexattr("f", "user.nope"));
  n = getxattr("f", "user.nope", buf, sizeof buf);
  printf("getxattr missing: %zd %s\n", n, n < 0 ? ename(errno) : "");
}

static void case_locks(void) {
  put("f", "lock me");
  int fd = open("f", O_RDWR);
  check("flock LOCK_EX", flock(fd, LOCK_EX));
  pid_t pid = fork();
  if (pid == 0) {
    int f2 = open("f", O_RDWR);
    int r = flock(f2, LOCK_EX | LOCK_NB);
    _exit(r < 0 ? (errno == EWOULDBLOCK ? 1 : 2) : 0);
  }
  printf("other process flock LOCK_EX|LOCK_NB: %s\n", child_status(pid) == 1 ? "EWOULDBLOCK" : "not blocked");
  check("flock LOCK_UN", flock(fd, LOCK_UN));
  pid = fork();
  if (pid == 0) {
    int f2 = open("f", O_RDWR);
    _exit(flock(f2, LOCK_EX | LOCK_NB) < 0 ? 1 : 0);
  }
  printf("after unlock, other process gets it: %s\n", child_status(pid) == 0 ? "yes" : "no");
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 2, .l_len = 3};
  check("fcntl F_SETLK write lock 2..4", fcntl(fd, F_SETLK, &fl));
  int pipefd[2];
  pipe(pipefd);
  pid_t parent = getpid();
  pid = fork();
  if (pid == 0) {
    int f2 = open("f", O_RDWR);
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
    char out[200];
    int r = fcntl(f2, F_GETLK, &q);
    int len = snprintf(out, sizeof out, "F_GETLK from another process: %s type=%s start=%lld len=%lld holder=%s\n",
                       r < 0 ? ename(errno) : "ok", q.l_type == F_WRLCK ? "F_WRLCK" : q.l_type == F_UNLCK ? "F_UNLCK" : "other",
                       (long long)q.l_start, (long long)q.l_len, q.l_pid == parent ? "parent" : "other");
    struct flock w = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 3, .l_len = 1};
    r = fcntl(f2, F_SETLK, &w);
    len += snprintf(out + len, sizeof out - len, "F_SETLK overlapping from another process: %s\n", r < 0 ? ename(errno) : "ok");
    struct flock o = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 6, .l_len = 1};
    r = fcntl(f2, F_SETLK, &o);
    len += snprintf(out + len, sizeof out - len, "F_SETLK elsewhere from another process: %s\n", r < 0 ? ename(errno) : "ok");
    write(pipefd[1], out, len);
    _exit(0);
  }
  close(pipefd[1]);
  char out[600] = {0};
  ssize_t got = 0, n;
  while ((n = read(pipefd[0], out + got, sizeof out - 1 - got)) > 0) got += n;
  close(pipefd[0]);
  child_status(pid);
  fputs(out, stdout);
  /* A blocking F_SETLKW in a child waits until the parent unlocks. */
  pid = fork();
  if (pid == 0) {
    int f2 = open("f", O_RDWR);
    struct flock w = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 2, .l_len = 1};
    _exit(fcntl(f2, F_SETLKW, &w) < 0 ? 1 : 0);
  }
  usleep(200000);
  int st;
  printf("F_SETLKW still waiting: %s\n", waitpid(pid, &st, WNOHANG) == 0 ? "yes" : "no");
  fl.l_type = F_UNLCK;
  check("fcntl F_UNLCK", fcntl(fd, F_SETLK, &fl));
  printf("F_SETLKW got the lock: %s\n", child_status(pid) == 0 ? "yes" : "no");
  struct flock ofd = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  check("F_OFD_SETLK read lock", fcntl(fd, F_OFD_SETLK, &ofd));
  close(fd);
}

struct test_case {
  const char *name;
  void (*run)(void);
};

static const struct test_case cases[] = {
    {"rename_over_existing", case_rename_over_existing},
    {"hard_links", case_hard_links},
    {"symlinks", case_symlinks},
    {"fifo", case_fifo},
    {"sparse_and_large", case_sparse_and_large},
    {"o_append", case_o_append},
    {"o_excl", case_o_excl},
    {"o_trunc", case_o_trunc},
    {"truncate", case_truncate},
    {"unlink_open_file", case_unlink_open_file},
    {"rmdir_holding_unlinked_open_file", case_rmdir_holding_unlinked_open_file},
    {"mmap", case_mmap},
    {"utimens_seconds", case_utimens_seconds},
    {"utimens_before_1970", case_utimens_before_1970},
    {"utimens_nanoseconds", case_utimens_nanoseconds},
    {"utimens_only_mtime", case_utimens_only_mtime},
    {"chmod_chown_as_non_root", case_chmod_chown_as_non_root},
    {"rename_across_dirs", case_rename_across_dirs},
    {"rename_flags", case_rename_flags},
    {"owner_after_setuid", case_owner_after_setuid},
    {"deep_trees", case_deep_trees},
    {"deep_paths_over_path_max", case_deep_paths_over_path_max},
    {"names", case_names},
    {"names_not_utf8", case_names_not_utf8},
    {"unix_socket", case_unix_socket},
    {"xattrs", case_xattrs},
    {"locks", case_locks},
    {NULL, NULL},
};

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: cases DIR [case...]\n"); return 2; }
  if (!realpath(argv[1], base)) { perror(argv[1]); return 2; }
  setvbuf(stdout, NULL, _IOLBF, 0);
  umask(022);
  signal(SIGPIPE, SIG_IGN);
  for (const struct test_case *c = cases; c->name; c++) {
    int wanted = argc == 2;
    for (int i = 2; i < argc; i++) wanted |= strcmp(argv[i], c->name) == 0;
    if (!wanted) continue;
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/%s", base, c->name);
    printf("== %s\n", c->name);
    if (mkdir(dir, 0755) < 0 || chmod(dir, 0755) < 0 || chdir(dir) < 0) { printf("setup -> %s\n", ename(errno)); continue; }
    fflush(stdout);
    /* Each case in its own process, so one that crashes cannot hide the others. */
    pid_t pid = fork();
    if (pid == 0) { c->run(); fflush(stdout); _exit(0); }
    int st = child_status(pid);
    if (st != 0) printf("case ended with status %d\n", st);
    chdir(base);
  }
  return 0;
}
