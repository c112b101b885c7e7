/* The completion-driven echo server on io_uring (ring.h, buffer_ring.h).
 *
 * Contrast it with multiplexing/: there the loop asks "which sockets are
 * ready?" and then reads and writes itself. Here the loop never reads or
 * writes: it asks the kernel to accept, to receive and to send, and learns
 * afterwards that it is done, the bytes already in (or out of) our memory.
 * The only phase that blocks is the wait for completions; the kernel both
 * waits for the data and copies it.
 *
 * Every request carries user_data, the socket and the kind of request: that
 * is how a completion finds its connection. The life of a connection:
 *
 *   accept (multishot: one request, one completion per new client)
 *   -> recv (multishot: one request, one completion per arrival, each into
 *      a buffer the kernel takes from the shared buffer ring)
 *   -> received buffers queue up -> one send at a time, short sends resumed
 *   -> a buffer goes back to the ring once its send has completed
 *   -> peer EOF: finish the queue, close. An error: cancel what is in
 *      flight, close once the kernel holds no request on the socket.
 *
 * Where the kernel refuses multishot (before 5.19 / 6.0) the same code
 * re-arms after every completion, and without a buffer ring each
 * connection receives into its own buffer from common/buffer.h. */
#include "buffer_ring.h"
#include "engines.h"
#include "ring.h"

#include "buffer.h"
#include "echo.h"
#include "log.h"
#include "net.h"
#include "signals.h"
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum {
    SQ_ENTRIES = 256,
    /* Several times the SQ: a multishot request completes many times, and a
     * burst of clients can complete more at once than was ever submitted. */
    CQ_ENTRIES = 4 * SQ_ENTRIES,
    SQPOLL_IDLE_MS = 1000,

    /* The buffer ring: the kernel picks any buffer it offers when data
     * arrives. It offers RING_WINDOW at a time, from a pool of up to
     * MAX_RING_BUFFERS (see buffer_ring.h). */
    BUFFER_GROUP = 0,
    RING_WINDOW = 512,
    RING_BUFFER_SIZE = 4096,
    MAX_RING_BUFFERS = 32768,
    /* A connection stops receiving once this many buffers wait for their
     * echo: the same 64 KiB bound as the other servers' connection buffer
     * (exact with the multishot byte limit, see submit_recv). */
    QUEUE_LIMIT = CONN_BUFFER_SIZE / RING_BUFFER_SIZE,
};

/* --- what a request is: user_data ---------------------------------------- */

enum request_kind { REQ_ACCEPT, REQ_ACCEPT_PAUSE, REQ_RECV, REQ_SEND, REQ_CANCEL };
enum { KIND_BITS = 8 };

static uint64_t request_id(int fd, enum request_kind kind)
{
    return (uint64_t)(uint32_t)fd << KIND_BITS | kind;
}

static int request_fd(uint64_t id)
{
    return (int)(uint32_t)(id >> KIND_BITS);
}

static enum request_kind request_kind(uint64_t id)
{
    return (enum request_kind)(id & ((1u << KIND_BITS) - 1));
}

/* --- the server's state -------------------------------------------------- */

struct connection {
    struct echo_conn echo; /* fd, peer, EOF, error; echo.buf only without a buffer ring */
    unsigned in_flight;    /* requests the kernel holds on this socket, cancels included */
    bool receiving;        /* a recv is armed */
    bool recv_multishot;   /* ... and was submitted as multishot */
    bool recv_limited;     /* ... with a byte limit */
    bool sending;          /* the one send in flight */
    bool receive_paused;   /* backpressure: QUEUE_LIMIT buffers await their echo */
    bool closing;          /* finished: close once in_flight is 0 */
    bool waiting_for_buffers;
    struct connection *prev_waiting, *next_waiting;
    /* Received, not yet echoed: buffer ids, oldest first. */
    int queue_head, queue_tail;
    unsigned queued;
    size_t head_sent; /* bytes of the oldest buffer already sent */
};

