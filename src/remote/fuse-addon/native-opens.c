// Read-only opens of files passed through to their blob, answered on the reader thread.
//
// A build opens each system header and library thousands of times; passed through, such an
// open needs nothing of JS but the backing id registered for the file's blob. This table
// owns the backing ids of passed-through nodes (the kernel allows one per inode while any
// passed-through open of it lasts) and counts their opens: JS's own (held) and those made
// here. Once JS has passed a node through, an OPEN of it asking only to read, while its
// attributes are current in the table of native answers (the same condition as a GETATTR
// answered here), is answered here with that backing id, FOPEN_NOFLUSH (a read-only close
// has nothing to flush) and a tagged handle whose RELEASE is answered here too. Everything
// that makes JS drop the node's attributes (a change, a newer version, FORGET) withdraws the
// offer; JS takes over the count of native opens when the file loses its name while open
// (its releases then reach JS too), so the file stays readable until the last close.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "native-answers.h"

#define OPCODE_OPEN 14
#define OPCODE_RELEASE 18
#define OPCODE_FSYNC 20
#define OPCODE_FLUSH 25
#define FOPEN_NOFLUSH_FLAG (1u << 5)
#define FOPEN_PASSTHROUGH_FLAG (1u << 7)
#define OPEN_OUT_SIZE 16 /* struct fuse_open_out */
/** At most this many nodes are offered at once: past it, JS keeps its own backing ids. */
#define MAX_OFFERED 16384
#define NBUCKETS 4096

struct pt_entry {
  struct pt_entry *next;
  uint64_t nodeid;
  uint64_t blob;      /* which blob the backing id is for (JS's key: its inode number) */
  int32_t backing_id;
  uint32_t opens;     /* native opens not yet released */
  uint32_t held;      /* JS's passed-through opens not yet released */
  int offered;        /* new opens may be answered here */
  int forward;        /* native releases go to JS too (it counts them since the file lost its name) */
};

static pthread_mutex_t pt_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pt_entry *pt_buckets[NBUCKETS];
static size_t pt_offered;
static uint64_t pt_served, pt_next_handle;
static int pt_dev_fd = -1;

static struct pt_entry **pt_find(uint64_t nodeid) {
  struct pt_entry **p = &pt_buckets[(size_t)((nodeid * 0x9E3779B97F4A7C15ull) >> 52) & (NBUCKETS - 1)];
  while (*p && (*p)->nodeid != nodeid) p = &(*p)->next;
  return p;
}

static void pt_unoffer(struct pt_entry *e) {
  if (!e->offered) return;
  e->offered = 0;
  pt_offered--;
}

/** Frees an entry nothing uses any more, closing its backing id (pt_lock held). */
static void pt_reap(struct pt_entry **p) {
  struct pt_entry *e = *p;
  if (e->offered || e->opens || e->held) return;
  uint32_t id = (uint32_t)e->backing_id;
  // The kernel holds the backing file for every open made with it: closing the id is safe.
  if (pt_dev_fd >= 0) ioctl(pt_dev_fd, OUTRUN_DEV_IOC_BACKING_CLOSE, &id);
  *p = e->next;
  free(e);
}

static void reply_header(unsigned char *out, uint32_t total, int32_t error, uint64_t unique) {
  memcpy(out, &total, 4);
  memcpy(out + 4, &error, 4);
  memcpy(out + 8, &unique, 8);
}

static void write_all(int fd, const void *buf, size_t len) {
  while (write(fd, buf, len) < 0 && errno == EINTR) {
  }
}

int native_open_answer(int fd, const char *req, size_t len) {
  if (len < IN_HEADER_SIZE + 8) return 0;
  uint32_t opcode;
  uint64_t unique, nodeid;
  memcpy(&opcode, req + 4, 4);
  memcpy(&unique, req + 8, 8);
  memcpy(&nodeid, req + 16, 8);
  if (opcode == OPCODE_OPEN) {
    uint32_t flags;
    memcpy(&flags, req + IN_HEADER_SIZE, 4);
    if ((flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC)) return 0;
    int32_t backing = 0;
    uint64_t fh = 0;
    pthread_mutex_lock(&pt_lock);
    struct pt_entry *e = *pt_find(nodeid);
    if (e && e->offered && attr_is_current(nodeid)) {
      e->opens++;
      backing = e->backing_id;
      fh = NATIVE_HANDLE_TAG | ++pt_next_handle;
      pt_served++;
    }
    pthread_mutex_unlock(&pt_lock);
    if (!backing) return 0;
    unsigned char out[OUT_HEADER_SIZE + OPEN_OUT_SIZE];
    uint32_t open_flags = FOPEN_PASSTHROUGH_FLAG | FOPEN_NOFLUSH_FLAG;
    reply_header(out, sizeof out, 0, unique);
    memcpy(out + OUT_HEADER_SIZE, &fh, 8);
    memcpy(out + OUT_HEADER_SIZE + 8, &open_flags, 4);
    memcpy(out + OUT_HEADER_SIZE + 12, &backing, 4);
    write_all(fd, out, sizeof out);
    return 1;
  }
  // A read-only handle has nothing to flush or sync: only its release is counted.
  if (opcode != OPCODE_RELEASE && opcode != OPCODE_FLUSH && opcode != OPCODE_FSYNC) return 0;
  uint64_t fh;
  memcpy(&fh, req + IN_HEADER_SIZE, 8);
  if (!(fh & NATIVE_HANDLE_TAG)) return 0;
  int to_js = 0;
  if (opcode == OPCODE_RELEASE) {
    pthread_mutex_lock(&pt_lock);
    struct pt_entry **p = pt_find(nodeid);
    if (*p) {
      to_js = (*p)->forward;
      if ((*p)->opens) (*p)->opens--;
      pt_reap(p);
    }
    pthread_mutex_unlock(&pt_lock);
  }
  if (to_js) return 0;
  unsigned char out[OUT_HEADER_SIZE];
  reply_header(out, sizeof out, 0, unique);
  write_all(fd, out, sizeof out);
  return 1;
}

