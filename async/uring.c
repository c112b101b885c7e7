/* The completion-driven echo server on io_uring (ring.h, buffer_ring.h).
 * Start with its loop, uring_server_run(), at the end of this file: one
 * screen that submits, waits, and hands each completion on.
 *
 * Contrast it with multiplexing/: there the loop asks "which sockets are
 * ready?" and then reads and writes itself. Here the loop never calls read
 * or write: it asks the kernel to accept, to receive and to send, and learns
 * afterwards that it is done, the bytes already in (or out of) our memory.
 * The thread blocks only in the wait for completions. Who copies the data,
 * and on whose CPU time, is in docs/async.md: mostly this very thread,
 * inside that wait.
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
#include "clock.h"
#include "echo.h"
#include "list.h"
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
    /* Batched waits (see completions_to_wait_for): --wait-batch auto waits
     * at most BATCH_AUTO_US, while at least BUSY_LEAST connections, and
     * BUSY_PERCENT of all, sent a message within the last window. */
    BATCH_AUTO_US = 50,
    BUSY_LEAST = 16,
    BUSY_PERCENT = 75,

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
    /* Out of descriptors with none of ours to close: retry after
     * ACCEPT_PAUSE_MS (net.h), then twice as long each time, up to this. */
    ACCEPT_RETRY_MAX_MS = 6400,
    /* An exhaustion episode (one log line) ends after this long accepting
     * without running out. */
    EPISODE_GAP_MS = 1000
};

static const int64_t BUSY_WINDOW_NS = 1000000;

#ifndef IORING_FEAT_MIN_TIMEOUT
#define IORING_FEAT_MIN_TIMEOUT (1U << 15) /* Linux 6.12; older headers lack it */
#endif

/* --- what a request is: user_data ---------------------------------------- */

enum request_kind { REQ_ACCEPT, REQ_ACCEPT_RETRY, REQ_RECV, REQ_SEND, REQ_CANCEL };
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

/* How a recv is submitted, best first. The server starts at the best its
 * setup allows and steps down when the kernel answers EINVAL. */
enum recv_mode {
    RECV_ONESHOT,           /* one request per message */
    RECV_MULTISHOT,         /* one request, many completions (5.19/6.0) */
    RECV_MULTISHOT_LIMITED, /* ... ending by itself after a byte limit (6.17) */
};

/* Where a connection's receiving stands; the transitions are all in
 * "the receive state" below. */
enum recv_state {
    RECV_IDLE,      /* no recv in flight: one is armed when there is room */
    RECV_ARMED,     /* a recv is in flight */
    RECV_STOPPING,  /* the echo fell 64 KiB behind: the multishot recv is being cancelled */
    RECV_FULL,      /* the echo fell behind, no recv in flight: waits for it to catch up */
    RECV_NO_BUFFER, /* the ring was empty (ENOBUFS): on the ring's waiting list */
    RECV_OVER,      /* EOF, error or closing: never again */
};

struct connection {
    struct echo_conn echo;  /* fd, peer, EOF, error; echo.buf only without a buffer ring */
    enum recv_state recv;
    enum recv_mode armed_as; /* the mode of the recv in flight */
    bool sending;            /* the one send in flight */
    bool closing;            /* finished: close once in_flight is 0 */
    unsigned in_flight;      /* requests the kernel holds on this socket, cancels included */
    struct buffer_queue queue; /* received, not yet echoed (with a buffer ring) */
    struct list_node waiting;  /* on the ring's waiting list in RECV_NO_BUFFER */
    uint32_t busy_window;      /* the last window in which a message came */
};

/* Accepting, or why not. */
enum accept_state {
    ACCEPTING,
    PAUSED_UNTIL_CLOSE, /* out of descriptors: until one of our connections closes */
    PAUSED_UNTIL_TIMER, /* out of descriptors, none of ours to close: until the retry timer */
};

struct uring_server {
    struct ring ring;
    bool have_buffer_ring;
    struct buffer_ring buffers;
    struct buffer_pool pool; /* without a buffer ring */
    struct server_stats *stats;

    int listen_fd;
    struct connection **by_fd;
    long capacity;
    long clients, max_clients;