/* Per ring buffer while a connection holds it. */
struct queued_buffer {
    int next; /* the connection's next buffer id, or -1 */
    unsigned length;
};

struct uring_server {
    struct ring ring;
    bool have_buffer_ring;
    struct buffer_ring buffers;
    struct queued_buffer *queue_links; /* indexed by buffer id */
    struct buffer_pool pool;           /* without a buffer ring */
    struct server_stats *stats;

    int listen_fd;
    struct connection **by_fd;
    long capacity;
    long clients, max_clients;

    bool multishot_accept, multishot_recv; /* false once the kernel refused them */
    bool recv_limit;                       /* multishot recv takes a byte limit (6.17) */
    bool accepting;          /* an accept request is armed */
    bool accept_paused;      /* out of descriptors: wait before accepting again */
    bool pause_armed;        /* the pause's timeout request is in flight */
    bool out_of_descriptors; /* this episode is logged already */
    struct __kernel_timespec accept_pause;

    /* Connections whose recv ended with ENOBUFS, oldest first. */
    struct connection *waiting_first, *waiting_last;
    bool cq_overflowing;
    unsigned dropped_reported;
};

/* --- submitting requests ------------------------------------------------- */

static void submit_accept(struct uring_server *srv)
{
    struct io_uring_sqe *sqe = ring_get_sqe(&srv->ring);
    sqe->opcode = IORING_OP_ACCEPT;
    sqe->fd = srv->listen_fd;
    sqe->accept_flags = SOCK_CLOEXEC;
    if (srv->multishot_accept)
        sqe->ioprio = IORING_ACCEPT_MULTISHOT;
    sqe->user_data = request_id(srv->listen_fd, REQ_ACCEPT);
    srv->accepting = true;
}

/* A timeout request is the ring's own timer: no timerfd, no extra wait. */
static void submit_accept_pause(struct uring_server *srv)
{
    struct io_uring_sqe *sqe = ring_get_sqe(&srv->ring);
    sqe->opcode = IORING_OP_TIMEOUT;
    sqe->fd = -1;
    sqe->addr = (uintptr_t)&srv->accept_pause;
    sqe->len = 1;
    sqe->user_data = request_id(srv->listen_fd, REQ_ACCEPT_PAUSE);
    srv->pause_armed = true;
}

static void submit_recv(struct uring_server *srv, struct connection *conn)
{
    struct io_uring_sqe *sqe = ring_get_sqe(&srv->ring);
    sqe->opcode = IORING_OP_RECV;
    sqe->fd = conn->echo.fd;
    sqe->user_data = request_id(conn->echo.fd, REQ_RECV);
    if (srv->have_buffer_ring) {
        /* No buffer yet: the kernel takes one from the ring when data comes. */
        sqe->flags = IOSQE_BUFFER_SELECT;
        sqe->buf_group = srv->buffers.group;
        if (srv->multishot_recv)
            sqe->ioprio = IORING_RECV_MULTISHOT;
        /* Without a limit, a multishot recv takes all the socket holds
         * until our cancel lands (up to 95 buffers each for 100 clients
         * that never read, and the pool ran dry). Since 6.17 it ends by
         * itself after this many bytes (newer headers name the field
         * optlen); conn_next_step re-arms it when there is room again. */
        if (srv->multishot_recv && srv->recv_limit)
            sqe->file_index = (QUEUE_LIMIT - conn->queued) * RING_BUFFER_SIZE;
    } else {
        struct buffer *buf = conn->echo.buf;
        sqe->addr = (uintptr_t)(buf->data + buf->end);
        sqe->len = (uint32_t)buffer_room(buf);
    }
    conn->receiving = true;
    conn->recv_multishot = srv->have_buffer_ring && srv->multishot_recv;
    conn->recv_limited = conn->recv_multishot && srv->recv_limit;
    conn->in_flight++;
}

