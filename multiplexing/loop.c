/* The dispatcher behind loop.h: a table of watched descriptors (handler,
 * data, interest), the tick, and the run loop. The backend (select.c,
 * poll.c, epoll.c) only waits; everything it reports comes back through
 * the table, so a handler that unwatches or closes another descriptor is
 * seen before that descriptor's event is dispatched. */
#include "loop.h"

#include "backend.h"
#include "clock.h"
#include "log.h"
#include "signals.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

const char *const loop_api_names[] = {"select", "poll", "epoll", NULL};

struct watch {
    loop_handler *handler; /* NULL: not watched */
    void *data;
    int interest; /* also what the backend has registered: they never differ */
    /* The batch in which this registration began. An event of that same
     * batch was reported for a descriptor closed since, whose number a new
     * accept got back: it is stale and must not reach the new owner. */
    uint64_t watched_since;
};

struct loop {
    const struct loop_backend *backend;
    void *state;
    bool edge_triggered;
    int capacity;
    struct watch *watches;    /* indexed by fd, capacity entries */
    struct loop_ready *ready; /* filled by each wait */
    uint64_t batch;           /* counts the waits that returned events */
    bool stopping;

    int tick_interval_ms; /* 0: no tick */
    loop_tick_handler *tick_handler;
    void *tick_data;
    int64_t next_tick_ms;
};

static const struct loop_backend *backend_for(enum loop_api api)
{
    switch (api) {
    case LOOP_SELECT:
        return &select_backend;
    case LOOP_POLL:
        return &poll_backend;
    case LOOP_EPOLL:
        return &epoll_backend;
    }
    return NULL;
}

struct loop *loop_create(enum loop_api api, bool edge_triggered, int capacity)
{
    const struct loop_backend *backend = backend_for(api);
    if (!backend || capacity <= 0 || (edge_triggered && api != LOOP_EPOLL)) {
        errno = EINVAL;
        return NULL;
    }
    if (capacity > backend->fd_limit)
        capacity = backend->fd_limit;

    struct loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    *loop = (struct loop){.backend = backend, .edge_triggered = edge_triggered, .capacity = capacity};
    /* calloc: pages of a large table stay untouched until a descriptor that
     * high is watched, so a generous fd limit costs address space, not RSS. */
    loop->watches = calloc((size_t)capacity, sizeof *loop->watches);
    loop->ready = calloc((size_t)capacity, sizeof *loop->ready);
    if (loop->watches && loop->ready)
        loop->state = backend->create(capacity, edge_triggered);
    if (!loop->state) {
        int saved = errno;
        free(loop->watches);
        free(loop->ready);
        free(loop);
        errno = saved;
        return NULL;
    }
    return loop;
}

void loop_destroy(struct loop *loop)
{
    if (!loop)
        return;
    loop->backend->destroy(loop->state);
    free(loop->watches);
    free(loop->ready);
    free(loop);
}

const char *loop_api_name(const struct loop *loop)
{
    return loop->backend->name;
}

bool loop_is_edge_triggered(const struct loop *loop)
{
    return loop->edge_triggered;
}

bool loop_can_watch(const struct loop *loop, int fd)
{
    return fd >= 0 && fd < loop->capacity;
}

int loop_watch(struct loop *loop, int fd, int interest, loop_handler *handler, void *data)
{
    if (!loop_can_watch(loop, fd)) {
        errno = fd < 0 ? EBADF : ERANGE;
        return -1;
    }
    if (!handler || (interest & ~(LOOP_READABLE | LOOP_WRITABLE))) {
        errno = EINVAL;
        return -1;
    }
    struct watch *w = &loop->watches[fd];
    if (interest != w->interest && loop->backend->set_interest(loop->state, fd, w->interest, interest) < 0)
        return -1;
    if (!w->handler)
        w->watched_since = loop->batch;
    w->handler = handler;
    w->data = data;
    w->interest = interest;
    return 0;
}

void loop_unwatch(struct loop *loop, int fd)
{
    if (!loop_can_watch(loop, fd) || !loop->watches[fd].handler)
        return;
    struct watch *w = &loop->watches[fd];
    /* Failing means fd was closed before it was unwatched: a bug worth a
     * line, though the close already dropped the registration. */
    if (w->interest != 0 && loop->backend->set_interest(loop->state, fd, w->interest, 0) < 0)
        warn_errno("stop watching fd %d", fd);
    *w = (struct watch){0};
}

void loop_set_tick(struct loop *loop, int interval_ms, loop_tick_handler *handler, void *data)
{
    loop->tick_interval_ms = handler && interval_ms > 0 ? interval_ms : 0;
    loop->tick_handler = handler;
    loop->tick_data = data;
    loop->next_tick_ms = monotonic_ms() + loop->tick_interval_ms;
}

void loop_stop(struct loop *loop)
{
    loop->stopping = true;
}

/* How long the wait may sleep: until the next tick, or for ever. */
static int wait_timeout_ms(struct loop *loop)
{
    if (loop->tick_interval_ms == 0)
        return -1;
    int64_t left = loop->next_tick_ms - monotonic_ms();
    return left > 0 ? (int)left : 0;
}

static void run_tick_if_due(struct loop *loop)
{
    if (loop->tick_interval_ms == 0 || monotonic_ms() < loop->next_tick_ms)
        return;
    loop->next_tick_ms = monotonic_ms() + loop->tick_interval_ms;
    loop->tick_handler(loop, loop->tick_data);
}

/* What the handler is told, given what the backend saw and what is wanted
 * *now*: an earlier handler of this batch may have changed the interest. */
static int deliverable(int seen, int interest)
{
    int ready = seen & interest;
    if (interest != 0 && (seen & LOOP_FAILED))
        ready |= LOOP_READABLE | (interest & LOOP_WRITABLE);
    return ready;
}

static void dispatch(struct loop *loop, int count)
{
    for (int i = 0; i < count; i++) {
        int fd = loop->ready[i].fd;
        struct watch *w = &loop->watches[fd];
        if (!w->handler || w->watched_since == loop->batch)
            continue;
        int ready = deliverable(loop->ready[i].ready, w->interest);
        if (ready)
            w->handler(loop, fd, ready, w->data);
    }
}

int loop_run(struct loop *loop)
{
    sigset_t wait_mask;
    block_stop_signals(&wait_mask);
    loop->stopping = false;

    while (!loop->stopping && !stop_requested()) {
        int count = loop->backend->wait(loop->state, wait_timeout_ms(loop), &wait_mask, loop->ready, loop->capacity);
        if (count < 0) {
            /* A stop signal, or SIGSTOP/SIGCONT: these waits are never
             * restarted by the kernel. The loop condition decides. */
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (count > 0) {
            loop->batch++;
            dispatch(loop, count);
        }
        run_tick_if_due(loop);
    }
    return 0;
}