    bool multishot_accept;     /* false once the kernel refused it */
    enum recv_mode recv_mode;  /* the best this kernel accepted so far */
    enum accept_state accept;
    bool accept_in_flight;     /* an accept request is armed */
    bool retry_in_flight;      /* the retry timer's request is armed */
    bool out_of_descriptors;   /* this episode is logged already */
    int64_t exhausted_ms;      /* when the server last was out of descriptors */
    unsigned retry_ms;           /* the retry timer's period */
    struct __kernel_timespec retry_after; /* the timer's request points here */

    bool cq_overflowing;
    unsigned dropped_reported;
    enum wait_batching batching; /* BATCH_NEVER also where the kernel cannot */
    unsigned batch_us;           /* a batched wait's bound */
    unsigned sends_this_turn;    /* most complete inside the call that submits them */
    uint32_t window;             /* counts the BUSY_WINDOW_NS windows */
    int64_t window_ends_ns;
    unsigned busy_now, busy_before; /* connections with a message in this window, the last */
    unsigned long waits, batched_waits; /* for the closing log line */
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
    srv->accept_in_flight = true;
}

/* A timeout request is the ring's own timer: no timerfd, no extra wait. */
static void submit_accept_retry(struct uring_server *srv)
{
    srv->retry_after = (struct __kernel_timespec){.tv_sec = srv->retry_ms / 1000,
                                                  .tv_nsec = (long)(srv->retry_ms % 1000) * 1000000L};
    struct io_uring_sqe *sqe = ring_get_sqe(&srv->ring);
    sqe->opcode = IORING_OP_TIMEOUT;
    sqe->fd = -1;
    sqe->addr = (uintptr_t)&srv->retry_after;
    sqe->len = 1;
    sqe->user_data = request_id(srv->listen_fd, REQ_ACCEPT_RETRY);
    srv->retry_in_flight = true;
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
        if (srv->recv_mode >= RECV_MULTISHOT)
            sqe->ioprio = IORING_RECV_MULTISHOT;
        /* Without a limit a multishot recv takes all its socket holds until
         * our cancel lands, and clients that never read their echo could
         * empty the pool. With it (6.17; newer headers name the field
         * optlen) it ends by itself after the room left. */
        if (srv->recv_mode == RECV_MULTISHOT_LIMITED)
            sqe->file_index = (QUEUE_LIMIT - conn->queue.count) * RING_BUFFER_SIZE;
        conn->armed_as = srv->recv_mode;
    } else {
        struct buffer *buf = conn->echo.buf;
        sqe->addr = (uintptr_t)(buf->data + buf->end);
        sqe->len = (uint32_t)buffer_room(buf);
        conn->armed_as = RECV_ONESHOT;
    }
    conn->recv = RECV_ARMED;
    conn->in_flight++;
}

/* One send at a time per socket: two in flight could reach the socket in
 * either order and scramble the stream. */
