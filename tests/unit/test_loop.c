/* Unit tests of the readiness loop (multiplexing/loop.c) over socketpairs,
 * once per backend. Every run has a tick as a backstop, so a broken loop
 * fails a check instead of hanging the suite. */
#include "../../multiplexing/loop.h"
#include "unit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

struct variant {
    enum loop_api api;
    bool edge;
};

static const struct variant variants[] = {
    {LOOP_SELECT, false},
    {LOOP_POLL, false},
    {LOOP_EPOLL, false},
    {LOOP_EPOLL, true},
};
enum { VARIANT_COUNT = sizeof variants / sizeof variants[0], CAPACITY = 256 };

struct calls {
    int count;
    int last_fd;
    int last_ready;
    int ready_seen[4];
};

static void record(struct loop *loop, int fd, int ready, void *data)
{
    (void)loop;
    struct calls *c = data;
    if (c->count < 4)
        c->ready_seen[c->count] = ready;
    c->count++;
    c->last_fd = fd;
    c->last_ready = ready;
}

static void record_and_stop(struct loop *loop, int fd, int ready, void *data)
{
    record(loop, fd, ready, data);
    loop_stop(loop);
}

struct ticks {
    int count;
    int stop_after;
};

static void count_ticks(struct loop *loop, void *data)
{
    struct ticks *t = data;
    if (++t->count >= t->stop_after)
        loop_stop(loop);
}

/* Runs the loop until a handler stops it or stop_after ticks of interval_ms
 * have passed; returns how many ticks ran. */
static int run_bounded(struct loop *loop, int interval_ms, int stop_after)
{
    struct ticks ticks = {.stop_after = stop_after};
    loop_set_tick(loop, interval_ms, count_ticks, &ticks);
    int rc = loop_run(loop);
    loop_set_tick(loop, 0, NULL, NULL);
    return rc < 0 ? -1 : ticks.count;
}

static bool make_pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0;
}

static void close_pair(int sv[2])
{
    close(sv[0]);
    close(sv[1]);
}

UNIT_TEST(loop_names_and_limits)
{
    struct loop *loop = loop_create(LOOP_SELECT, false, FD_SETSIZE * 4);
    REQUIRE(loop);
    CHECK(strcmp(loop_api_name(loop), "select") == 0);
    CHECK(loop_can_watch(loop, FD_SETSIZE - 1));
    CHECK(!loop_can_watch(loop, FD_SETSIZE));
    CHECK(!loop_can_watch(loop, -1));
    loop_destroy(loop);

    loop = loop_create(LOOP_POLL, false, 100);
    REQUIRE(loop);
    CHECK(strcmp(loop_api_name(loop), "poll") == 0);
    CHECK(loop_can_watch(loop, 99) && !loop_can_watch(loop, 100));
    errno = 0;
    CHECK(loop_watch(loop, 100, LOOP_READABLE, record, NULL) == -1 && errno == ERANGE);
    loop_destroy(loop);

    loop = loop_create(LOOP_EPOLL, true, 100);
    REQUIRE(loop);
    CHECK(strcmp(loop_api_name(loop), "epoll") == 0 && loop_is_edge_triggered(loop));
    loop_destroy(loop);

    errno = 0;
    CHECK(loop_create(LOOP_POLL, true, 100) == NULL && errno == EINVAL);
}

UNIT_TEST(loop_dispatches_readable)
{
    for (int v = 0; v < VARIANT_COUNT; v++) {
        int sv[2];
        REQUIRE(make_pair(sv));
        struct loop *loop = loop_create(variants[v].api, variants[v].edge, CAPACITY);
        REQUIRE(loop);
        struct calls calls = {0};
        CHECK(loop_watch(loop, sv[0], LOOP_READABLE, record_and_stop, &calls) == 0);
        CHECK(write(sv[1], "x", 1) == 1);
        CHECK(run_bounded(loop, 2000, 1) == 0);
        CHECK(calls.count == 1 && calls.last_fd == sv[0] && calls.last_ready == LOOP_READABLE);
        loop_unwatch(loop, sv[0]);
        loop_destroy(loop);
        close_pair(sv);
    }
}

/* Asked for writability first, then the handler swaps to readability: the
 * byte that was there all along must be reported only after the swap. */
static void write_then_read(struct loop *loop, int fd, int ready, void *data)
{
    struct calls *c = data;
    record(loop, fd, ready, data);
    if (c->count > 1 || loop_watch(loop, fd, LOOP_READABLE, write_then_read, data) < 0)
        loop_stop(loop);
}

