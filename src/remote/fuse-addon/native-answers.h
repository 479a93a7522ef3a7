// What the addon's files share: the request layout they read, the passthrough ioctls, the
// table of native attribute answers and the N-API argument helpers.
#ifndef OUTRUN_NATIVE_ANSWERS_H
#define OUTRUN_NATIVE_ANSWERS_H
#include <node_api.h>
#include <stdint.h>
#include <sys/ioctl.h>

#define IN_HEADER_SIZE 40  /* struct fuse_in_header */
#define OUT_HEADER_SIZE 16 /* struct fuse_out_header */
/** Handles of opens answered natively carry this bit (JS's handles stay below 2^53). */
#define NATIVE_HANDLE_TAG (1ull << 62)

// Newer than Debian 12's linux/fuse.h (protocol 7.38): passthrough (7.40, kernel 6.9).
struct outrun_backing_map {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
#define OUTRUN_DEV_IOC_MAGIC 229
#define OUTRUN_DEV_IOC_BACKING_OPEN _IOW(OUTRUN_DEV_IOC_MAGIC, 1, struct outrun_backing_map)
#define OUTRUN_DEV_IOC_BACKING_CLOSE _IOW(OUTRUN_DEV_IOC_MAGIC, 2, uint32_t)

napi_value int_value(napi_env env, int64_t v);
int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv);
int get_int(napi_env env, napi_value v, int64_t *out);

/** 1 if the table of native attribute answers holds a current answer for the node. */
int attr_is_current(uint64_t nodeid);

/** Answers an OPEN, or a RELEASE/FLUSH of a native handle, if it can; 1 if answered. */
int native_open_answer(int fd, const char *req, size_t len);
/** New opens of the node go to JS (its attributes were dropped). */
void native_opens_withdraw(uint64_t nodeid);
uint64_t native_opens_served(void);
napi_value passthrough_hold(napi_env env, napi_callback_info info);
napi_value passthrough_adopt(napi_env env, napi_callback_info info);
napi_value passthrough_release(napi_env env, napi_callback_info info);
napi_value passthrough_take_opens(napi_env env, napi_callback_info info);
napi_value passthrough_stop(napi_env env, napi_callback_info info);
#endif
