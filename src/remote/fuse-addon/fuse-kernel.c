// The agent's native FUSE layer: the few things JS cannot do with /dev/fuse. It opens the
// device, mounts it, reads kernel requests on threads of its own and hands each one to JS,
// writes replies, writes notifications from a thread of their own, and opens backing files
// for passthrough. The protocol itself (requests, replies, INIT) is parsed and built in JS
// (src/remote/fuse/), except for the few requests answered natively (below).
//
// GETATTR is answered on the reader thread itself when JS left a current answer for the node
// (attrSet): a command walking a tree it walked before (whose atimes the kernel dropped) or
// many processes stat-ing at once never wait for the JS thread. So are read-only opens of
// files passed through to their blob (native-opens.c).
//
// Why notifications get their own thread: the kernel may hold a directory's lock while it
// waits for our answer to a request in that directory, and an inval_entry for it waits for
// that lock. Written from the JS thread, which must send that answer, it would deadlock.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "native-answers.h"

#define CHECK(call)                                  \
  do {                                               \
    if ((call) != napi_ok) return throw_status(env); \
  } while (0)

static napi_value throw_status(napi_env env) {
  const napi_extended_error_info *info = NULL;
  napi_get_last_error_info(env, &info);
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "EINVAL", info && info->error_message ? info->error_message : "N-API call failed");
  return NULL;
}

/** Throws an Error carrying the errno (its name is looked up in JS: older glibcs lack strerrorname_np). */
static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[512];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_value code, message, error, num;
  napi_create_string_utf8(env, "ERR_OUTRUN_FUSE", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &num);
  napi_set_named_property(env, error, "errno", num);
  napi_throw(env, error);
  return NULL;
}

napi_value int_value(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) {
    napi_throw_type_error(env, "EINVAL", "missing arguments");
    return -1;
  }
  return 0;
}

int get_int(napi_env env, napi_value v, int64_t *out) {
  if (napi_get_value_int64(env, v, out) != napi_ok) {
    napi_throw_type_error(env, "EINVAL", "expected a number");
    return -1;
  }
  return 0;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t size) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok || len + 1 >= size) {
    napi_throw_type_error(env, "EINVAL", "expected a string of reasonable length");
    return -1;
  }
  return 0;
}

/** openDevice(): the fd of a new /dev/fuse connection. */
static napi_value open_device(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/fuse", errno);
  return int_value(env, fd);
}

/** mount(target, data, flags): mount(2) of a fuse.outrun filesystem (data carries fd=N). */
static napi_value do_mount(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  char target[4096], data[1024];
  int64_t flags;
  if (get_args(env, info, 3, argv) || get_string(env, argv[0], target, sizeof target) ||
      get_string(env, argv[1], data, sizeof data) || get_int(env, argv[2], &flags))
    return NULL;
  if (mount("outrun", target, "fuse.outrun", (unsigned long)flags, data) != 0) return throw_errno(env, "mount", errno);
  return NULL;
}

/** unmount(target): lazy umount2 (a command may still hold files there). */
static napi_value do_unmount(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  char target[4096];
  if (get_args(env, info, 1, argv) || get_string(env, argv[0], target, sizeof target)) return NULL;
  if (umount2(target, MNT_DETACH) != 0) return throw_errno(env, "umount", errno);
  return NULL;
}

// ---- attributes answered natively ---------------------------------------------------------

#define ATTR_OUT_SIZE 104 /* struct fuse_attr_out */
#define OPCODE_GETATTR 3

struct attr_entry {
  struct attr_entry *next;
  uint64_t nodeid;
  uint64_t expires_ns; /* CLOCK_MONOTONIC */
  unsigned char out[ATTR_OUT_SIZE];
};

static pthread_mutex_t attr_lock = PTHREAD_MUTEX_INITIALIZER;
static struct attr_entry **attr_buckets;
static size_t attr_nbuckets, attr_count;
static uint64_t attr_served;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static size_t attr_bucket(uint64_t nodeid) { return (size_t)((nodeid * 0x9E3779B97F4A7C15ull) >> 20) & (attr_nbuckets - 1); }

