/* One connection of the load generator: a small state machine that epoll
 * drives (connecting -> sending / receiving -> closed).
 *
 * Nothing is allocated or copied per message. A message is a window into
 * one shared pseudo-random pattern, at an offset of its own derived from
 * the connection and the message number: it is sent straight from the
 * pattern, and its echo is compared with the same window. An echo that is
 * stale, reordered, cut short or meant for another connection lands on the
 * wrong bytes and is caught.
 *
 * The epoll registration is level-triggered, as in the servers: EPOLLIN is
 * always on (an echo may start to arrive while a large message is still
 * leaving), EPOLLOUT only while a send found the socket full. */
#include "bench.h"

#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Enough lines to see what went wrong, not one per connection of -c 10000. */
enum { MAX_LOGGED_FAILURES = 5 };

/* Where message seq of connection c starts in the pattern: Fibonacci
 * hashing (Knuth, TAOCP vol. 3, 6.4), which multiplies by 2^64 / phi and
 * keeps the top bits. Consecutive messages then start about 0.38 of the
 * pattern apart, and other connections' messages at offsets of their own:
 * an echo that belongs elsewhere lands on other bytes. */
static const unsigned char *message_bytes(const struct bench_conn *c, uint64_t seq)
{
    uint64_t key = ((uint64_t)c->index << 32) + seq;
    return c->run->pattern + ((key * 0x9e3779b97f4a7c15u) >> (64 - PATTERN_BITS));
}

static void log_failure(struct bench_conn *c, const char *what, int err)
{
    struct bench_run *run = c->run;
    if (run->failures_logged < MAX_LOGGED_FAILURES)
        warn("connection %u: %s%s%s", c->index, what, err ? ": " : "", err ? strerror(err) : "");
    else if (run->failures_logged == MAX_LOGGED_FAILURES)
        warn("further connection failures not shown");
    run->failures_logged++;
}

static void conn_end(struct bench_conn *c)
{
    if (close(c->fd) < 0)
        warn_errno("close connection %u", c->index);
    c->fd = -1;
}

/* Refused, reset, closed early: counted in errors. */
static void conn_fail(struct bench_conn *c, const char *what, int err)
{
    log_failure(c, what, err);
    c->run->errors++;
    c->run->alive--;
    c->failed = true;
    conn_end(c);
}

/* A wrong echo: counted in mismatches. The stream cannot be trusted after
 * it, so the connection ends. */
static void conn_mismatch(struct bench_conn *c, const char *what)
{
    log_failure(c, what, 0);
    c->run->mismatches++;
    c->run->alive--;
    c->failed = true;
    conn_end(c);
}

void bench_conn_close(struct bench_conn *c)
{
    if (c->fd >= 0)
        conn_end(c);
}

static bool set_want_write(struct bench_conn *c, bool want_write)
{
    if (c->want_write == want_write)
        return true;
    struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->run->epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) < 0) {
        conn_fail(c, "epoll_ctl", errno);
        return false;
    }
    c->want_write = want_write;
    return true;
}

/* Closed loop: one message at a time. Open loop: every message whose time
 * has come, however many are already in flight. */
static bool has_message_to_send(const struct bench_conn *c)
{
    if (c->run->open_loop)
        return c->next_send < c->released;
    return c->next_send == c->next_recv;
}

static void conn_send(struct bench_conn *c)
{
    size_t size = c->run->size;
    while (has_message_to_send(c)) {
        const unsigned char *msg = message_bytes(c, c->next_send);
        ssize_t n = send(c->fd, msg + c->send_pos, size - c->send_pos, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                set_want_write(c, true); /* the rest when the socket drains */
                return;
            }
            conn_fail(c, "send", errno);
            return;
        }
        c->send_pos += (size_t)n;
        if (c->send_pos == size) {
            c->next_send++;
            c->send_pos = 0;
        }
    }
    set_want_write(c, false);
}

/* Open loop: the latency of a message counts from when the schedule said
 * it should leave, not from when it did. If the server stalls, the
 * messages queued behind the stall are each charged the time they waited,
 * which is what a user of the server would see. A closed loop cannot do
 * this: while one message is stuck, it sends nothing, so a stall shows up
 * as one slow sample instead of hundreds ("coordinated omission"). */
static int64_t intended_send_time(const struct bench_conn *c, uint64_t seq)
{
    const struct bench_run *run = c->run;
    if (!run->open_loop)
        return c->sent_at;
    uint64_t global = seq * (uint64_t)run->conns + c->index;
    return run->schedule_start + (int64_t)((double)global * run->interval_ns);
}

/* Into the run's histogram and the connection's own. */
static void record_latency(struct bench_conn *c, int64_t ns)
{
    size_t bucket = histogram_record(&c->run->latency, (uint64_t)ns);
    c->latency[bucket >> CONN_GROUP_BITS]++;
    c->measured++;
}