/* One send at a time per socket: two in flight could reach the socket in
 * either order and scramble the stream. */
static void submit_send(struct uring_server *srv, struct connection *conn)
{
    const unsigned char *data;
    size_t len;
    if (srv->have_buffer_ring) {
        int id = conn->queue_head;
        data = buffer_ring_data(&srv->buffers, (uint16_t)id) + conn->head_sent;
        len = srv->queue_links[id].length - conn->head_sent;
    } else {
        data = conn->echo.buf->data + conn->echo.buf->start;
        len = buffer_pending(conn->echo.buf);
    }
    struct io_uring_sqe *sqe = ring_get_sqe(&srv->ring);
    sqe->opcode = IORING_OP_SEND;
    sqe->fd = conn->echo.fd;
    sqe->addr = (uintptr_t)data;
    sqe->len = (uint32_t)len;
    sqe->msg_flags = MSG_NOSIGNAL;
    sqe->user_data = request_id(conn->echo.fd, REQ_SEND);
    conn->sending = true;
    conn->in_flight++;
}

/* Cancels the request named by (fd, kind). The cancel completes too, and
 * counts as in flight, so the socket stays open until it has. */
static void submit_cancel(struct uring_server *srv, int fd, enum request_kind kind)
{
    struct io_uring_sqe *sqe = ring_get_sqe(&srv->ring);
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->addr = request_id(fd, kind);
    sqe->user_data = request_id(fd, REQ_CANCEL);
}

/* --- a connection's queue of received buffers ---------------------------- */

static void queue_buffer(struct uring_server *srv, struct connection *conn, uint16_t id, unsigned length)
{
    srv->queue_links[id] = (struct queued_buffer){.next = -1, .length = length};
    if (conn->queue_tail >= 0)
        srv->queue_links[conn->queue_tail].next = id;
    else
        conn->queue_head = id;
    conn->queue_tail = id;
    conn->queued++;
}

/* The oldest buffer's echo is complete: it goes back to the ring. */
static void release_oldest_buffer(struct uring_server *srv, struct connection *conn)
{
    int id = conn->queue_head;
    conn->queue_head = srv->queue_links[id].next;
    if (conn->queue_head < 0)
        conn->queue_tail = -1;
    conn->queued--;
    conn->head_sent = 0;
    buffer_ring_give_back(&srv->buffers, (uint16_t)id);
}

/* --- connections waiting for ring buffers (ENOBUFS) ----------------------- */

/* The ring ran dry: every buffer holds bytes waiting for their echo. The
 * connection waits here instead of re-arming at once, which would only
 * fail again in a storm of requests; it is re-armed when a buffer is back. */
static void wait_for_buffers(struct uring_server *srv, struct connection *conn)
{
    conn->waiting_for_buffers = true;
    conn->next_waiting = NULL;
    conn->prev_waiting = srv->waiting_last;
    if (srv->waiting_last)
        srv->waiting_last->next_waiting = conn;
    else
        srv->waiting_first = conn;
    srv->waiting_last = conn;
}

static void stop_waiting_for_buffers(struct uring_server *srv, struct connection *conn)
{
    if (!conn->waiting_for_buffers)
        return;
    conn->waiting_for_buffers = false;
    if (conn->prev_waiting)
        conn->prev_waiting->next_waiting = conn->next_waiting;
    else
        srv->waiting_first = conn->next_waiting;
    if (conn->next_waiting)
        conn->next_waiting->prev_waiting = conn->prev_waiting;
    else
        srv->waiting_last = conn->prev_waiting;
}

/* --- a connection's next step -------------------------------------------- */

static bool has_pending_echo(const struct uring_server *srv, const struct connection *conn)
{
    if (srv->have_buffer_ring)
        return conn->queued > 0;
    return conn->echo.buf && buffer_pending(conn->echo.buf) > 0;
}