/** Grows the table to keep chains short (called with attr_lock held). */
static void attr_grow(void) {
  size_t n = attr_nbuckets ? attr_nbuckets * 2 : 4096;
  struct attr_entry **b = calloc(n, sizeof *b);
  if (!b) return;
  struct attr_entry **old = attr_buckets;
  size_t oldn = attr_nbuckets;
  attr_buckets = b;
  attr_nbuckets = n;
  for (size_t i = 0; i < oldn; i++) {
    for (struct attr_entry *e = old[i], *next; e; e = next) {
      next = e->next;
      size_t k = attr_bucket(e->nodeid);
      e->next = attr_buckets[k];
      attr_buckets[k] = e;
    }
  }
  free(old);
}

static struct attr_entry **attr_find(uint64_t nodeid) {
  if (!attr_nbuckets) return NULL;
  struct attr_entry **p = &attr_buckets[attr_bucket(nodeid)];
  while (*p && (*p)->nodeid != nodeid) p = &(*p)->next;
  return p;
}

int attr_is_current(uint64_t nodeid) {
  pthread_mutex_lock(&attr_lock);
  struct attr_entry **p = attr_find(nodeid);
  int current = p && *p && (*p)->expires_ns > now_ns();
  pthread_mutex_unlock(&attr_lock);
  return current;
}

static void attr_remove(uint64_t nodeid) {
  struct attr_entry **p = attr_find(nodeid);
  if (p && *p) {
    struct attr_entry *e = *p;
    *p = e->next;
    free(e);
    attr_count--;
  }
}

/** Answers a GETATTR from the table if it holds a current answer; 1 if answered. */
static int attr_answer(int fd, const char *req, size_t len) {
  if (len < IN_HEADER_SIZE) return 0;
  uint32_t opcode;
  uint64_t unique, nodeid;
  memcpy(&opcode, req + 4, 4);
  if (opcode != OPCODE_GETATTR) return 0;
  memcpy(&unique, req + 8, 8);
  memcpy(&nodeid, req + 16, 8);
  unsigned char out[OUT_HEADER_SIZE + ATTR_OUT_SIZE];
  int found = 0;
  pthread_mutex_lock(&attr_lock);
  struct attr_entry **p = attr_find(nodeid);
  if (p && *p && (*p)->expires_ns > now_ns()) {
    memcpy(out + OUT_HEADER_SIZE, (*p)->out, ATTR_OUT_SIZE);
    found = 1;
    attr_served++;
  }
  pthread_mutex_unlock(&attr_lock);
  if (!found) return 0;
  uint32_t total = sizeof out;
  int32_t error = 0;
  memcpy(out, &total, 4);
  memcpy(out + 4, &error, 4);
  memcpy(out + 8, &unique, 8);
  while (write(fd, out, sizeof out) < 0 && errno == EINTR) {
  }
  return 1;
}

/** attrSet(nodeid, attrOut, ttlMs): GETATTR of the node is answered with attrOut (a fuse_attr_out) for ttlMs. */
static napi_value attr_set(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t nodeid, ttl;
  void *data;
  size_t len;
  if (get_args(env, info, 3, argv) || get_int(env, argv[0], &nodeid) || get_int(env, argv[2], &ttl)) return NULL;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  if (len != ATTR_OUT_SIZE) {
    napi_throw_range_error(env, "EINVAL", "attrOut must be a 104-byte fuse_attr_out");
    return NULL;
  }
  pthread_mutex_lock(&attr_lock);
  if (attr_count >= attr_nbuckets) attr_grow();
  struct attr_entry **p = attr_find((uint64_t)nodeid);
  struct attr_entry *e = p ? *p : NULL;
  if (p && !e && (e = malloc(sizeof *e))) {
    e->next = NULL;
    e->nodeid = (uint64_t)nodeid;
    *p = e;
    attr_count++;
  }
  if (e) {
    memcpy(e->out, data, ATTR_OUT_SIZE);
    e->expires_ns = now_ns() + (uint64_t)(ttl > 0 ? ttl : 0) * 1000000ull;
  }
  pthread_mutex_unlock(&attr_lock);
  return NULL;
}