static void submit_send(struct uring_server *srv, struct connection *conn)
{
    const unsigned char *data;
    size_t len;
    if (srv->have_buffer_ring) {
        data = buffer_queue_unsent(&srv->buffers, &conn->queue, &len);
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
    srv->sends_this_turn++;
    conn->sending = true;
    conn->in_flight++;
}

/* Cancels the request named by (fd, kind). The cancel completes too, so it
 * counts as in flight on a connection: the socket stays open until it has. */
static void submit_cancel(struct uring_server *srv, int fd, enum request_kind kind)
{
    struct io_uring_sqe *sqe = ring_get_sqe(&srv->ring);
    sqe->opcode = IORING_OP_ASYNC_CANCEL;
    sqe->fd = -1;
    sqe->addr = request_id(fd, kind);
    sqe->user_data = request_id(fd, REQ_CANCEL);
}

static void cancel_on_connection(struct uring_server *srv, struct connection *conn, enum request_kind kind)
{
    submit_cancel(srv, conn->echo.fd, kind);
    conn->in_flight++;
}

/* --- the receive state: every transition is here ------------------------
 *
 *   from        on                                      to
 *   IDLE        room for more                           ARMED (submit a recv)
 *   IDLE        no room: the echo is behind             FULL
 *   ARMED       the echo fell QUEUE_LIMIT buffers       STOPPING (cancel the multishot)
 *               behind
 *   ARMED       its last completion (no F_MORE)         IDLE, or NO_BUFFER on ENOBUFS
 *   STOPPING    its last completion                     FULL
 *   FULL        the echo caught up                      IDLE
 *   NO_BUFFER   a buffer is back in the ring            IDLE
 *   any         EOF, error, closing, once no recv       OVER
 *               is in flight
 */

static bool has_pending_echo(const struct uring_server *srv, const struct connection *conn)
{
    if (srv->have_buffer_ring)
        return conn->queue.count > 0;
    return conn->echo.buf && buffer_pending(conn->echo.buf) > 0;
}

/* Into the ring's buffers: up to QUEUE_LIMIT of them. Into its own buffer:
 * receive, echo all of it, receive again. */
static bool has_room(const struct uring_server *srv, const struct connection *conn)
{
    if (srv->have_buffer_ring)
        return conn->queue.count < QUEUE_LIMIT;
    return !has_pending_echo(srv, conn);
}

/* EINVAL from a recv submitted in a mode this kernel lacks: step down once,
 * say so once. false if there is nothing to step down to. */
static bool step_down_recv_mode(struct uring_server *srv, enum recv_mode refused)
{
    if (refused == RECV_ONESHOT)
        return false;
    if (refused != srv->recv_mode)
        return true; /* an earlier completion stepped down already */
    if (refused == RECV_MULTISHOT_LIMITED)
        log_event("this kernel has no byte limit for multishot recv: a connection that stops reading may "
                  "hold more than %d KiB until its cancel lands",
                  CONN_BUFFER_SIZE / 1024);
    else
        log_event("this kernel refuses multishot recv: one recv per message from now on");
    srv->recv_mode = refused - 1;
    return true;
}

/* A recv completion. Its data is taken care of by on_recv. */
static void recv_completed(struct uring_server *srv, struct connection *conn, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) { /* the kernel holds this recv no more */
        conn->in_flight--;
        conn->recv = conn->recv == RECV_STOPPING ? RECV_FULL : RECV_IDLE;
    }
    int err = cqe->res < 0 ? -cqe->res : 0;
    if (err == ENOBUFS && conn->recv == RECV_IDLE && !conn->closing) {
        conn->recv = RECV_NO_BUFFER;
        buffer_ring_wait(&srv->buffers, &conn->waiting);
    } else if (err == EINVAL && step_down_recv_mode(srv, conn->armed_as)) {
        /* re-armed below in the mode this kernel takes */
    } else if (err != 0 && err != ECANCELED && err != ENOBUFS) {
        conn->echo.error = err;
    } else if (cqe->res == 0) {
        conn->echo.peer_closed = true;
    }
}

/* After any completion on the connection: the transitions that follow
 * from its queue and its end, and the recv they call for. */
static void keep_receiving(struct uring_server *srv, struct connection *conn)
{
    bool in_flight = conn->recv == RECV_ARMED || conn->recv == RECV_STOPPING;
    if (conn->closing || conn->echo.peer_closed || conn->echo.error) {
        if (conn->recv == RECV_NO_BUFFER)
            list_del(&conn->waiting);
        if (!in_flight)
            conn->recv = RECV_OVER;
        return;
    }
    if (conn->recv == RECV_ARMED && !has_room(srv, conn) && conn->armed_as >= RECV_MULTISHOT) {
        cancel_on_connection(srv, conn, REQ_RECV);
        conn->recv = RECV_STOPPING;
    }
    if (conn->recv == RECV_FULL && !has_pending_echo(srv, conn))
        conn->recv = RECV_IDLE; /* resumes once the echo caught up, not at every buffer sent */
    if (conn->recv == RECV_IDLE && !has_room(srv, conn))
        conn->recv = RECV_FULL;
    if (conn->recv != RECV_IDLE)
        return;
    if (!srv->have_buffer_ring && !conn->echo.buf) {
        /* The kernel needs the address now, so this connection holds its
         * buffer while it waits: the price of having no buffer ring. */
        conn->echo.buf = buffer_get(&srv->pool);
        if (!conn->echo.buf) {
            conn->echo.error = ENOMEM;
            conn->recv = RECV_OVER;
            return;
        }
    }
    submit_recv(srv, conn);
}

/* --- a connection's next step -------------------------------------------- */

/* The kernel may still write into our buffers or use the descriptor while
 * it holds a request: cancel them, and close only when all have completed
 * (a closed descriptor's number could be reused by the next accept). */
static void begin_close(struct uring_server *srv, struct connection *conn)
{
    conn->closing = true;
    if (conn->recv == RECV_ARMED)
        cancel_on_connection(srv, conn, REQ_RECV);
    if (conn->sending)
        cancel_on_connection(srv, conn, REQ_SEND);
    keep_receiving(srv, conn);
}

