/* Confinement: every path a client names resolves inside --root.
 *
 * Two steps, for two different dangers:
 *  1. path_join() works on text only. It joins the client's argument to the
 *     session's working directory and folds "." and ".." away, giving a
 *     virtual path such as "/pub/a.txt". A ".." that would climb above "/"
 *     is refused here, before the file system is touched.
 *  2. path_open() and path_open_parent() hand that path, relative to the
 *     root's descriptor, to openat2(RESOLVE_BENEATH). The kernel then walks
 *     it and refuses any step, a symbolic link included, that would leave
 *     the root (EXDEV). The check and the open are one system call, so no
 *     link swapped in between a check and a use can slip through.
 *
 * Everything afterwards works on the descriptor that came back (fstat,
 * sendfile, fdopendir) or on one name inside an opened directory
 * (unlinkat, mkdirat, renameat), never on a path again. */
#ifndef FTP_PATHS_H
#define FTP_PATHS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A virtual path ("/" + at most this many bytes). Command lines are
 * bounded, but a working directory grows with each CWD. */
enum { VPATH_MAX = 1024 };

/* Joins arg (absolute "/a/b" or relative to cwd) and normalises it into
 * out. Returns 0, EXDEV if it would climb above the root, ENAMETOOLONG,
 * or EINVAL for a control character (no listing could show that name). */
int path_join(const char *cwd, const char *arg, char out[VPATH_MAX]);

/* Opens a virtual path beneath root_fd (openat2 RESOLVE_BENEATH). flags as
 * for open(2); O_CLOEXEC is added. Returns the descriptor or -1 with errno
 * (EXDEV: the path, or a link on it, leads outside the root). */
int path_open(int root_fd, const char *vpath, int flags, mode_t mode);

/* Opens the directory that holds vpath's last component (O_PATH) and copies
 * that component into name: the form unlinkat, mkdirat and renameat want.
 * The root itself has no parent: -1 with errno EPERM. */
int path_open_parent(int root_fd, const char *vpath, char *name, size_t name_len);

/* The last component of a virtual path ("/" for the root). */
const char *path_basename(const char *vpath);

/* False if this kernel cannot confine paths (openat2 needs Linux 5.6). */
bool path_confinement_available(int root_fd);

/* The text of a 550 reply for errno err, worded for a client. */
const char *path_error_text(int err);

#endif
