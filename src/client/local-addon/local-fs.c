// The local file server's native calls: what Node's fs lacks. Extended attributes
// (l*xattr: never following a symlink), utimensat with nanoseconds and UTIME_OMIT, and
// renameat2 with its flags; and flock, which a host pool's slots are (src/client/pool/).
// Each call is synchronous (they are quick metadata calls on the
// local disk) and returns a negative errno instead of throwing, so that the server turns
// it into the errno of its reply. Paths arrive checked (absolute, no NUL) by the server.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MAX_PATH 4096
#define MAX_XATTR (64 * 1024)

static napi_value num(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

/** A Buffer argument as a NUL-terminated string in `out` (0), or -1 with a TypeError thrown. */
static int cstr(napi_env env, napi_value v, char *out, size_t size) {
  void *data;
  size_t len;
  if (napi_get_buffer_info(env, v, &data, &len) != napi_ok || len >= size || memchr(data, 0, len)) {
    napi_throw_type_error(env, "EINVAL", "expected a Buffer without NUL, of reasonable length");
    return -1;
  }
  memcpy(out, data, len);
  out[len] = 0;
  return 0;
}

static int args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, "EINVAL", "missing arguments");
    return -1;
  }
  return 0;
}

static int64_t int_arg(napi_env env, napi_value v) {
  int64_t out = 0;
  napi_get_value_int64(env, v, &out);
  return out;
}

/**
 * One attribute's value (name) or the list of names (name NULL), as get/listxattr give
 * them: a Buffer, its length for size 0, or -errno.
 */
static napi_value xattr_read(napi_env env, const char *path, const char *name, int64_t size) {
  if (size < 0 || size > MAX_XATTR) size = MAX_XATTR;
  char *buf = size ? malloc((size_t)size) : NULL;
  if (size && !buf) return num(env, -ENOMEM);
  ssize_t n = name ? lgetxattr(path, name, buf, (size_t)size) : llistxattr(path, buf, (size_t)size);
  napi_value out;
  if (n < 0) out = num(env, -errno);
  else if (!size) out = num(env, n);
  else napi_create_buffer_copy(env, (size_t)n, buf, NULL, &out);
  free(buf);
  return out;
}

/** getxattr(path, name, size): a Buffer with the value (size 0: a number, its length), or -errno. */
static napi_value get_xattr(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char path[MAX_PATH], name[256];
  if (args(env, info, 3, argv) || cstr(env, argv[0], path, sizeof path) || cstr(env, argv[1], name, sizeof name)) return NULL;
  return xattr_read(env, path, name, int_arg(env, argv[2]));
}

/** listxattr(path, size): a Buffer of NUL-ended names (size 0: a number, its length), or -errno. */
static napi_value list_xattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[MAX_PATH];
  if (args(env, info, 2, argv) || cstr(env, argv[0], path, sizeof path)) return NULL;
  return xattr_read(env, path, NULL, int_arg(env, argv[1]));
}

/** setxattr(path, name, value, flags): 0 or -errno. */
static napi_value set_xattr(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  char path[MAX_PATH], name[256];
  void *value;
  size_t len;
  if (args(env, info, 4, argv) || cstr(env, argv[0], path, sizeof path) || cstr(env, argv[1], name, sizeof name)) return NULL;
  if (napi_get_buffer_info(env, argv[2], &value, &len) != napi_ok || len > MAX_XATTR) return num(env, -E2BIG);
  int flags = (int)int_arg(env, argv[3]) & (XATTR_CREATE | XATTR_REPLACE);
  return num(env, lsetxattr(path, name, value, len, flags) < 0 ? -errno : 0);
}

/** removexattr(path, name): 0 or -errno. */
static napi_value remove_xattr(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  char path[MAX_PATH], name[256];
  if (args(env, info, 2, argv) || cstr(env, argv[0], path, sizeof path) || cstr(env, argv[1], name, sizeof name)) return NULL;
  return num(env, lremovexattr(path, name) < 0 ? -errno : 0);
}

/** utimens(path, aSec, aNsec, mSec, mNsec): nsec may be UTIME_NOW or UTIME_OMIT; never follows a link. */
static napi_value utimens(napi_env env, napi_callback_info info) {
  napi_value argv[5];
  char path[MAX_PATH];
  if (args(env, info, 5, argv) || cstr(env, argv[0], path, sizeof path)) return NULL;
  struct timespec ts[2] = {
      {.tv_sec = (time_t)int_arg(env, argv[1]), .tv_nsec = (long)int_arg(env, argv[2])},
      {.tv_sec = (time_t)int_arg(env, argv[3]), .tv_nsec = (long)int_arg(env, argv[4])},
  };
  return num(env, utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0);
}

/** rename(from, to, flags): renameat2; 0 or -errno. */
static napi_value rename2(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char from[MAX_PATH], to[MAX_PATH];
  if (args(env, info, 3, argv) || cstr(env, argv[0], from, sizeof from) || cstr(env, argv[1], to, sizeof to)) return NULL;
  unsigned flags = (unsigned)int_arg(env, argv[2]) & (RENAME_NOREPLACE | RENAME_EXCHANGE);
  return num(env, renameat2(AT_FDCWD, from, AT_FDCWD, to, flags) < 0 ? -errno : 0);
}

/** flock(fd, op): op is LOCK_EX or LOCK_UN, with LOCK_NB; 0 or -errno (EWOULDBLOCK: held elsewhere). */
static napi_value flock_fd(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (args(env, info, 2, argv)) return NULL;
  int op = (int)int_arg(env, argv[1]) & (LOCK_EX | LOCK_UN | LOCK_NB);
  return num(env, flock((int)int_arg(env, argv[0]), op) < 0 ? -errno : 0);
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"getxattr", NULL, get_xattr, NULL, NULL, NULL, napi_default, NULL},
      {"listxattr", NULL, list_xattr, NULL, NULL, NULL, napi_default, NULL},
      {"setxattr", NULL, set_xattr, NULL, NULL, NULL, napi_default, NULL},
      {"removexattr", NULL, remove_xattr, NULL, NULL, NULL, napi_default, NULL},
      {"utimens", NULL, utimens, NULL, NULL, NULL, napi_default, NULL},
      {"rename", NULL, rename2, NULL, NULL, NULL, napi_default, NULL},
      {"flock", NULL, flock_fd, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
