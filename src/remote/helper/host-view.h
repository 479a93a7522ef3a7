/* The command's view of the filesystem in --no-chroot mode (host-view.c). */
#ifndef OUTRUN_HOST_VIEW_H
#define OUTRUN_HOST_VIEW_H

#include <stddef.h>

/*
 * In a mount namespace of the caller's own: each of `paths` (absolute, canonical local paths
 * below /, as parse_spec checks them) bound from under `root` (the session's FUSE mount) at
 * the same path over the remote's tree.
 * A path the remote lacks is made on a tmpfs that stands in for its deepest existing
 * ancestor, holding that ancestor's entries (bound) and the new one; `stage` is an empty
 * directory to build it in. Returns 0, or -1 with errno set and *failed naming the path.
 */
int host_view(const char *root, const char *stage, char **paths, size_t n, const char **failed);

#endif
