/* What loop.c asks of a backend: the handful of calls that differ between
 * select, poll and epoll (Redis' aeApi* functions). Each backend is one
 * short file, select.c, poll.c or epoll.c, defining the same four static
 * functions (backend_create, backend_destroy, backend_set_interest,
 * backend_wait), which reach loop.c through one table. Private to
 * multiplexing/. */
#ifndef IOMODELS_LOOP_BACKEND_H
#define IOMODELS_LOOP_BACKEND_H

#include <signal.h>
#include <stdbool.h>

/* Besides LOOP_READABLE and LOOP_WRITABLE, a backend reports an error or a
 * hang-up with this bit; loop.c turns it into what loop.h promises. */
enum { LOOP_FAILED = 4 };

struct loop_ready {
    int fd;
    int ready; /* LOOP_READABLE | LOOP_WRITABLE | LOOP_FAILED */
};

struct loop_backend {
    const char *name;
    /* The first descriptor number the backend cannot take (select:
     * FD_SETSIZE). */
    int fd_limit;
    /* capacity: highest descriptor + 1. NULL with errno set on failure. */
    void *(*create)(int capacity, bool edge_triggered);
    void (*destroy)(void *state);
    /* Tells the kernel (or the backend's own sets) that fd's interest goes
     * from old_interest to new_interest; 0 means "not registered". The loop
     * calls it only when the two differ. 0, or -1 with errno set. */
    int (*set_interest)(void *state, int fd, int old_interest, int new_interest);
    /* The one call that blocks: waits at most timeout_ms (-1: no limit)
     * with wait_mask as the signal mask, then fills ready[] (room for
     * max_ready). Returns how many, or -1 with errno set (EINTR included). */
    int (*wait)(void *state, int timeout_ms, const sigset_t *wait_mask, struct loop_ready *ready, int max_ready);
};

extern const struct loop_backend select_backend;
extern const struct loop_backend poll_backend;
extern const struct loop_backend epoll_backend;

#endif