/**
 * No more opens of the node are answered here. Returns how many passed-through opens of it,
 * native and JS's, are still open. take: JS counts the native ones from now on; *taken says
 * how many (0 after the first time), and each of their releases reaches JS too.
 */
static int64_t pt_withdraw(uint64_t nodeid, int take, uint32_t *taken) {
  int64_t open = 0;
  pthread_mutex_lock(&pt_lock);
  struct pt_entry **p = pt_find(nodeid);
  if (*p) {
    struct pt_entry *e = *p;
    pt_unoffer(e);
    open = (int64_t)e->opens + e->held;
    if (take && !e->forward && e->opens) {
      *taken = e->opens;
      e->forward = 1;
    }
    pt_reap(p);
  }
  pthread_mutex_unlock(&pt_lock);
  return open;
}

void native_opens_withdraw(uint64_t nodeid) { pt_withdraw(nodeid, 0, NULL); }

/**
 * passthroughHold(nodeid, blob): for an open JS passes through, the node's backing id (held
 * until passthroughRelease), offered again to native opens; 0 if the table has none;
 * -EBUSY if it has one for another blob that is still open (the kernel allows one).
 */
napi_value passthrough_hold(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int64_t nodeid, blob;
  if (get_args(env, info, 2, argv) || get_int(env, argv[0], &nodeid) || get_int(env, argv[1], &blob)) return NULL;
  int64_t id = 0;
  pthread_mutex_lock(&pt_lock);
  struct pt_entry **p = pt_find((uint64_t)nodeid);
  if (*p && (*p)->blob != (uint64_t)blob) {
    pt_unoffer(*p);
    pt_reap(p);
    if (*pt_find((uint64_t)nodeid)) id = -EBUSY;
  } else if (*p) {
    struct pt_entry *e = *p;
    e->held++;
    id = e->backing_id;
    if (!e->offered && !e->forward && pt_offered < MAX_OFFERED) {
      e->offered = 1;
      pt_offered++;
    }
  }
  pthread_mutex_unlock(&pt_lock);
  return int_value(env, id);
}

/**
 * passthroughAdopt(devFd, nodeid, blob, backingId): the table owns the id from now on (it
 * closes it), held once for the open JS is answering; offered to native opens while fewer
 * than MAX_OFFERED are. Only after passthroughHold found none.
 */
napi_value passthrough_adopt(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  int64_t dev, nodeid, blob, id;
  if (get_args(env, info, 4, argv) || get_int(env, argv[0], &dev) || get_int(env, argv[1], &nodeid) || get_int(env, argv[2], &blob) ||
      get_int(env, argv[3], &id))
    return NULL;
  int taken = 0;
  pthread_mutex_lock(&pt_lock);
  pt_dev_fd = (int)dev;
  struct pt_entry **p = pt_find((uint64_t)nodeid);
  struct pt_entry *e = *p ? NULL : calloc(1, sizeof *e);
  if (e) {
    e->nodeid = (uint64_t)nodeid;
    e->blob = (uint64_t)blob;
    e->backing_id = (int32_t)id;
    e->held = 1;
    if (pt_offered < MAX_OFFERED) {
      e->offered = 1;
      pt_offered++;
    }
    *p = e;
    taken = 1;
  }
  pthread_mutex_unlock(&pt_lock);
  return int_value(env, taken);
}

/** passthroughRelease(nodeid): one of JS's passed-through opens of the node ended. */
napi_value passthrough_release(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t nodeid;
  if (get_args(env, info, 1, argv) || get_int(env, argv[0], &nodeid)) return NULL;
  pthread_mutex_lock(&pt_lock);
  struct pt_entry **p = pt_find((uint64_t)nodeid);
  if (*p) {
    if ((*p)->held) (*p)->held--;
    pt_reap(p);
  }
  pthread_mutex_unlock(&pt_lock);
  return NULL;
}

/**
 * passthroughTakeOpens(nodeid): no more opens of the node are answered here, and JS counts
 * the native ones still open from now on: returns how many (0 after the first call); each of
 * their releases then reaches JS as well.
 */
napi_value passthrough_take_opens(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t nodeid;
  if (get_args(env, info, 1, argv) || get_int(env, argv[0], &nodeid)) return NULL;
  uint32_t taken = 0;
  pt_withdraw((uint64_t)nodeid, 1, &taken);
  return int_value(env, taken);
}

/**
 * passthroughStop(nodeid): no more opens of the node are answered here (JS is making one
 * that uses the page cache, which the kernel refuses beside passed-through ones); returns
 * how many passed-through opens of it, native and JS's, are still open.
 */
napi_value passthrough_stop(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t nodeid;
  if (get_args(env, info, 1, argv) || get_int(env, argv[0], &nodeid)) return NULL;
  return int_value(env, pt_withdraw((uint64_t)nodeid, 0, NULL));
}

/** Opens answered here so far. */
uint64_t native_opens_served(void) {
  pthread_mutex_lock(&pt_lock);
  uint64_t n = pt_served;
  pthread_mutex_unlock(&pt_lock);
  return n;
}
