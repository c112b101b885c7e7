#include "echo.h"

#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum io_result { IO_MOVED, IO_WOULD_BLOCK, IO_EOF, IO_FAILED };

void echo_init(struct echo_conn *conn, int fd, const char *peer)
{
    *conn = (struct echo_conn){.fd = fd};
    snprintf(conn->peer, sizeof conn->peer, "%s", peer);
}

/* What the connection waits for, without doing any IO. */
static int echo_wants(const struct echo_conn *conn)
{
    if (conn->error != 0)
        return ECHO_CLOSE;
    size_t pending = conn->buf ? buffer_pending(conn->buf) : 0;
    if (conn->peer_closed && pending == 0)
        return ECHO_CLOSE;
    int want = 0;
    if (!conn->peer_closed && (!conn->buf || buffer_room(conn->buf) > 0))
        want |= ECHO_WANT_READ;
    if (pending > 0)
        want |= ECHO_WANT_WRITE;
    return want;
}

static enum io_result read_some(struct echo_conn *conn, struct buffer_pool *pool, struct server_stats *stats)
{
    if (!conn->buf) {
        conn->buf = buffer_get(pool);
        if (!conn->buf) {
            conn->error = ENOMEM;
            return IO_FAILED;
        }
    }
    struct buffer *buf = conn->buf;
    ssize_t n;
    do
        n = read(conn->fd, buf->data + buf->end, buffer_room(buf));
    while (n < 0 && errno == EINTR);

    if (n > 0) {
        buf->end += (size_t)n;
        stats_message_received(stats, conn->fd, (size_t)n);
        return IO_MOVED;
    }
    if (n == 0) {
        conn->peer_closed = true;
        return IO_EOF;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK)
        return IO_WOULD_BLOCK;
    conn->error = errno;
    return IO_FAILED;
}

static enum io_result write_some(struct echo_conn *conn, struct server_stats *stats)
{
    struct buffer *buf = conn->buf;
    ssize_t n;
    do
        n = write(conn->fd, buf->data + buf->start, buffer_pending(buf));
    while (n < 0 && errno == EINTR);

    if (n > 0) {
        /* A short write is normal: the rest stays pending for the next
         * writable event. */
        buffer_consume(buf, (size_t)n);
        stats_bytes_echoed(stats, (size_t)n);
        return IO_MOVED;
    }
    if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
        return IO_WOULD_BLOCK;
    conn->error = errno;
    return IO_FAILED;
}

/* An emptied buffer goes back to the pool at once; a full one whose bytes
 * start late is compacted so reading can resume. */
static void tidy_buffer(struct echo_conn *conn, struct buffer_pool *pool)
{
    if (!conn->buf)
        return;
    if (buffer_pending(conn->buf) == 0) {
        buffer_put(pool, conn->buf);
        conn->buf = NULL;
    } else if (buffer_room(conn->buf) == 0) {
        buffer_compact(conn->buf);
    }
}

int echo_pump(struct echo_conn *conn, struct buffer_pool *pool, struct server_stats *stats, bool until_eagain)
{
    bool moved;
    do {
        moved = false;
        if (echo_wants(conn) & ECHO_WANT_READ) {
            enum io_result r = read_some(conn, pool, stats);
            if (r == IO_FAILED)
                break;
            moved = r == IO_MOVED || r == IO_EOF;
        }
        if (echo_wants(conn) & ECHO_WANT_WRITE) {
            enum io_result w = write_some(conn, stats);
            if (w == IO_FAILED)
                break;
            moved = moved || w == IO_MOVED;
        }
        tidy_buffer(conn, pool);
    } while (until_eagain && moved);
    tidy_buffer(conn, pool);
    return echo_wants(conn);
}

void echo_close(struct echo_conn *conn, struct buffer_pool *pool)
{
    if (conn->error != 0)
        log_event("closing fd %d: %s", conn->fd, strerror(conn->error));
    else
        log_event("closing fd %d", conn->fd);
    if (close(conn->fd) < 0)
        warn_errno("close fd %d", conn->fd);
    if (conn->buf) {
        buffer_put(pool, conn->buf);
        conn->buf = NULL;
    }
    conn->fd = -1;
}
