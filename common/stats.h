/* The server's counters and the connection lines of the event log.
 *
 * The counters live in a MAP_SHARED page and are updated atomically, so the
 * same code counts for one thread, for many threads, and for forked children,
 * whose work the parent reports in its summary. */
#ifndef IOMODELS_STATS_H
#define IOMODELS_STATS_H

#include <stdatomic.h>
#include <stddef.h>

struct server_stats {
    atomic_ulong connections;
    atomic_ulong messages; /* reads that returned data */
    atomic_ulong bytes;    /* bytes echoed back */
};

/* Dies if the page cannot be mapped. */
struct server_stats *stats_create(void);

/* Counts the connection and logs "accepted fd 5 from 127.0.0.1:50312". */
void stats_connection_opened(struct server_stats *stats, int fd, const char *peer);

/* Counts one message and, with -v, logs "echoing 5 bytes to fd 5". */
void stats_message_received(struct server_stats *stats, int fd, size_t bytes);

void stats_bytes_echoed(struct server_stats *stats, size_t bytes);

/* "summary: 3 connections, 12 messages, 768 bytes echoed" on stderr, always
 * (also with -q), and how many log lines were dropped if any (log_summary). */
void stats_print_summary(const struct server_stats *stats);

#endif
