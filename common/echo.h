/* The echo state machine that every non-blocking server drives: the
 * nonblocking sweep, the three multiplexing waits, and (for its bookkeeping)
 * the async server. What differs between those models is only *when* they
 * call echo_pump(): after a sweep, after a readiness event, or never (the
 * async engines are told what completed instead).
 *
 *   reading  --peer EOF-->  draining  --nothing pending-->  closed
 *      ^  |
 *      |  +-- buffer full: stop reading until the echo drains (backpressure)
 *      +----- buffer has room again
 *
 * Each call returns what the connection waits for next, as in Bendersky's
 * {want_read, want_write}: the caller turns it into FD_SET, POLLIN/POLLOUT
 * or EPOLL_CTL_MOD. A connection wants to write only while it has pending
 * bytes, so a loop never spins on an always-writable socket. */
#ifndef IOMODELS_ECHO_H
#define IOMODELS_ECHO_H

#include "buffer.h"
#include "net.h"
#include "stats.h"

#include <stdbool.h>

enum echo_want {
    ECHO_WANT_READ = 1,
    ECHO_WANT_WRITE = 2,
    ECHO_CLOSE = 4, /* finished or failed: call echo_close() */
};

struct echo_conn {
    int fd;
    struct buffer *buf; /* NULL while nothing is pending: idle costs no buffer */
    bool peer_closed;   /* read returned 0: finish the echo, then close */
    int error;          /* errno that ended the connection, 0 if none */
    char peer[ADDR_STRLEN];
};

void echo_init(struct echo_conn *conn, int fd, const char *peer);

/* Moves bytes between the socket and the buffer, never blocking (the socket
 * is O_NONBLOCK). until_eagain = false: at most one read and one write, the
 * level-triggered contract (the wait will say again if more is there).
 * until_eagain = true: repeat until neither direction can move a byte, the
 * edge-triggered contract (the kernel will not say it twice). Returns the
 * echo_want bits for the next wait. */
int echo_pump(struct echo_conn *conn, struct buffer_pool *pool, struct server_stats *stats, bool until_eagain);

/* Logs "closing fd N" (with the reason, if it failed), closes the socket and
 * returns its buffer to the pool. */
void echo_close(struct echo_conn *conn, struct buffer_pool *pool);

#endif