/** attrDrop(nodeid): the node's attributes are no longer answered here. */
static napi_value attr_drop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t nodeid;
  if (get_args(env, info, 1, argv) || get_int(env, argv[0], &nodeid)) return NULL;
  pthread_mutex_lock(&attr_lock);
  attr_remove((uint64_t)nodeid);
  pthread_mutex_unlock(&attr_lock);
  native_opens_withdraw((uint64_t)nodeid);
  return NULL;
}

/** attrStats(): [GETATTRs answered here, entries held, OPENs answered here]. */
static napi_value attr_stats(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(napi_create_array_with_length(env, 3, &out));
  napi_set_element(env, out, 2, int_value(env, (int64_t)native_opens_served()));
  pthread_mutex_lock(&attr_lock);
  napi_set_element(env, out, 0, int_value(env, (int64_t)attr_served));
  napi_set_element(env, out, 1, int_value(env, (int64_t)attr_count));
  pthread_mutex_unlock(&attr_lock);
  return out;
}

// ---- reading requests ------------------------------------------------------------------

struct reader {
  int fd;
  size_t buf_size;
  napi_threadsafe_function tsfn;
  pthread_t thread;
};

/** One request (or the end of the connection, with data NULL and err set) on its way to JS. */
struct request {
  char *data;
  size_t len;
  int err;
};

static void free_request_data(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  free(data);
}

static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  struct request *req = data;
  if (env != NULL && cb != NULL) {
    napi_value argv[2], undefined;
    napi_get_undefined(env, &undefined);
    if (req->data) {
      if (napi_create_external_buffer(env, req->len, req->data, free_request_data, NULL, &argv[0]) != napi_ok) {
        // External buffers can be refused (a sandboxed V8): copy instead.
        napi_create_buffer_copy(env, req->len, req->data, NULL, &argv[0]);
        free(req->data);
      }
      req->data = NULL;
    } else {
      argv[0] = undefined;
    }
    napi_create_int32(env, req->err, &argv[1]);
    napi_call_function(env, undefined, cb, 2, argv, NULL);
  } else {
    free(req->data);
  }
  free(req);
}

static void *read_loop(void *arg) {
  struct reader *r = arg;
  char *buf = malloc(r->buf_size);
  int err = buf ? 0 : ENOMEM;
  while (!err) {
    ssize_t n = read(r->fd, buf, r->buf_size);
    if (n < 0) {
      // EINTR: a signal; EAGAIN: another thread took it; ENOENT: the request was interrupted.
      if (errno == EINTR || errno == EAGAIN || errno == ENOENT) continue;
      err = errno; // ENODEV: unmounted or aborted
      break;
    }
    if (attr_answer(r->fd, buf, (size_t)n) || native_open_answer(r->fd, buf, (size_t)n)) continue;
    struct request *req = calloc(1, sizeof *req);
    char *copy = malloc((size_t)n);
    if (!req || !copy) {
      free(req);
      free(copy);
      err = ENOMEM;
      break;
    }
    memcpy(copy, buf, (size_t)n);
    req->data = copy;
    req->len = (size_t)n;
    if (napi_call_threadsafe_function(r->tsfn, req, napi_tsfn_blocking) != napi_ok) {
      free(copy);
      free(req);
      err = ECANCELED;
    }
  }
  free(buf);
  struct request *end = calloc(1, sizeof *end);
  if (end) {
    end->err = err;
    if (napi_call_threadsafe_function(r->tsfn, end, napi_tsfn_blocking) != napi_ok) free(end);
  }
  napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
  free(r);
  return NULL;
}

/**
 * startReader(fd, bufferSize, onRequest): a thread that reads requests and calls
 * onRequest(buffer, 0) for each, then onRequest(undefined, errno) once the connection ends.
 */
