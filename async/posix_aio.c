/* The POSIX AIO engine: aio_read and aio_write on the sockets, each
 * completion announced by a real-time signal (SIGEV_SIGNAL) that the loop
 * takes, one at a time and in order, with sigtimedwait (sigwaitinfo with a
 * timeout): the "signal-driven completion" picture of asynchronous IO from
 * the textbooks.
 *
 * Linux has no socket AIO for glibc to call on, so glibc fakes it: each
 * request runs on a helper thread that blocks in read or write for us
 * (strace -f shows them; on a socket they first try pread, which fails
 * with ESPIPE). The main thread never blocks for the data, but one thread
 * per waiting connection does. glibc runs at most 20 helper threads unless
 * told otherwise; with more idle connections than that, a new client's
 * read would wait for a free thread. aio_init sizes the pool from
 * --max-clients: a thread per connection, the price of this engine.
 *
 * A connection alternates: aio_read into its buffer, aio_write of what
 * came (again for the rest after a short write), aio_read again. So it has
 * one request at a time and one buffer (64 KiB at most), and a client that
 * never reads blocks only its own helper thread, in write.
 *
 * New connections arrive by signal too: the listening socket is O_ASYNC,
 * and F_SETSIG picks a real-time signal, so one wait hears both.
 *
 * A queued signal needs room in the real-time signal queue, which
 * RLIMIT_SIGPENDING bounds per user, for all the user's processes at once.
 * When it is full the signal is never sent, and glibc marks the request
 * failed (EAGAIN, the byte count lost). Nothing would wake the loop for it:
 * so once a second the loop also asks each request how it is doing
 * (aio_error), and takes a completion whose signal has not come. */
#include "engines.h"

#include "buffer.h"
#include "clock.h"
#include "echo.h"
#include "log.h"
#include "net.h"
#include "signals.h"
#include "stats.h"

#include <aio.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    EPISODE_GAP_MS = 1000, /* an exhaustion episode (one log line) ends after this long without one */
    HELPER_IDLE_SECONDS = 1,
    SWEEP_MS = 1000, /* how often to look for completions whose signal was lost */
};

struct aio_connection {
    struct echo_conn echo;  /* fd, buffer, EOF, error */
    struct aiocb request;   /* the one read or write in flight */
    bool in_flight, writing;
    bool seen_done; /* the last sweep found the request done, its signal not yet taken */
};

struct aio_server {
    int listen_fd;
    int completion_signal; /* an aio request finished */
    int listener_signal;   /* the listening socket has a connection */
    sigset_t awaited;      /* those two, SIGIO, and the stop signals */
    struct aio_connection **by_fd;
    long capacity;
    long clients, max_clients;
    bool accept_paused, out_of_descriptors;
    int64_t accept_again_at; /* ms on the monotonic clock, while paused */
    int64_t exhausted_ms;    /* when accept last ran out of descriptors */
    bool signal_loss_reported;
    struct buffer_pool pool;
    struct server_stats *stats;
};

/* --- a connection -------------------------------------------------------- */

static void close_connection(struct aio_server *srv, struct aio_connection *conn)
{
    int fd = conn->echo.fd;
    echo_close(&conn->echo, &srv->pool);
    srv->by_fd[fd] = NULL;
    srv->clients--;
    free(conn);
}

/* Asks glibc for the transfer; a helper thread does it, and the completion
 * signal carries the descriptor back to us in si_value. The descriptor, not
 * a pointer: a signal that comes after the sweep took its completion may
 * find the connection closed, and must not touch freed memory. */
static void start_request(struct aio_server *srv, struct aio_connection *conn, bool write)
{
    struct buffer *buf = conn->echo.buf;
    conn->request = (struct aiocb){
        .aio_fildes = conn->echo.fd,
        .aio_buf = write ? buf->data + buf->start : buf->data + buf->end,
        .aio_nbytes = write ? buffer_pending(buf) : buffer_room(buf),
        .aio_sigevent = {.sigev_notify = SIGEV_SIGNAL,
                         .sigev_signo = srv->completion_signal,
                         .sigev_value = {.sival_int = conn->echo.fd}},
    };
    int rc = write ? aio_write(&conn->request) : aio_read(&conn->request);
    if (rc < 0) {
        conn->echo.error = errno; /* EAGAIN: glibc is out of resources */
        return;
    }
    conn->in_flight = true;
    conn->writing = write;
    conn->seen_done = false;
}

/* After each completion: echo what is pending, or read again, or close. */
static void next_step(struct aio_server *srv, struct aio_connection *conn)
{
    struct buffer *buf = conn->echo.buf;
    if (conn->echo.error == 0 && buffer_pending(buf) > 0)
        start_request(srv, conn, true);
    else if (conn->echo.error == 0 && !conn->echo.peer_closed)
        start_request(srv, conn, false);
    if (!conn->in_flight)
        close_connection(srv, conn);
}

/* A completion signal for fd, or the sweep standing in for one. A signal
 * whose completion the sweep already took finds nothing in flight, or the
 * next request still in progress: it is ignored. */