static void resume_accepting(struct uring_server *srv);

static void finish_close(struct uring_server *srv, struct connection *conn)
{
    int fd = conn->echo.fd;
    if (srv->have_buffer_ring)
        buffer_queue_drop(&srv->buffers, &conn->queue);
    echo_close(&conn->echo, &srv->pool);
    srv->by_fd[fd] = NULL;
    srv->clients--;
    free(conn);
    if (srv->accept == PAUSED_UNTIL_CLOSE)
        resume_accepting(srv); /* a descriptor is free again */
}

/* Called after every completion on the connection: submits what it needs
 * next. Nothing here waits; it only queues requests for the next submit. */
static void conn_next_step(struct uring_server *srv, struct connection *conn)
{
    bool finished = conn->echo.error != 0 || (conn->echo.peer_closed && !has_pending_echo(srv, conn));
    if (!conn->closing && finished)
        begin_close(srv, conn);
    if (conn->closing) {
        if (conn->in_flight == 0)
            finish_close(srv, conn);
        return;
    }
    if (!conn->sending && has_pending_echo(srv, conn))
        submit_send(srv, conn);
    keep_receiving(srv, conn);
    if (conn->echo.error) /* no buffer for the recv */
        conn_next_step(srv, conn);
}

/* --- completions on a connection ----------------------------------------- */

static void on_recv(struct uring_server *srv, struct connection *conn, const struct io_uring_cqe *cqe)
{
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        uint16_t id = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        buffer_ring_taken(&srv->buffers, id);
        if (cqe->res > 0)
            buffer_queue_add(&srv->buffers, &conn->queue, id, (unsigned)cqe->res);
        else
            buffer_ring_give_back(&srv->buffers, id);
    }
    if (cqe->res > 0) {
        if (!srv->have_buffer_ring)
            conn->echo.buf->end += (size_t)cqe->res;
        stats_message_received(srv->stats, conn->echo.fd, (size_t)cqe->res);
        if (conn->busy_window != srv->window) {
            conn->busy_window = srv->window;
            srv->busy_now++;
        }
    }
    recv_completed(srv, conn, cqe);
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
    if (srv->have_buffer_ring)
        buffer_queue_sent(&srv->buffers, &conn->queue, sent);
    else
        buffer_consume(conn->echo.buf, sent);
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
    buffer_queue_init(&conn->queue);
    list_init(&conn->waiting);
    (void)set_nodelay(fd); /* a peer that already left may refuse; its recv will say so */
    srv->by_fd[fd] = conn;
    srv->clients++;
    stats_connection_opened(srv->stats, fd, peer);
    conn_next_step(srv, conn);
}

/* Keeps exactly one accept request armed while accepting, or the retry
 * timer while paused for it; nothing at all while paused until a close,
 * so a server out of descriptors submits nothing and wakes no one (not
 * even the SQPOLL thread, which would otherwise poll through its idle
 * time after every retry). */
static void keep_accepting(struct uring_server *srv)
{
    if (srv->accept_in_flight || srv->retry_in_flight || stop_requested())
        return;
    if (srv->accept == ACCEPTING)
        submit_accept(srv);
    else if (srv->accept == PAUSED_UNTIL_TIMER)
        submit_accept_retry(srv);
}

static void resume_accepting(struct uring_server *srv)
{
    srv->accept = ACCEPTING;
    srv->exhausted_ms = monotonic_ms();
    keep_accepting(srv);
}

/* Out of descriptors, accepting again at once would fail again at once.
 * Only our own close frees one of our descriptors (EMFILE): wait for it.
 * With none of ours to close, or the whole system short (ENFILE, memory),
 * retry on a timer that backs off. One log line per episode. */
static void pause_accepting(struct uring_server *srv, int err)
{
    if (!srv->out_of_descriptors) {
        if (err == EMFILE && srv->clients > 0)
            warn("accept: %s: pausing new connections until a connection closes", strerror(err));
        else
            warn("accept: %s: pausing new connections, retrying after %d ms and less often after that",
                 strerror(err), ACCEPT_PAUSE_MS);
        srv->retry_ms = ACCEPT_PAUSE_MS;
    } else if (srv->retry_ms < ACCEPT_RETRY_MAX_MS) {
        srv->retry_ms *= 2;
    }
    srv->out_of_descriptors = true;
    srv->exhausted_ms = monotonic_ms();
    if (srv->accept_in_flight) /* a multishot accept still armed */
        submit_cancel(srv, srv->listen_fd, REQ_ACCEPT);
    srv->accept = err == EMFILE && srv->clients > 0 ? PAUSED_UNTIL_CLOSE : PAUSED_UNTIL_TIMER;
}