UNIT_TEST(loop_follows_interest_changes)
{
    for (int v = 0; v < VARIANT_COUNT; v++) {
        int sv[2];
        REQUIRE(make_pair(sv));
        struct loop *loop = loop_create(variants[v].api, variants[v].edge, CAPACITY);
        REQUIRE(loop);
        struct calls calls = {0};
        CHECK(loop_watch(loop, sv[0], LOOP_WRITABLE, write_then_read, &calls) == 0);
        /* Readable too from the start, but only writability is asked for. */
        CHECK(write(sv[1], "x", 1) == 1);
        CHECK(run_bounded(loop, 2000, 1) == 0);
        CHECK(calls.count == 2);
        CHECK(calls.ready_seen[0] == LOOP_WRITABLE);
        CHECK(calls.ready_seen[1] == LOOP_READABLE);
        loop_unwatch(loop, sv[0]);
        loop_destroy(loop);
        close_pair(sv);
    }
}

/* Two ready sockets in one batch; whichever handler runs first unwatches and
 * closes the other, then puts a fresh, readable socket on the very same
 * descriptor number. The old event for that number must reach no one. */
struct reuse_test {
    int fds[2];      /* the two watched ends */
    int peers[2];    /* their peers */
    int fresh_peer;  /* peer of the socket that took over the number */
    int killers_run;
    struct calls newcomer;
};

static void kill_and_reuse(struct loop *loop, int fd, int ready, void *data)
{
    (void)ready;
    struct reuse_test *t = data;
    t->killers_run++;
    int victim = t->fds[0] == fd ? t->fds[1] : t->fds[0];
    loop_unwatch(loop, fd);
    loop_unwatch(loop, victim);
    close(victim);
    int sv[2];
    if (!make_pair(sv)) {
        loop_stop(loop);
        return;
    }
    if (sv[0] != victim) {
        dup2(sv[0], victim);
        close(sv[0]);
    }
    {
        t->fresh_peer = sv[1];
        if (write(sv[1], "y", 1) == 1)
            loop_watch(loop, victim, LOOP_READABLE, record_and_stop, &t->newcomer);
    }
    loop_stop(loop);
}

UNIT_TEST(loop_never_dispatches_stale_events)
{
    for (int v = 0; v < VARIANT_COUNT; v++) {
        struct reuse_test t = {.fresh_peer = -1};
        for (int i = 0; i < 2; i++) {
            int sv[2];
            REQUIRE(make_pair(sv));
            t.fds[i] = sv[0];
            t.peers[i] = sv[1];
            CHECK(write(sv[1], "x", 1) == 1);
        }
        struct loop *loop = loop_create(variants[v].api, variants[v].edge, CAPACITY);
        REQUIRE(loop);
        for (int i = 0; i < 2; i++)
            CHECK(loop_watch(loop, t.fds[i], LOOP_READABLE, kill_and_reuse, &t) == 0);
        CHECK(run_bounded(loop, 2000, 1) == 0);
        CHECK(t.killers_run == 1);
        CHECK(t.newcomer.count == 0);
        CHECK(t.fresh_peer >= 0);

        /* The newcomer is readable for real: the next run must deliver it. */
        CHECK(run_bounded(loop, 2000, 1) >= 0);
        CHECK(t.newcomer.count >= 1);
        for (int i = 0; i < 2; i++) {
            loop_unwatch(loop, t.fds[i]);
            close(t.fds[i]);
            close(t.peers[i]);
        }
        if (t.fresh_peer >= 0)
            close(t.fresh_peer);
        loop_destroy(loop);
    }
}

/* Two ready sockets in one batch; whichever handler runs first pauses the
 * other (interest 0): the other's event, already collected, must wait. */
struct pause_test {
    int fds[2];
    struct calls calls;
};

static void pause_other(struct loop *loop, int fd, int ready, void *data)
{
    struct pause_test *t = data;
    record(loop, fd, ready, &t->calls);
    int other = t->fds[0] == fd ? t->fds[1] : t->fds[0];
    loop_watch(loop, fd, 0, pause_other, t);
    loop_watch(loop, other, 0, pause_other, t);
    loop_stop(loop);
}