static void on_completion(struct aio_server *srv, int fd)
{
    struct aio_connection *conn = fd >= 0 && fd < srv->capacity ? srv->by_fd[fd] : NULL;
    if (!conn || !conn->in_flight)
        return;
    int err = aio_error(&conn->request);
    if (err == EINPROGRESS)
        return; /* not ours to take yet; its own signal will come */
    ssize_t n = aio_return(&conn->request);
    conn->in_flight = false;
    struct buffer *buf = conn->echo.buf;
    if (err != 0) {
        conn->echo.error = err;
    } else if (conn->writing) {
        /* A short write leaves the rest pending: next_step writes it. */
        stats_bytes_echoed(srv->stats, (size_t)n);
        buffer_consume(buf, (size_t)n);
    } else if (n == 0) {
        conn->echo.peer_closed = true;
    } else {
        buf->end += (size_t)n;
        stats_message_received(srv->stats, conn->echo.fd, (size_t)n);
    }
    next_step(srv, conn);
}

/* --- the listener -------------------------------------------------------- */

static void admit(struct aio_server *srv, int fd, const char *peer)
{
    if (engine_refuses(fd, peer, srv->clients, srv->max_clients, srv->capacity))
        return;
    struct aio_connection *conn = calloc(1, sizeof *conn);
    /* The helper thread needs the buffer's address while it waits in read,
     * so even an idle connection holds one here. */
    struct buffer *buf = conn ? buffer_get(&srv->pool) : NULL;
    if (!buf) {
        free(conn);
        refuse_connection(fd, peer, "out of memory");
        return;
    }
    echo_init(&conn->echo, fd, peer);
    conn->echo.buf = buf;
    srv->by_fd[fd] = conn;
    srv->clients++;
    stats_connection_opened(srv->stats, fd, peer);
    next_step(srv, conn);
}

/* The listener's signal says "at least one connection": accept until
 * EAGAIN, since signals for several may have merged into one. */
static void accept_all(struct aio_server *srv)
{
    while (!srv->accept_paused) {
        char peer[ADDR_STRLEN];
        int fd = accept_connection(srv->listen_fd, false, peer);
        if (fd >= 0) {
            if (srv->out_of_descriptors && monotonic_ms() - srv->exhausted_ms > EPISODE_GAP_MS)
                srv->out_of_descriptors = false;
            admit(srv, fd, peer);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else if (accept_error_is_exhaustion(errno)) {
            /* Accepting again at once would fail again at once: the loop
             * waits ACCEPT_PAUSE_MS first (one log line per episode). */
            if (!srv->out_of_descriptors)
                warn_accept_paused(errno);
            srv->out_of_descriptors = true;
            srv->accept_paused = true;
            srv->exhausted_ms = monotonic_ms();
            srv->accept_again_at = srv->exhausted_ms + ACCEPT_PAUSE_MS;
        } else if (!accept_error_is_transient(errno)) {
            die_errno("accept");
        }
    }
}

/* O_ASYNC: the kernel signals the owner when a connection arrives; F_SETSIG
 * makes it a queued real-time signal instead of SIGIO. (If that queue
 * overflows the kernel sends SIGIO, which the loop also waits for.) */
static void signal_on_connection(struct aio_server *srv)
{
    int flags = fcntl(srv->listen_fd, F_GETFL);
    if (flags < 0 || fcntl(srv->listen_fd, F_SETFL, flags | O_NONBLOCK | O_ASYNC) < 0)
        die_errno("fcntl O_ASYNC on the listening socket");
    if (fcntl(srv->listen_fd, F_SETOWN, getpid()) < 0)
        die_errno("fcntl F_SETOWN");
    if (fcntl(srv->listen_fd, F_SETSIG, srv->listener_signal) < 0)
        die_errno("fcntl F_SETSIG");
}

/* --- completions whose signal was lost ------------------------------------- */

/* A request done at two sweeps in a row, a second apart, had its signal
 * dropped (a signal merely waiting in the queue is taken long before). */
static void take_lost_completions(struct aio_server *srv)
{
    for (long fd = 0; fd < srv->capacity; fd++) {
        struct aio_connection *conn = srv->by_fd[fd];
        if (!conn || !conn->in_flight || aio_error(&conn->request) == EINPROGRESS)
            continue;
        if (!conn->seen_done) {
            conn->seen_done = true;
            continue;
        }
        if (!srv->signal_loss_reported)
            warn("fd %ld: its completion signal never came (is the real-time signal queue full? "
                 "RLIMIT_SIGPENDING); taken by the sweep",
                 fd);
        srv->signal_loss_reported = true;
        on_completion(srv, (int)fd);
    }
}

/* --- setting up ---------------------------------------------------------- */

/* Every waiting connection has a helper thread blocked in read. */
static void size_helper_threads(long max_clients)
{
    struct aioinit init = {
        .aio_threads = (int)(max_clients + 1),
        .aio_num = (int)(max_clients + 1),
        .aio_idle_time = HELPER_IDLE_SECONDS,
    };
    aio_init(&init);
}

/* A completion signal that cannot be queued (RLIMIT_SIGPENDING, counted
 * per user) is lost and its request failed, so its connection is closed
 * at the next sweep. One request per connection: the limit should exceed
 * --max-clients. */
static void check_signal_queue(long max_clients)
{
    struct rlimit rl;
    rlim_t needed = (rlim_t)max_clients + 64;
    if (getrlimit(RLIMIT_SIGPENDING, &rl) < 0)
        die_errno("getrlimit RLIMIT_SIGPENDING");
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= needed)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= needed ? needed : rl.rlim_max;
    if (setrlimit(RLIMIT_SIGPENDING, &rl) < 0 || rl.rlim_cur < needed)
        warn("RLIMIT_SIGPENDING is %lu, below --max-clients: a connection whose completion signal finds the queue full is closed",
             (unsigned long)rl.rlim_cur);
}

