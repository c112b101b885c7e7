#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Appends the components of text to out (length *len, "" meaning the
 * root), folding "." and "..". Returns 0, EXDEV on a climb above the
 * root, or ENAMETOOLONG. */
static int fold_components(char *out, size_t *len, const char *text)
{
    while (*text) {
        while (*text == '/')
            text++;
        const char *end = strchrnul(text, '/');
        size_t n = (size_t)(end - text);
        if (n == 0)
            break;
        if (n == 2 && text[0] == '.' && text[1] == '.') {
            if (*len == 0)
                return EXDEV;
            while (out[--*len] != '/') /* every component starts with '/' */
                ;
        } else if (!(n == 1 && text[0] == '.')) {
            if (*len + 1 + n >= VPATH_MAX)
                return ENAMETOOLONG;
            out[(*len)++] = '/';
            memcpy(out + *len, text, n);
            *len += n;
        }
        text = end;
    }
    return 0;
}

/* Control characters (a CR, say) make names no listing can frame. */
static bool has_control_character(const char *text)
{
    for (; *text; text++)
        if ((unsigned char)*text < 0x20 || *text == 0x7f)
            return true;
    return false;
}

int path_join(const char *cwd, const char *arg, char out[VPATH_MAX])
{
    if (has_control_character(arg))
        return EINVAL;
    size_t len = 0;
    int err = arg[0] == '/' ? 0 : fold_components(out, &len, cwd);
    if (err == 0)
        err = fold_components(out, &len, arg);
    if (err != 0)
        return err;
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
    return 0;
}

int path_open(int root_fd, const char *vpath, int flags, mode_t mode)
{
    /* RESOLVE_BENEATH: no step of the walk may leave root_fd, whether by
     * "..", an absolute link or a relative link that climbs out.
     * RESOLVE_NO_MAGICLINKS: no /proc/self/fd-style jumps either. */
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    const char *relative = vpath[0] == '/' ? vpath + 1 : vpath;
    if (*relative == '\0')
        relative = ".";
    long fd;
    do
        fd = syscall(SYS_openat2, root_fd, relative, &how, sizeof how);
    while (fd < 0 && errno == EINTR);
    return (int)fd;
}

int path_open_parent(int root_fd, const char *vpath, char *name, size_t name_len)
{
    const char *slash = strrchr(vpath, '/');
    const char *last = slash ? slash + 1 : vpath;
    size_t parent_len = slash ? (size_t)(slash - vpath) : 0;
    if (*last == '\0' || strlen(last) >= name_len || parent_len >= VPATH_MAX) {
        errno = *last == '\0' ? EPERM : ENAMETOOLONG;
        return -1;
    }
    char parent[VPATH_MAX];
    memcpy(parent, vpath, parent_len);
    parent[parent_len] = '\0';
    strcpy(name, last);
    return path_open(root_fd, parent_len ? parent : "/", O_PATH | O_DIRECTORY, 0);
}

const char *path_basename(const char *vpath)
{
    const char *slash = strrchr(vpath, '/');
    return slash && slash[1] ? slash + 1 : vpath;
}

bool path_confinement_available(int root_fd)
{
    int fd = path_open(root_fd, "/", O_PATH | O_DIRECTORY, 0);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

const char *path_error_text(int err)
{
    switch (err) {
    case ENOENT:
        return "No such file or directory";
    case EXDEV:
        return "Path leads outside the root";
    case EACCES:
    case EPERM:
    case EROFS:
        return "Permission denied";
    case ENOTDIR:
        return "Not a directory";
    case EISDIR:
        return "Is a directory";
    case EEXIST:
        return "File exists";
    case ENOTEMPTY:
        return "Directory not empty";
    case EINVAL:
        return "File name not allowed";
    case ENAMETOOLONG:
        return "File name too long";
    case ENOSPC:
    case EDQUOT:
        return "No space left on device";
    default:
        return strerror(err);
    }
}
