/* The epoll(7) backend: the interest set lives in the kernel, registered
 * once with epoll_ctl, and a wait returns only the descriptors that are
 * ready. The cost of a wait grows with the ready ones, not the watched
 * ones, which is why 10,000 mostly idle connections are cheap here.
 *
 * Level-triggered (the default) reports a descriptor on every wait while it
 * is ready. Edge-triggered (EPOLLET) reports it once per change, so its
 * handler must read, write and accept until EAGAIN, or it is never told
 * again. loop.c calls set_interest only when the interest changes: a
 * steady echo costs no epoll_ctl per message. */
#include "backend.h"
#include "loop.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

struct epoll_state {
    int epoll_fd;
    bool edge_triggered;
    struct epoll_event *events;
    int max_events;
};

/* One wait hands back at most this many; the rest stay queued in the
 * kernel for the next wait, which takes them in turn. */
enum { EPOLL_BATCH = 1024 };

static void *backend_create(int capacity, bool edge_triggered)
{
    struct epoll_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->edge_triggered = edge_triggered;
    s->max_events = capacity < EPOLL_BATCH ? capacity : EPOLL_BATCH;
    s->events = calloc((size_t)s->max_events, sizeof *s->events);
    s->epoll_fd = s->events ? epoll_create1(EPOLL_CLOEXEC) : -1;
    if (s->epoll_fd < 0) {
        int saved = s->events ? errno : ENOMEM;
        free(s->events);
        free(s);
        errno = saved;
        return NULL;
    }
    return s;
}

static void backend_destroy(void *state)
{
    struct epoll_state *s = state;
    close(s->epoll_fd);
    free(s->events);
    free(s);
}

static int backend_set_interest(void *state, int fd, int old_interest, int new_interest)
{
    struct epoll_state *s = state;
    /* epoll always reports EPOLLERR and EPOLLHUP, even for an empty mask:
     * a descriptor that wants nothing leaves the set instead, so a paused
     * listener cannot wake a level-triggered loop over and over. */
    if (new_interest == 0)
        return epoll_ctl(s->epoll_fd, EPOLL_CTL_DEL, fd, NULL);

    struct epoll_event ev = {
        .events = (new_interest & LOOP_READABLE ? EPOLLIN : 0u) | (new_interest & LOOP_WRITABLE ? EPOLLOUT : 0u) |
                  (s->edge_triggered ? EPOLLET : 0u),
        .data.fd = fd,
    };
    /* Both ADD and MOD look at the descriptor's readiness at once, so an
     * edge that came while it was not watched for is not lost. */
    return epoll_ctl(s->epoll_fd, old_interest == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev);
}

static int backend_wait(void *state, int timeout_ms, const sigset_t *wait_mask, struct loop_ready *ready,
                              int max_ready)
{
    struct epoll_state *s = state;
    int max = max_ready < s->max_events ? max_ready : s->max_events;
    int n = epoll_pwait(s->epoll_fd, s->events, max, timeout_ms, wait_mask);
    for (int i = 0; i < n; i++) {
        uint32_t e = s->events[i].events;
        int bits = (e & EPOLLIN ? LOOP_READABLE : 0) | (e & EPOLLOUT ? LOOP_WRITABLE : 0) |
                   (e & (EPOLLERR | EPOLLHUP) ? LOOP_FAILED : 0);
        ready[i] = (struct loop_ready){.fd = s->events[i].data.fd, .ready = bits};
    }
    return n;
}

const struct loop_backend epoll_backend = {
    .name = "epoll",
    .fd_limit = INT_MAX, /* no ceiling of its own */
    .create = backend_create,
    .destroy = backend_destroy,
    .set_interest = backend_set_interest,
    .wait = backend_wait,
};
