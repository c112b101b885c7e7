/* LD_PRELOAD shim for tests/test_echo.py: raises SIGTERM on the way into
 * accept4(), after the server's loop has checked its stop flag and before
 * the call can block. That is the one moment a stop signal can only set
 * the flag; the server must still notice and exit. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <sys/socket.h>

int accept4(int fd, struct sockaddr *addr, socklen_t *addr_len, int flags)
{
    int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
    *(void **)&real_accept4 = dlsym(RTLD_NEXT, "accept4");
    raise(SIGTERM);
    return real_accept4(fd, addr, addr_len, flags);
}
