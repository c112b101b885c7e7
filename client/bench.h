/* The load generator in two parts: bench.c keeps the clock, opens the
 * connections, releases the open-loop schedule and reports; bench_conn.c
 * drives one connection's messages and checks their echoes. */
#ifndef IOMODELS_BENCH_H
#define IOMODELS_BENCH_H

#include "clock.h"
#include "histogram.h"

#include <netdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Messages are windows into one pseudo-random pattern of this period. */
enum { PATTERN_BITS = 16, PATTERN_PERIOD = 1 << PATTERN_BITS };

/* Each connection's own latencies, coarsely: the run histogram's buckets
 * taken 512 at a time, which makes 4 per power of two of nanoseconds above
 * 4 us (a median good to about 10 %) and 512 ns wide below. Enough to name
 * the connection a server served worst, at 480 bytes a connection. */
enum {
    CONN_GROUP_BITS = HISTOGRAM_SIGNIFICANT_BITS - 3,
    CONN_BUCKETS = HISTOGRAM_BUCKETS >> CONN_GROUP_BITS,
};

struct bench_run {
    long conns;
    size_t size;
    bool open_loop;
    const unsigned char *pattern; /* PATTERN_PERIOD + size bytes */
    unsigned char *scratch;       /* where echoes land to be checked */
    size_t scratch_size;
    int epoll_fd;

    /* The open-loop schedule: message g (counted over all connections)
     * should leave at schedule_start + g * interval_ns and goes to
     * connection g % conns. */
    int64_t schedule_start;
    double interval_ns;

    /* Messages meant to leave before measure_from are warm-up; echoes that
     * complete after measure_until, or beyond measure_target, are not
     * counted (one still missing at the end is charged as unanswered). */
    int64_t measure_from, measure_until;
    uint64_t measure_target;
    struct histogram latency;
    uint64_t measured;
    int64_t last_measured_at;

    uint64_t unanswered;   /* measured messages with no echo at the end */
    uint64_t echoes;       /* all completed echoes, warm-up included */
    int64_t last_progress; /* last echo byte, or the start */
    unsigned long errors, mismatches;
    long alive;            /* connections that have not failed */
    unsigned failures_logged;
};

struct bench_conn {
    struct bench_run *run;
    int fd;
    uint32_t index;
    bool connecting;
    bool want_write; /* EPOLLOUT is on: a send found the socket full */
    bool failed;     /* closed by an error or a wrong echo */
    /* Messages are numbered per connection. Those in [next_recv, next_send]
     * are in flight: next_send has send_pos bytes out, next_recv has
     * recv_pos bytes back. */
    uint64_t next_send, next_recv;
    size_t send_pos, recv_pos;
    uint64_t released; /* open loop: messages whose time has come */
    int64_t sent_at;   /* closed loop: when message next_recv began to leave */
    uint64_t echoes;   /* completed, warm-up included: 0 means stalled */
    uint64_t served;   /* echoes counted in the measured window */
    uint64_t measured; /* latencies recorded for it, unanswered ones included */
    uint32_t latency[CONN_BUCKETS];
};

/* Starts a non-blocking connect and registers it with the run's epoll. */
void bench_conn_open(struct bench_conn *c, struct bench_run *run, uint32_t index, const struct addrinfo *ai);

/* What epoll reported for this connection. */
void bench_conn_on_event(struct bench_conn *c, uint32_t events);

/* Open loop: one more message of this connection is due now. */
void bench_conn_release(struct bench_conn *c);

/* At the end of the run: charges the latency histogram for each message
 * that was due in the measured window (before end) and never came back, at
 * most limit of them. Returns how many. */
uint64_t bench_conn_charge_unanswered(struct bench_conn *c, int64_t end, uint64_t limit);

/* The median of this connection's recorded latencies (ns), 0 if none. */
int64_t bench_conn_median(const struct bench_conn *c);

/* Ends the connection at the end of the run (not a failure). */
void bench_conn_close(struct bench_conn *c);

#endif