static void block_engine_signals(struct aio_server *srv)
{
    srv->completion_signal = SIGRTMIN + 1;
    srv->listener_signal = SIGRTMIN + 2;
    sigemptyset(&srv->awaited);
    sigaddset(&srv->awaited, srv->completion_signal);
    sigaddset(&srv->awaited, srv->listener_signal);
    sigaddset(&srv->awaited, SIGIO);
    sigaddset(&srv->awaited, SIGINT);
    sigaddset(&srv->awaited, SIGTERM);
    /* Blocked, they stay queued until sigtimedwait takes them: no handler
     * runs, and nothing can arrive between two looks at the queue. */
    int rc = pthread_sigmask(SIG_BLOCK, &srv->awaited, NULL);
    if (rc != 0) {
        errno = rc;
        die_errno("pthread_sigmask");
    }
}

/* At the end every helper thread must let go of its buffer before it is
 * freed. aio_cancel cannot stop a request a helper thread is already
 * running (AIO_NOTCANCELED); shutdown can: a blocked read returns 0 and a
 * blocked write fails. (A connection is never closed with a request in
 * flight, so this is the only place that needs it.) */
static void shut_down(struct aio_server *srv)
{
    for (long fd = 0; fd < srv->capacity; fd++) {
        struct aio_connection *conn = srv->by_fd[fd];
        if (!conn)
            continue;
        if (conn->in_flight) {
            if (shutdown((int)fd, SHUT_RDWR) < 0)
                warn_errno("shutdown fd %ld", fd);
            const struct aiocb *list[1] = {&conn->request};
            while (aio_error(&conn->request) == EINPROGRESS)
                if (aio_suspend(list, 1, NULL) < 0 && errno != EINTR && errno != EAGAIN)
                    die_errno("aio_suspend");
            (void)aio_return(&conn->request);
        }
        close_connection(srv, conn);
    }
    buffer_pool_destroy(&srv->pool);
    free(srv->by_fd);
}

void posix_aio_server_run(const struct engine_setup *setup)
{
    struct aio_server srv = {
        .listen_fd = setup->listen_fd,
        .capacity = setup->fd_limit,
        .max_clients = setup->max_clients,
        .stats = setup->stats,
    };
    srv.by_fd = calloc((size_t)srv.capacity, sizeof *srv.by_fd);
    if (!srv.by_fd)
        die("out of memory for %ld connections", srv.capacity);
    buffer_pool_init(&srv.pool, POOLED_BUFFERS);
    size_helper_threads(srv.max_clients);
    check_signal_queue(srv.max_clients);
    block_engine_signals(&srv);
    signal_on_connection(&srv);
    accept_all(&srv); /* any that came before O_ASYNC was set */

    int64_t next_sweep = monotonic_ms() + SWEEP_MS;
    while (!stop_requested()) {
        /* Deadlines, not timeouts: a busy server, whose wait never times
         * out, still sweeps and ends an accept pause on time. */
        int64_t now = monotonic_ms();
        if (now >= next_sweep) {
            take_lost_completions(&srv);
            next_sweep = now + SWEEP_MS;
        }
        if (srv.accept_paused && now >= srv.accept_again_at) {
            srv.accept_paused = false;
            accept_all(&srv);
        }
        int64_t until = srv.accept_paused && srv.accept_again_at < next_sweep ? srv.accept_again_at : next_sweep;
        int64_t wait_ms = until > now ? until - now : 0;
        const struct timespec timeout = {.tv_sec = (time_t)(wait_ms / 1000), .tv_nsec = (long)(wait_ms % 1000) * 1000000L};

        /* The loop's only blocking call: wait for the next signal. */
        siginfo_t info;
        int signo = sigtimedwait(&srv.awaited, &info, &timeout);
        if (signo < 0) {
            if (errno != EAGAIN && errno != EINTR)
                die_errno("sigtimedwait");
        } else if (signo == SIGINT || signo == SIGTERM) {
            break;
        } else if (signo == srv.completion_signal) {
            on_completion(&srv, info.si_value.sival_int);
        } else {
            accept_all(&srv);
        }
    }
    shut_down(&srv);
}
