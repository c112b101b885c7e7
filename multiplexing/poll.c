/* The poll(2) backend: an array of {fd, events} with one entry per watched
 * descriptor, so there is no FD_SETSIZE ceiling and the kernel scans only
 * what is watched. It still copies the whole array in and out on every
 * call: the cost grows with the number of connections, ready or not. */
#include "backend.h"
#include "loop.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>

struct poll_state {
    struct pollfd *entries; /* the watched descriptors, packed: [0, count) */
    int count;
    int *slot_of; /* fd -> its index in entries + 1; 0: not there */
};

static void *backend_create(int capacity, bool edge_triggered)
{
    (void)edge_triggered;
    struct poll_state *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->entries = calloc((size_t)capacity, sizeof *s->entries);
    s->slot_of = calloc((size_t)capacity, sizeof *s->slot_of);
    if (!s->entries || !s->slot_of) {
        free(s->entries);
        free(s->slot_of);
        free(s);
        errno = ENOMEM;
        return NULL;
    }
    return s;
}

static void backend_destroy(void *state)
{
    struct poll_state *s = state;
    free(s->entries);
    free(s->slot_of);
    free(s);
}

static short poll_events(int interest)
{
    return (short)((interest & LOOP_READABLE ? POLLIN : 0) | (interest & LOOP_WRITABLE ? POLLOUT : 0));
}

/* Moves the last entry into the hole, so the array stays packed. */
static void remove_entry(struct poll_state *s, int fd)
{
    int slot = s->slot_of[fd] - 1;
    struct pollfd last = s->entries[--s->count];
    s->slot_of[fd] = 0;
    if (last.fd != fd) {
        s->entries[slot] = last;
        s->slot_of[last.fd] = slot + 1;
    }
}

static int backend_set_interest(void *state, int fd, int old_interest, int new_interest)
{
    struct poll_state *s = state;
    /* An entry with events 0 would still report POLLHUP and POLLERR,
     * over and over: a descriptor that wants nothing is left out. */
    if (new_interest == 0) {
        if (old_interest != 0)
            remove_entry(s, fd);
        return 0;
    }
    if (old_interest == 0) {
        s->entries[s->count] = (struct pollfd){.fd = fd};
        s->slot_of[fd] = ++s->count;
    }
    s->entries[s->slot_of[fd] - 1].events = poll_events(new_interest);
    return 0;
}

static int backend_wait(void *state, int timeout_ms, const sigset_t *wait_mask, struct loop_ready *ready, int max_ready)
{
    struct poll_state *s = state;
    struct timespec timeout = {.tv_sec = timeout_ms / 1000, .tv_nsec = (long)(timeout_ms % 1000) * 1000000};

    int n = ppoll(s->entries, (nfds_t)s->count, timeout_ms < 0 ? NULL : &timeout, wait_mask);
    if (n <= 0)
        return n;

    int count = 0;
    for (int i = 0; i < s->count && count < n && count < max_ready; i++) {
        short revents = s->entries[i].revents;
        if (revents == 0)
            continue;
        int bits = (revents & POLLIN ? LOOP_READABLE : 0) | (revents & POLLOUT ? LOOP_WRITABLE : 0) |
                   (revents & (POLLERR | POLLHUP | POLLNVAL) ? LOOP_FAILED : 0);
        ready[count++] = (struct loop_ready){.fd = s->entries[i].fd, .ready = bits};
    }
    return count;
}

const struct loop_backend poll_backend = {
    .name = "poll",
    .fd_limit = INT_MAX, /* no ceiling of its own */
    .create = backend_create,
    .destroy = backend_destroy,
    .set_interest = backend_set_interest,
    .wait = backend_wait,
};