static bool wants_to_receive(const struct uring_server *srv, const struct connection *conn)
{
    if (conn->echo.peer_closed || conn->waiting_for_buffers || conn->receive_paused)
        return false;
    if (srv->have_buffer_ring)
        return conn->queued < QUEUE_LIMIT;
    /* Into its own buffer: receive, echo all of it, receive again. */
    return !has_pending_echo(srv, conn);
}

static bool is_finished(const struct uring_server *srv, const struct connection *conn)
{
    return conn->echo.error != 0 || (conn->echo.peer_closed && !has_pending_echo(srv, conn));
}

/* The kernel may still write into our buffers or use the descriptor while
 * it holds a request: cancel them, and close only when all have completed
 * (a closed descriptor's number could be reused by the next accept). */
static void begin_close(struct uring_server *srv, struct connection *conn)
{
    conn->closing = true;
    stop_waiting_for_buffers(srv, conn);
    if (conn->receiving) {
        submit_cancel(srv, conn->echo.fd, REQ_RECV);
        conn->in_flight++;
    }
    if (conn->sending) {
        submit_cancel(srv, conn->echo.fd, REQ_SEND);
        conn->in_flight++;
    }
}

static void finish_close(struct uring_server *srv, struct connection *conn)
{
    int fd = conn->echo.fd;
    while (conn->queued > 0)
        release_oldest_buffer(srv, conn);
    echo_close(&conn->echo, &srv->pool);
    srv->by_fd[fd] = NULL;
    srv->clients--;
    free(conn);
}

/* Called after every completion on the connection: submits what it needs
 * next. Nothing here waits; it only queues requests for the next submit. */
static void conn_next_step(struct uring_server *srv, struct connection *conn)
{
    if (!conn->closing && is_finished(srv, conn))
        begin_close(srv, conn);
    if (conn->closing) {
        if (conn->in_flight == 0)
            finish_close(srv, conn);
        return;
    }
    if (!conn->sending && has_pending_echo(srv, conn))
        submit_send(srv, conn);
    if (conn->receiving || !wants_to_receive(srv, conn))
        return;
    if (!srv->have_buffer_ring && !conn->echo.buf) {
        /* The kernel needs the address now, so this connection holds its
         * buffer while it waits: the price of having no buffer ring. */
        conn->echo.buf = buffer_get(&srv->pool);
        if (!conn->echo.buf) {
            conn->echo.error = ENOMEM;
            conn_next_step(srv, conn);
            return;
        }
    }
    submit_recv(srv, conn);
}

/* --- completions on a connection ----------------------------------------- */

static void pause_receiving(struct uring_server *srv, struct connection *conn)
{
    conn->receive_paused = true;
    if (conn->receiving && conn->recv_multishot) {
        submit_cancel(srv, conn->echo.fd, REQ_RECV);
        conn->in_flight++;
    }
}

static void on_recv_error(struct uring_server *srv, struct connection *conn, int err)
{
    if (err == ENOBUFS) {
        if (!conn->closing)
            wait_for_buffers(srv, conn);
    } else if (err == EINVAL && conn->recv_limited && srv->recv_limit) {
        srv->recv_limit = false;
        log_event("this kernel has no byte limit for multishot recv: a connection that stops reading may "
                  "hold more than %d KiB until its cancel lands",
                  CONN_BUFFER_SIZE / 1024);
    } else if (err == EINVAL && conn->recv_multishot && srv->multishot_recv) {
        srv->multishot_recv = false;
        log_event("this kernel refuses multishot recv: one recv per message from now on");
    } else if (err != ECANCELED) {
        conn->echo.error = err;
    }
}