static napi_value start_reader(napi_env env, napi_callback_info info) {
  napi_value argv[3], name;
  int64_t fd, size;
  if (get_args(env, info, 3, argv) || get_int(env, argv[0], &fd) || get_int(env, argv[1], &size)) return NULL;
  if (size < 8192 || size > (64 << 20)) {
    napi_throw_range_error(env, "EINVAL", "buffer size out of range");
    return NULL;
  }
  struct reader *r = calloc(1, sizeof *r);
  if (!r) return throw_errno(env, "startReader", ENOMEM);
  r->fd = (int)fd;
  r->buf_size = (size_t)size;
  CHECK(napi_create_string_utf8(env, "outrun-fuse-reader", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, NULL, NULL, NULL, call_js, &r->tsfn));
  int err = pthread_create(&r->thread, NULL, read_loop, r);
  if (err) {
    napi_release_threadsafe_function(r->tsfn, napi_tsfn_abort);
    free(r);
    return throw_errno(env, "pthread_create", err);
  }
  pthread_detach(r->thread);
  return NULL;
}

// ---- replies -----------------------------------------------------------------------------

/** reply(fd, ...buffers): one writev; returns 0 or -errno (ENOENT: the request was interrupted). */
static napi_value reply(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, "EINVAL", "reply(fd, ...buffers)");
    return NULL;
  }
  int64_t fd;
  if (get_int(env, argv[0], &fd)) return NULL;
  struct iovec iov[8];
  int n = 0;
  for (size_t i = 1; i < argc; i++) {
    void *data;
    size_t len;
    CHECK(napi_get_buffer_info(env, argv[i], &data, &len));
    if (len == 0) continue;
    iov[n].iov_base = data;
    iov[n].iov_len = len;
    n++;
  }
  ssize_t w = writev((int)fd, iov, n);
  return int_value(env, w < 0 ? -errno : 0);
}

// ---- notifications -------------------------------------------------------------------------

struct notice {
  struct notice *next;
  int fd;
  int64_t id; /* > 0: JS waits for it to be written (notifyDone is called with it) */
  size_t len;
  char data[];
};

static napi_threadsafe_function notice_done;

static void call_done(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  int64_t *id = data;
  if (env != NULL && cb != NULL) {
    napi_value undefined, arg;
    napi_get_undefined(env, &undefined);
    napi_create_int64(env, *id, &arg);
    napi_call_function(env, undefined, cb, 1, &arg, NULL);
  }
  free(id);
}

static pthread_mutex_t notice_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t notice_ready = PTHREAD_COND_INITIALIZER;
static struct notice *notice_head, *notice_tail;
static int notifier_started;

static void *notify_loop(void *arg) {
  (void)arg;
  for (;;) {
    pthread_mutex_lock(&notice_lock);
    while (!notice_head) pthread_cond_wait(&notice_ready, &notice_lock);
    struct notice *n = notice_head;
    notice_head = n->next;
    if (!notice_head) notice_tail = NULL;
    pthread_mutex_unlock(&notice_lock);
    // ENOENT: the kernel no longer knows the inode or entry, which is what we wanted.
    while (write(n->fd, n->data, n->len) < 0 && errno == EINTR) {
    }
    if (n->id > 0 && notice_done) {
      int64_t *id = malloc(sizeof *id);
      if (id) {
        *id = n->id;
        if (napi_call_threadsafe_function(notice_done, id, napi_tsfn_blocking) != napi_ok) free(id);
      }
    }
    free(n);
  }
  return NULL;
}

/** onNotified(cb): cb(id) is called once a notice given an id is written. */
static napi_value on_notified(napi_env env, napi_callback_info info) {
  napi_value argv[1], name;
  if (get_args(env, info, 1, argv)) return NULL;
  if (notice_done) return NULL;
  CHECK(napi_create_string_utf8(env, "outrun-fuse-notified", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, argv[0], NULL, name, 0, 1, NULL, NULL, NULL, call_done, &notice_done));
  // Waiting notices are not a reason to keep the process alive.
  napi_unref_threadsafe_function(env, notice_done);
  return NULL;
}

