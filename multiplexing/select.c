/* The select(2) backend: two fixed-size bitmaps, one bit per descriptor.
 * The kernel scans every bit up to the highest descriptor on each call and
 * the loop scans them again afterwards: the cost grows with the highest fd,
 * not with the number of ready ones. An fd_set holds FD_SETSIZE bits; a
 * larger descriptor would write past its end, so loop.c never passes one. */
#include "backend.h"
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/select.h>

struct select_state {
    fd_set readers, writers; /* the master sets: what is wanted */
    int max_fd;              /* highest fd in either set, -1 if none */
};

static void *backend_create(int capacity, bool edge_triggered)
{
    (void)capacity;
    (void)edge_triggered;
    struct select_state *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    FD_ZERO(&s->readers);
    FD_ZERO(&s->writers);
    s->max_fd = -1;
    return s;
}

static void backend_destroy(void *state)
{
    free(state);
}

static int backend_set_interest(void *state, int fd, int old_interest, int new_interest)
{
    struct select_state *s = state;
    (void)old_interest;
    if (fd < 0 || fd >= FD_SETSIZE) {
        errno = ERANGE;
        return -1;
    }
    if (new_interest & LOOP_READABLE)
        FD_SET(fd, &s->readers);
    else
        FD_CLR(fd, &s->readers);
    if (new_interest & LOOP_WRITABLE)
        FD_SET(fd, &s->writers);
    else
        FD_CLR(fd, &s->writers);

    if (new_interest != 0 && fd > s->max_fd)
        s->max_fd = fd;
    while (s->max_fd >= 0 && !FD_ISSET(s->max_fd, &s->readers) && !FD_ISSET(s->max_fd, &s->writers))
        s->max_fd--;
    return 0;
}

static int backend_wait(void *state, int timeout_ms, const sigset_t *wait_mask, struct loop_ready *ready,
                       int max_ready)
{
    struct select_state *s = state;
    /* select overwrites its sets with the ready ones: hand it copies. */
    fd_set readable = s->readers, writable = s->writers;
    struct timespec timeout = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000};

    int n = pselect(s->max_fd + 1, &readable, &writable, NULL, timeout_ms < 0 ? NULL : &timeout, wait_mask);
    if (n <= 0)
        return n;

    int count = 0;
    for (int fd = 0; fd <= s->max_fd && count < max_ready; fd++) {
        int bits = (FD_ISSET(fd, &readable) ? LOOP_READABLE : 0) | (FD_ISSET(fd, &writable) ? LOOP_WRITABLE : 0);
        if (bits)
            ready[count++] = (struct loop_ready){.fd = fd, .ready = bits};
    }
    return count;
}

const struct loop_backend select_backend = {
    .name = "select",
    .fd_limit = FD_SETSIZE,
    .create = backend_create,
    .destroy = backend_destroy,
    .set_interest = backend_set_interest,
    .wait = backend_wait,
};