UNIT_TEST(loop_honours_interest_changed_mid_batch)
{
    for (int v = 0; v < VARIANT_COUNT; v++) {
        struct pause_test t = {0};
        int peers[2];
        for (int i = 0; i < 2; i++) {
            int sv[2];
            REQUIRE(make_pair(sv));
            t.fds[i] = sv[0];
            peers[i] = sv[1];
            CHECK(write(sv[1], "x", 1) == 1);
        }
        struct loop *loop = loop_create(variants[v].api, variants[v].edge, CAPACITY);
        REQUIRE(loop);
        for (int i = 0; i < 2; i++)
            CHECK(loop_watch(loop, t.fds[i], LOOP_READABLE, pause_other, &t) == 0);
        CHECK(run_bounded(loop, 2000, 1) == 0);
        CHECK(t.calls.count == 1);
        for (int i = 0; i < 2; i++) {
            loop_unwatch(loop, t.fds[i]);
            close(t.fds[i]);
            close(peers[i]);
        }
        loop_destroy(loop);
    }
}

/* Interest 0 keeps the watch but wakes no one, not even for a hang-up. */
UNIT_TEST(loop_paused_watch_stays_quiet)
{
    for (int v = 0; v < VARIANT_COUNT; v++) {
        int sv[2];
        REQUIRE(make_pair(sv));
        struct loop *loop = loop_create(variants[v].api, variants[v].edge, CAPACITY);
        REQUIRE(loop);
        struct calls calls = {0};
        CHECK(loop_watch(loop, sv[0], LOOP_READABLE, record, &calls) == 0);
        CHECK(loop_watch(loop, sv[0], 0, record, &calls) == 0);
        CHECK(write(sv[1], "x", 1) == 1);
        close(sv[1]);
        CHECK(run_bounded(loop, 20, 2) == 2);
        CHECK(calls.count == 0);

        CHECK(loop_watch(loop, sv[0], LOOP_READABLE, record_and_stop, &calls) == 0);
        CHECK(run_bounded(loop, 2000, 1) == 0);
        CHECK(calls.count == 1 && (calls.last_ready & LOOP_READABLE));
        loop_unwatch(loop, sv[0]);
        loop_destroy(loop);
        close(sv[0]);
    }
}

/* A hang-up arrives as readable, so the handler's read sees it; asked only
 * for writability, the handler is told writable too. */
UNIT_TEST(loop_reports_hangup_as_readable)
{
    for (int v = 0; v < VARIANT_COUNT; v++) {
        int sv[2];
        REQUIRE(make_pair(sv));
        struct loop *loop = loop_create(variants[v].api, variants[v].edge, CAPACITY);
        REQUIRE(loop);
        struct calls calls = {0};
        CHECK(loop_watch(loop, sv[0], LOOP_READABLE, record_and_stop, &calls) == 0);
        close(sv[1]);
        CHECK(run_bounded(loop, 2000, 1) == 0);
        CHECK(calls.count == 1 && (calls.last_ready & LOOP_READABLE));

        calls = (struct calls){0};
        CHECK(loop_watch(loop, sv[0], LOOP_WRITABLE, record_and_stop, &calls) == 0);
        CHECK(run_bounded(loop, 2000, 1) == 0);
        CHECK(calls.count == 1 && (calls.last_ready & LOOP_WRITABLE));
        loop_unwatch(loop, sv[0]);
        loop_destroy(loop);
        close(sv[0]);
    }
}

/* A handler that leaves the byte unread: level-triggered is told again on
 * every wait, edge-triggered only once. */
UNIT_TEST(loop_level_repeats_edge_does_not)
{
    for (int v = 0; v < VARIANT_COUNT; v++) {
        int sv[2];
        REQUIRE(make_pair(sv));
        struct loop *loop = loop_create(variants[v].api, variants[v].edge, CAPACITY);
        REQUIRE(loop);
        struct calls calls = {0};
        CHECK(loop_watch(loop, sv[0], LOOP_READABLE, record, &calls) == 0);
        CHECK(write(sv[1], "x", 1) == 1);
        CHECK(run_bounded(loop, 20, 1) == 1);
        if (variants[v].edge)
            CHECK(calls.count == 1);
        else
            CHECK(calls.count > 1);
        loop_unwatch(loop, sv[0]);
        loop_destroy(loop);
        close_pair(sv);
    }
}

UNIT_TEST(loop_ticks_with_nothing_watched)
{
    for (int v = 0; v < VARIANT_COUNT; v++) {
        struct loop *loop = loop_create(variants[v].api, variants[v].edge, CAPACITY);
        REQUIRE(loop);
        CHECK(run_bounded(loop, 2, 3) == 3);
        loop_destroy(loop);
    }
}
