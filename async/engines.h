/* The async server's two engines, one file each; server.c picks one.
 *
 *   uring.c      io_uring: the kernel accepts, receives and sends for us
 *                (mostly on our own thread, inside io_uring_enter), and
 *                reports each as a completion.
 *   posix_aio.c  POSIX AIO: aio_read / aio_write, each completion announced
 *                by a real-time signal that the loop takes with sigtimedwait.
 *
 * In both, the loop never calls read or write: it asks for the transfer and
 * is told, afterwards, that it is done. */
#ifndef IOMODELS_ENGINES_H
#define IOMODELS_ENGINES_H

#include "ring.h"
#include "stats.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

struct engine_setup {
    int listen_fd;
    long max_clients;
    long fd_limit; /* descriptors the process may open: sizes the tables indexed by fd */
    struct server_stats *stats;
};

/* Whether a wait asks for several completions at once (uring.c, "batched
 * waits"): never, while nearly every connection is busy, or always. */
enum wait_batching { BATCH_NEVER, BATCH_WHEN_BUSY, BATCH_ALWAYS };

struct uring_options {
    enum ring_task_run task_run;
    bool sqpoll;  /* a kernel thread polls the submission queue */
    bool oneshot; /* no multishot and no buffer ring, as kernels before 5.19 must */
    bool oneshot_recv;      /* the buffer ring, but one recv per message */
    bool registered_ring;   /* io_uring_enter names the ring by its registered index */
    enum wait_batching batching;
    unsigned wait_batch_us; /* the bound of a batched wait */
};

struct uring_server;

/* Sets up the ring. NULL with errno set (from io_uring_setup: ENOSYS,
 * EPERM...) when io_uring cannot be used here; nothing is logged. */
struct uring_server *uring_server_create(const struct engine_setup *setup, const struct uring_options *options);

/* One line for the log: which features this kernel gave us. */
void uring_server_describe(const struct uring_server *srv, char *out, size_t len);

/* Serves until a stop signal. wait_mask: the signal mask while waiting for
 * completions (block_stop_signals), so SIGINT or SIGTERM ends the wait. */
void uring_server_run(struct uring_server *srv, const sigset_t *wait_mask);

/* Closes every connection (logging each) and frees everything. */
void uring_server_destroy(struct uring_server *srv);

/* The admission policy both engines share: refuses (logs and closes) a
 * connection past --max-clients or whose descriptor lies beyond the
 * connection table, and says so by returning true. */
bool engine_refuses(int fd, const char *peer, long clients, long max_clients, long table_size);

/* Serves until a stop signal, then closes and frees everything. The caller
 * has blocked the stop signals (block_stop_signals). */
void posix_aio_server_run(const struct engine_setup *setup);

#endif