/* The middle of the connection's bucket that holds its median, in ns. */
int64_t bench_conn_median(const struct bench_conn *c)
{
    uint64_t seen = 0;
    for (size_t g = 0; g < CONN_BUCKETS && c->measured > 0; g++) {
        seen += c->latency[g];
        if (2 * seen >= c->measured) {
            uint64_t lowest = histogram_bucket_lowest(g << CONN_GROUP_BITS);
            uint64_t highest = histogram_bucket_highest(((g + 1) << CONN_GROUP_BITS) - 1);
            return (int64_t)(lowest + (highest - lowest) / 2);
        }
    }
    return 0;
}

static void message_echoed(struct bench_conn *c, int64_t now)
{
    struct bench_run *run = c->run;
    int64_t intended = intended_send_time(c, c->next_recv);
    if (intended >= run->measure_from && now <= run->measure_until && run->measured < run->measure_target) {
        record_latency(c, now - intended);
        c->served++;
        run->measured++;
        run->last_measured_at = now;
    }
    run->echoes++;
    c->echoes++;
    c->next_recv++;
    c->recv_pos = 0;
    if (!run->open_loop)
        c->sent_at = now; /* the next message leaves right away */
}

/* Checks a piece of the echo stream against the messages in flight;
 * returns false (and ends the connection) on a wrong byte. */
static bool check_echo(struct bench_conn *c, const unsigned char *data, size_t len, int64_t now)
{
    size_t size = c->run->size;
    while (len > 0) {
        size_t take = size - c->recv_pos;
        if (take > len)
            take = len;
        if (memcmp(data, message_bytes(c, c->next_recv) + c->recv_pos, take) != 0) {
            conn_mismatch(c, "echo differs from what was sent");
            return false;
        }
        c->recv_pos += take;
        data += take;
        len -= take;
        if (c->recv_pos == size)
            message_echoed(c, now);
    }
    return true;
}

static size_t bytes_in_flight(const struct bench_conn *c)
{
    return (size_t)(c->next_send - c->next_recv) * c->run->size + c->send_pos - c->recv_pos;
}

static void conn_receive(struct bench_conn *c)
{
    struct bench_run *run = c->run;
    /* Ask for no more than is owed, so a message's end is never mixed with
     * bytes nobody sent. With nothing owed, any byte is unexpected. */
    size_t owed = bytes_in_flight(c);
    size_t want = owed == 0 || owed > run->scratch_size ? run->scratch_size : owed;
    ssize_t n = recv(c->fd, run->scratch, want, 0);
    if (n < 0) {
        if (errno != EINTR && errno != EAGAIN)
            conn_fail(c, "recv", errno);
        return;
    }
    if (n == 0) {
        conn_fail(c, "closed by the server", 0);
        return;
    }
    if (owed == 0) {
        conn_mismatch(c, "bytes arrived that were never sent");
        return;
    }
    int64_t now = monotonic_ns();
    run->last_progress = now;
    if (check_echo(c, run->scratch, (size_t)n, now))
        conn_send(c);
}

static void conn_connected(struct bench_conn *c)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        conn_fail(c, "connect", err);
        return;
    }
    c->connecting = false;
    c->want_write = true; /* registered with EPOLLOUT to see the connect finish */
    if (!set_want_write(c, false))
        return;
    c->sent_at = monotonic_ns();
    conn_send(c);
}

void bench_conn_open(struct bench_conn *c, struct bench_run *run, uint32_t index, const struct addrinfo *ai)
{
    *c = (struct bench_conn){.run = run, .fd = -1, .index = index, .connecting = true};
    run->alive++;
    /* Non-blocking from the start: a server that never accepts must not
     * hold the client in connect(). */
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die_errno("socket");
    int on = 1;
    if (setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) < 0)
        die_errno("setsockopt TCP_NODELAY");
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
        conn_fail(c, "connect", errno);
        return;
    }
    /* Writable means the connect finished, one way or the other. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(run->epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die_errno("epoll_ctl");
}

void bench_conn_on_event(struct bench_conn *c, uint32_t events)
{
    if (c->fd < 0)
        return; /* ended earlier in this batch of events */
    if (c->connecting) {
        conn_connected(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        conn_receive(c);
    if (c->fd >= 0 && (events & EPOLLOUT))
        conn_send(c);
}

/* Left out, a message that never came back would make a server that stops
 * answering look fast (its silence would cost it no sample at all), so each
 * is charged the time it has waited: a lower bound of its latency. Open
 * loop: every message released to this connection; closed loop: the one it
 * sent. A failed connection is counted in errors instead. */
uint64_t bench_conn_charge_unanswered(struct bench_conn *c, int64_t end, uint64_t limit)
{
    struct bench_run *run = c->run;
    if (c->failed)
        return 0;
    uint64_t due = run->open_loop ? c->released : c->next_send + (c->send_pos > 0);
    uint64_t charged = 0;
    for (uint64_t seq = c->next_recv; seq < due && charged < limit; seq++) {
        int64_t intended = intended_send_time(c, seq);
        if (intended < run->measure_from || intended >= end)
            continue;
        record_latency(c, end - intended);
        charged++;
    }
    return charged;
}

void bench_conn_release(struct bench_conn *c)
{
    c->released++;
    if (c->fd >= 0 && !c->connecting && !c->want_write)
        conn_send(c);
}
