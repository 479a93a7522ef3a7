/* Rootless sessions: the user namespace of a non-root login (see userns.c). */
#ifndef OUTRUN_USERNS_H
#define OUTRUN_USERNS_H
#include <stddef.h>
#include <sys/types.h>

/* Forks a child in new user and pid namespaces (it is PID 1 there). -1 with errno on failure. */
pid_t userns_clone(void);

/* Why a user namespace could not be made (err: clone's errno), with what to do: one line in buf. */
const char *userns_refusal(int err, char *buf, size_t size);

/* Maps the child's namespace: local_uid/local_gid to the login's ids, and with newuidmap,
 * newgidmap and /etc/subuid, /etc/subgid ranges for the login, the ids around them. 0, or -1 with
 * a reason in why. */
int userns_map(pid_t pid, uid_t local_uid, gid_t local_gid, char *why, size_t whysize);

/* Keeps CAP_SYS_ADMIN (in the namespace) across execve for a non-zero uid: the agent mounts. */
int userns_keep_mount_cap(void);

/* Whether setgroups(2) is denied in our user namespace (mapped without newgidmap). */
int userns_setgroups_denied(void);
/* outrun-helper try-userns: makes a user and mount namespace, maps the login's own ids, opens
 * /dev/fuse and mounts it on DIR there (nothing outside sees it; it goes when we exit). 0 if all
 * of that works, else 1 with the step that failed on stderr (for outrun --check). */
int userns_try_fuse(const char *dir);
#endif