static void on_recv(struct uring_server *srv, struct connection *conn, const struct io_uring_cqe *cqe)
{
    /* Without IORING_CQE_F_MORE the request is over (EOF, error, cancel,
     * or the kernel stopped it): conn_next_step re-arms it if needed. */
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        conn->receiving = false;
        conn->in_flight--;
    }
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        uint16_t id = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        buffer_ring_taken(&srv->buffers, id);
        if (cqe->res > 0)
            queue_buffer(srv, conn, id, (unsigned)cqe->res);
        else
            buffer_ring_give_back(&srv->buffers, id);
    }
    if (cqe->res > 0) {
        if (!srv->have_buffer_ring)
            conn->echo.buf->end += (size_t)cqe->res;
        stats_message_received(srv->stats, conn->echo.fd, (size_t)cqe->res);
        if (srv->have_buffer_ring && conn->queued >= QUEUE_LIMIT && !conn->receive_paused)
            pause_receiving(srv, conn);
    } else if (cqe->res == 0) {
        conn->echo.peer_closed = true;
    } else {
        on_recv_error(srv, conn, -cqe->res);
    }
}

static void on_send(struct uring_server *srv, struct connection *conn, const struct io_uring_cqe *cqe)
{
    conn->sending = false;
    conn->in_flight--;
    if (cqe->res < 0) {
        if (cqe->res != -ECANCELED)
            conn->echo.error = -cqe->res;
        return;
    }
    /* A short send leaves the rest in place: conn_next_step sends it. */
    size_t sent = (size_t)cqe->res;
    stats_bytes_echoed(srv->stats, sent);
    if (!srv->have_buffer_ring) {
        buffer_consume(conn->echo.buf, sent);
        return;
    }
    conn->head_sent += sent;
    if (conn->head_sent == srv->queue_links[conn->queue_head].length)
        release_oldest_buffer(srv, conn);
    /* Resume only once the echo has caught up, not at every buffer freed. */
    if (conn->receive_paused && conn->queued == 0)
        conn->receive_paused = false;
}

/* --- the listener -------------------------------------------------------- */

static void describe_peer(int fd, char peer[ADDR_STRLEN])
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        snprintf(peer, ADDR_STRLEN, "(gone: %s)", strerror(errno));
    else
        format_sockaddr((struct sockaddr *)&ss, peer, ADDR_STRLEN);
}

static void admit(struct uring_server *srv, int fd)
{
    char peer[ADDR_STRLEN];
    describe_peer(fd, peer);
    if (engine_refuses(fd, peer, srv->clients, srv->max_clients, srv->capacity))
        return;
    struct connection *conn = calloc(1, sizeof *conn);
    if (!conn) {
        refuse_connection(fd, peer, "out of memory");
        return;
    }
    echo_init(&conn->echo, fd, peer);
    conn->queue_head = conn->queue_tail = -1;
    (void)set_nodelay(fd); /* a peer that already left may refuse; its recv will say so */
    srv->by_fd[fd] = conn;
    srv->clients++;
    stats_connection_opened(srv->stats, fd, peer);
    conn_next_step(srv, conn);
}

/* Whatever happened, keep exactly one accept request armed, or the pause's
 * timer while descriptors are exhausted. */
static void keep_accepting(struct uring_server *srv)
{
    if (srv->accepting || srv->pause_armed || stop_requested())
        return;
    if (srv->accept_paused)
        submit_accept_pause(srv);
    else
        submit_accept(srv);
}

/* Out of descriptors, accepting again at once would fail again at once:
 * wait ACCEPT_PAUSE_MS (one log line per episode), then try again. */
static void pause_accepting(struct uring_server *srv, int err)
{
    if (!srv->out_of_descriptors)
        warn_accept_paused(err);
    srv->out_of_descriptors = true;
    if (srv->accepting && !srv->accept_paused) /* a multishot accept still armed */
        submit_cancel(srv, srv->listen_fd, REQ_ACCEPT);
    srv->accept_paused = true;
}

