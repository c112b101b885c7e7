#include "stats.h"

#include "log.h"

#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

struct server_stats *stats_create(void)
{
    struct server_stats *stats =
        mmap(NULL, sizeof *stats, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stats == MAP_FAILED)
        die_errno("mmap stats");
    atomic_init(&stats->connections, 0);
    atomic_init(&stats->messages, 0);
    atomic_init(&stats->bytes, 0);
    return stats;
}

void stats_connection_opened(struct server_stats *stats, int fd, const char *peer)
{
    atomic_fetch_add_explicit(&stats->connections, 1, memory_order_relaxed);
    log_event("accepted fd %d from %s", fd, peer);
}

void stats_message_received(struct server_stats *stats, int fd, size_t bytes)
{
    atomic_fetch_add_explicit(&stats->messages, 1, memory_order_relaxed);
    log_verbose("echoing %zu bytes to fd %d", bytes, fd);
}

void stats_bytes_echoed(struct server_stats *stats, size_t bytes)
{
    atomic_fetch_add_explicit(&stats->bytes, bytes, memory_order_relaxed);
}

void stats_print_summary(const struct server_stats *stats)
{
    log_summary("%lu connections, %lu messages, %lu bytes echoed", atomic_load(&stats->connections),
                atomic_load(&stats->messages), atomic_load(&stats->bytes));
}