static void on_accept(struct uring_server *srv, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        srv->accept_in_flight = false;
    if (cqe->res >= 0) {
        if (srv->out_of_descriptors && monotonic_ms() - srv->exhausted_ms > EPISODE_GAP_MS)
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

static void on_listener_completion(struct uring_server *srv, const struct io_uring_cqe *cqe)
{
    enum request_kind kind = request_kind(cqe->user_data);
    if (kind == REQ_ACCEPT) {
        on_accept(srv, cqe);
    } else if (kind == REQ_ACCEPT_RETRY) {
        srv->retry_in_flight = false;
        if (srv->accept == PAUSED_UNTIL_TIMER)
            resume_accepting(srv);
    }
    /* (the completion of a cancelled accept needs nothing more) */
    keep_accepting(srv);
}

/* --- the loop ------------------------------------------------------------ */

static void handle_completion(struct uring_server *srv, const struct io_uring_cqe *cqe)
{
    int fd = request_fd(cqe->user_data);
    if (fd == srv->listen_fd) {
        on_listener_completion(srv, cqe);
        return;
    }
    struct connection *conn = fd >= 0 && fd < srv->capacity ? srv->by_fd[fd] : NULL;
    if (!conn) {
        warn("completion for fd %d, which has no connection", fd);
        return;
    }
    enum request_kind kind = request_kind(cqe->user_data);
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
    struct list_node *waiter;
    while (available > 0 && (waiter = buffer_ring_next_waiter(&srv->buffers))) {
        struct connection *conn = container_of(waiter, struct connection, waiting);
        conn->recv = RECV_IDLE;
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

/* --- batched waits ------------------------------------------------------ */

/* Waking for every completion costs the thread a sleep and a wakeup per
 * message, and the client's send the work of waking it. A wait for several
 * completions, bounded by a short timer (min_wait_usec, Linux 6.12), shares
 * those out over a batch. It pays only while the clients keep nearly every
 * connection busy: each message then waits its turn behind the others
 * anyway. With few busy connections, or at a moderate rate, it would only
 * add the timer to round trips, so "when busy" looks at the last window's
 * connections before each wait. */
static void count_busy_connections(struct uring_server *srv)
{
    int64_t now = monotonic_ns();
    if (now < srv->window_ends_ns)
        return;
    bool quiet_since = now >= srv->window_ends_ns + BUSY_WINDOW_NS; /* a whole window with no turn */
    srv->busy_before = quiet_since ? 0 : srv->busy_now;
    srv->busy_now = 0;
    srv->window++;
    srv->window_ends_ns = now + BUSY_WINDOW_NS;
}

/* Busy connections: those with a message in the last whole window or in
 * this one so far, whichever are more. */
static unsigned busy_connections(const struct uring_server *srv)
{
    return srv->busy_before > srv->busy_now ? srv->busy_before : srv->busy_now;
}

static bool nearly_all_busy(const struct uring_server *srv)
{
    unsigned busy = busy_connections(srv);
    return busy >= BUSY_LEAST && busy * 100 >= BUSY_PERCENT * (unsigned long)srv->clients;
}

/* How many completions the next wait asks for, and with what bound. One,
 * unbatched. Batched, those of the sends submitted now (most complete inside
 * the very call that submits them, and would end its wait at once), plus
 * half the busy connections (the clients keep the other half moving
 * meanwhile), or one per client when always batching; the kernel returns
 * with what has come once the bound has passed. */
static unsigned completions_to_wait_for(struct uring_server *srv)
{
    unsigned sends = srv->sends_this_turn;
    srv->sends_this_turn = 0;
    srv->waits++;
    unsigned more = 0;
    if (srv->batching == BATCH_ALWAYS) {
        more = srv->clients > 0 ? (unsigned)srv->clients : 1;
    } else if (srv->batching == BATCH_WHEN_BUSY) {
        count_busy_connections(srv);
        if (nearly_all_busy(srv))
            more = busy_connections(srv) / 2;
    }
    srv->ring.min_wait_usec = more ? srv->batch_us : 0;
    if (!more)
        return 1;
    srv->batched_waits++;
    unsigned want = sends + more;
    return want < srv->ring.cq_entries / 2 ? want : srv->ring.cq_entries / 2;
}

void uring_server_run(struct uring_server *srv, const sigset_t *wait_mask)
{
    keep_accepting(srv);
    while (!stop_requested()) {
        /* The one system call per turn: submit what the last batch queued
         * and wait for completions. A stop signal ends the wait with
         * -EINTR. -EBUSY: reap first, the next turn retries. */
        int rc = ring_submit_and_wait(&srv->ring, completions_to_wait_for(srv), wait_mask);
        if (rc == -EBADR)
            warn("io_uring_enter: completions were lost (%s)", strerror(EBADR));
        else if (rc < 0 && rc != -EINTR && rc != -EBUSY)
            die("io_uring_enter: %s", strerror(-rc));
        watch_completion_queue(srv);

        /* Each completion submits what its connection needs next. */
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
    srv->window = 1; /* a new connection's busy_window, 0, is no window */
    srv->listen_fd = setup->listen_fd;
    srv->max_clients = setup->max_clients;
    srv->capacity = setup->fd_limit;
    srv->by_fd = calloc((size_t)srv->capacity, sizeof *srv->by_fd);
    if (!srv->by_fd)
        die("out of memory for %ld connections", srv->capacity);
    buffer_pool_init(&srv->pool, POOLED_BUFFERS);

    if (options->registered_ring) {
        rc = ring_register_fd(&srv->ring);
        if (rc < 0)
            log_event("io_uring: cannot register the ring's descriptor (%s, Linux 5.18): each io_uring_enter "
                      "looks it up",
                      strerror(-rc));
    }
    if (options->batching != BATCH_NEVER && !options->sqpoll) {
        if (srv->ring.features & IORING_FEAT_MIN_TIMEOUT) {
            srv->batching = options->batching;
            srv->batch_us = options->wait_batch_us ? options->wait_batch_us : BATCH_AUTO_US;
        } else {
            log_event("io_uring: this kernel has no minimum wait for completions (Linux 6.12): no batched waits");
        }
    }

    srv->multishot_accept = !options->oneshot;
    srv->recv_mode = RECV_ONESHOT;
    if (!options->oneshot) {
        /* Enough for every connection to hold its 64 KiB and a partly
         * filled buffer more, up to a cap. */
        long pool = srv->max_clients * (QUEUE_LIMIT + 1);
        unsigned count = pool > MAX_RING_BUFFERS ? MAX_RING_BUFFERS : pool < RING_WINDOW ? RING_WINDOW : (unsigned)pool;
        rc = buffer_ring_create(&srv->buffers, &srv->ring, BUFFER_GROUP, RING_WINDOW, count, RING_BUFFER_SIZE);
        if (rc == 0) {
            srv->have_buffer_ring = true;
            srv->recv_mode = options->oneshot_recv ? RECV_ONESHOT : RECV_MULTISHOT_LIMITED;
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
                 srv->recv_mode >= RECV_MULTISHOT ? "multishot" : "one-shot", RING_BUFFER_SIZE, RING_WINDOW, srv->buffers.count);
    else
        snprintf(receive, sizeof receive, "one-shot recv into each connection's %d-byte buffer", CONN_BUFFER_SIZE);
    char batch[96] = "";
    if (srv->batching == BATCH_ALWAYS)
        snprintf(batch, sizeof batch, ", completions waited for in batches (at most %u us)", srv->batch_us);
    else if (srv->batching == BATCH_WHEN_BUSY)
        snprintf(batch, sizeof batch, ", completions waited for in batches while nearly every connection is busy "
                 "(at most %u us)", srv->batch_us);
    snprintf(out, len, "%s accept, %s, %s%s%s%s", srv->multishot_accept ? "multishot" : "one-shot", receive,
             srv->ring.task_run, srv->ring.setup_flags & IORING_SETUP_SQPOLL ? ", submission queue polled" : "",
             srv->ring.enter_flags & IORING_ENTER_REGISTERED_RING ? ", registered ring descriptor" : "", batch);
}

void uring_server_destroy(struct uring_server *srv)
{
    if (srv->batching != BATCH_NEVER)
        log_event("io_uring: %lu of %lu waits were batched", srv->batched_waits, srv->waits);
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
    free(srv->by_fd);
    free(srv);
}