static void on_accept(struct uring_server *srv, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        srv->accepting = false;
    if (cqe->res >= 0) {
        srv->out_of_descriptors = false;
        admit(srv, cqe->res);
        return;
    }
    int err = -cqe->res;
    if (err == EINVAL && srv->multishot_accept) {
        srv->multishot_accept = false;
        log_event("this kernel refuses multishot accept: one accept per connection from now on");
    } else if (accept_error_is_exhaustion(err)) {
        pause_accepting(srv, err);
    } else if (err != ECANCELED && !accept_error_is_transient(err)) {
        die("accept: %s", strerror(err));
    }
}

static void on_accept_pause_over(struct uring_server *srv)
{
    srv->pause_armed = false;
    srv->accept_paused = false;
}

/* --- the loop ------------------------------------------------------------ */

static void handle_completion(struct uring_server *srv, const struct io_uring_cqe *cqe)
{
    enum request_kind kind = request_kind(cqe->user_data);
    int fd = request_fd(cqe->user_data);
    if (fd == srv->listen_fd) {
        if (kind == REQ_ACCEPT)
            on_accept(srv, cqe);
        else if (kind == REQ_ACCEPT_PAUSE)
            on_accept_pause_over(srv);
        /* (the completion of a cancelled accept needs nothing more) */
        keep_accepting(srv);
        return;
    }
    struct connection *conn = fd >= 0 && fd < srv->capacity ? srv->by_fd[fd] : NULL;
    if (!conn) {
        warn("completion for fd %d, which has no connection", fd);
        return;
    }
    if (kind == REQ_RECV)
        on_recv(srv, conn, cqe);
    else if (kind == REQ_SEND)
        on_send(srv, conn, cqe);
    else
        conn->in_flight--; /* a cancel's own completion */
    conn_next_step(srv, conn);
}

/* Buffers given back during the batch go back into the ring, all at once;
 * then as many waiting connections re-arm as the ring offers buffers. */
static void return_buffers_and_resume(struct uring_server *srv)
{
    unsigned available = buffer_ring_refill(&srv->buffers);
    while (srv->waiting_first && available > 0) {
        struct connection *conn = srv->waiting_first;
        stop_waiting_for_buffers(srv, conn);
        conn_next_step(srv, conn);
        available--;
    }
}

/* The kernel keeps completions that did not fit (IORING_FEAT_NODROP) and
 * posts them when we next ask for events: none is lost, but the log says
 * it happened. A kernel without NODROP counts what it had to drop. */
static void watch_completion_queue(struct uring_server *srv)
{
    bool overflowing = ring_cq_overflowed(&srv->ring);
    if (overflowing && !srv->cq_overflowing)
        log_event("completion queue overflowed: the kernel holds the rest until there is room");
    srv->cq_overflowing = overflowing;
    unsigned dropped = ring_cq_dropped(&srv->ring);
    if (dropped != srv->dropped_reported) {
        warn("io_uring dropped %u completions", dropped - srv->dropped_reported);
        srv->dropped_reported = dropped;
    }
}

void uring_server_run(struct uring_server *srv, const sigset_t *wait_mask)
{
    keep_accepting(srv);
    while (!stop_requested()) {
        /* The one system call per turn: submit what the last batch queued
         * and wait for at least one completion. A stop signal ends the
         * wait with -EINTR. -EBUSY: reap first, the next turn retries. */
        int rc = ring_submit_and_wait(&srv->ring, 1, wait_mask);
        if (rc == -EBADR)
            warn("io_uring_enter: completions were lost (%s)", strerror(EBADR));
        else if (rc < 0 && rc != -EINTR && rc != -EBUSY)
            die("io_uring_enter: %s", strerror(-rc));
        watch_completion_queue(srv);

        struct io_uring_cqe cqe;
        for (unsigned n = 0; n < srv->ring.cq_entries && ring_next_completion(&srv->ring, &cqe); n++)
            handle_completion(srv, &cqe);
        if (srv->have_buffer_ring)
            return_buffers_and_resume(srv);
    }
}

/* --- setting up and tearing down ----------------------------------------- */