/** notify(fd, buffer, id): queued, written in order by the notifier thread (id > 0: reported). */
static napi_value notify(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  int64_t fd, id;
  void *data;
  size_t len;
  if (get_args(env, info, 3, argv) || get_int(env, argv[0], &fd) || get_int(env, argv[2], &id)) return NULL;
  CHECK(napi_get_buffer_info(env, argv[1], &data, &len));
  struct notice *n = malloc(sizeof *n + len);
  if (!n) return throw_errno(env, "notify", ENOMEM);
  n->next = NULL;
  n->fd = (int)fd;
  n->id = id;
  n->len = len;
  memcpy(n->data, data, len);
  pthread_mutex_lock(&notice_lock);
  if (!notifier_started) {
    pthread_t t;
    int err = pthread_create(&t, NULL, notify_loop, NULL);
    if (err) {
      pthread_mutex_unlock(&notice_lock);
      free(n);
      return throw_errno(env, "pthread_create", err);
    }
    pthread_detach(t);
    notifier_started = 1;
  }
  if (notice_tail) notice_tail->next = n;
  else notice_head = n;
  notice_tail = n;
  pthread_cond_signal(&notice_ready);
  pthread_mutex_unlock(&notice_lock);
  return NULL;
}

// ---- passthrough ----------------------------------------------------------------------------

/** backingOpen(devFd, fileFd): a backing id for FOPEN_PASSTHROUGH, or -errno. */
static napi_value backing_open(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev, file;
  if (get_args(env, info, 2, argv) || get_int(env, argv[0], &dev) || get_int(env, argv[1], &file)) return NULL;
  struct outrun_backing_map map = {.fd = (int32_t)file, .flags = 0, .padding = 0};
  int id = ioctl((int)dev, OUTRUN_DEV_IOC_BACKING_OPEN, &map);
  return int_value(env, id < 0 ? -errno : id);
}

/** backingClose(devFd, id): 0 or -errno. */
static napi_value backing_close(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t dev, id;
  if (get_args(env, info, 2, argv) || get_int(env, argv[0], &dev) || get_int(env, argv[1], &id)) return NULL;
  uint32_t backing = (uint32_t)id;
  int rc = ioctl((int)dev, OUTRUN_DEV_IOC_BACKING_CLOSE, &backing);
  return int_value(env, rc < 0 ? -errno : 0);
}

/** close(fd): the connection's fd (after unmounting). */
static napi_value do_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t fd;
  if (get_args(env, info, 1, argv) || get_int(env, argv[0], &fd)) return NULL;
  close((int)fd);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"openDevice", NULL, open_device, NULL, NULL, NULL, napi_default, NULL},
      {"mount", NULL, do_mount, NULL, NULL, NULL, napi_default, NULL},
      {"unmount", NULL, do_unmount, NULL, NULL, NULL, napi_default, NULL},
      {"startReader", NULL, start_reader, NULL, NULL, NULL, napi_default, NULL},
      {"reply", NULL, reply, NULL, NULL, NULL, napi_default, NULL},
      {"notify", NULL, notify, NULL, NULL, NULL, napi_default, NULL},
      {"onNotified", NULL, on_notified, NULL, NULL, NULL, napi_default, NULL},
      {"backingOpen", NULL, backing_open, NULL, NULL, NULL, napi_default, NULL},
      {"backingClose", NULL, backing_close, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, do_close, NULL, NULL, NULL, napi_default, NULL},
      {"attrSet", NULL, attr_set, NULL, NULL, NULL, napi_default, NULL},
      {"attrDrop", NULL, attr_drop, NULL, NULL, NULL, napi_default, NULL},
      {"attrStats", NULL, attr_stats, NULL, NULL, NULL, napi_default, NULL},
      {"passthroughHold", NULL, passthrough_hold, NULL, NULL, NULL, napi_default, NULL},
      {"passthroughAdopt", NULL, passthrough_adopt, NULL, NULL, NULL, napi_default, NULL},
      {"passthroughRelease", NULL, passthrough_release, NULL, NULL, NULL, napi_default, NULL},
      {"passthroughTakeOpens", NULL, passthrough_take_opens, NULL, NULL, NULL, napi_default, NULL},
      {"passthroughStop", NULL, passthrough_stop, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE_INIT() { return init(env, exports); }