struct uring_server *uring_server_create(const struct engine_setup *setup, const struct uring_options *options)
{
    struct uring_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        die("out of memory");
    struct ring_config config = {
        .task_run = options->task_run,
        .sq_entries = SQ_ENTRIES,
        .cq_entries = CQ_ENTRIES,
        .sqpoll = options->sqpoll,
        .sqpoll_idle_ms = SQPOLL_IDLE_MS,
    };
    int rc = ring_open(&srv->ring, &config);
    if (rc < 0) {
        free(srv);
        errno = -rc;
        return NULL;
    }
    /* Before 5.11 an SQPOLL ring could only use registered files. */
    if (options->sqpoll && !(srv->ring.features & IORING_FEAT_SQPOLL_NONFIXED)) {
        ring_close(&srv->ring);
        free(srv);
        errno = EOPNOTSUPP;
        return NULL;
    }

    srv->stats = setup->stats;
    srv->listen_fd = setup->listen_fd;
    srv->max_clients = setup->max_clients;
    srv->capacity = setup->fd_limit;
    srv->by_fd = calloc((size_t)srv->capacity, sizeof *srv->by_fd);
    if (!srv->by_fd)
        die("out of memory for %ld connections", srv->capacity);
    buffer_pool_init(&srv->pool, POOLED_BUFFERS);
    srv->accept_pause = (struct __kernel_timespec){.tv_nsec = ACCEPT_PAUSE_MS * 1000000L};

    srv->multishot_accept = srv->multishot_recv = srv->recv_limit = !options->oneshot;
    if (!options->oneshot) {
        /* Enough for every connection to hold its 64 KiB and a partly
         * filled buffer more, up to a cap. */
        long pool = srv->max_clients * (QUEUE_LIMIT + 1);
        unsigned count = pool > MAX_RING_BUFFERS ? MAX_RING_BUFFERS : pool < RING_WINDOW ? RING_WINDOW : (unsigned)pool;
        rc = buffer_ring_create(&srv->buffers, &srv->ring, BUFFER_GROUP, RING_WINDOW, count, RING_BUFFER_SIZE);
        if (rc == 0) {
            srv->have_buffer_ring = true;
            srv->queue_links = calloc(count, sizeof *srv->queue_links);
            if (!srv->queue_links)
                die("out of memory");
        } else if (rc != -EINVAL) {
            warn("buffer ring: %s: each connection receives into its own buffer", strerror(-rc));
        }
    }
    return srv;
}

void uring_server_describe(const struct uring_server *srv, char *out, size_t len)
{
    char receive[96];
    if (srv->have_buffer_ring)
        snprintf(receive, sizeof receive, "%s recv into %d-byte buffers from a ring (%d at a time, %u in all)",
                 srv->multishot_recv ? "multishot" : "one-shot", RING_BUFFER_SIZE, RING_WINDOW, srv->buffers.count);
    else
        snprintf(receive, sizeof receive, "one-shot recv into each connection's %d-byte buffer", CONN_BUFFER_SIZE);
    snprintf(out, len, "%s accept, %s, %s%s", srv->multishot_accept ? "multishot" : "one-shot", receive,
             srv->ring.task_run, srv->ring.setup_flags & IORING_SETUP_SQPOLL ? ", submission queue polled" : "");
}

void uring_server_destroy(struct uring_server *srv)
{
    /* Unregister the buffers, then close the ring, which cancels whatever
     * it still holds: after that the kernel touches none of our memory. */
    if (srv->have_buffer_ring)
        buffer_ring_destroy(&srv->buffers, &srv->ring);
    ring_close(&srv->ring);
    for (long fd = 0; fd < srv->capacity; fd++) {
        struct connection *conn = srv->by_fd[fd];
        if (conn) {
            echo_close(&conn->echo, &srv->pool);
            free(conn);
        }
    }
    buffer_pool_destroy(&srv->pool);
    free(srv->queue_links);
    free(srv->by_fd);
    free(srv);
}
