/* The nonblocking model: every socket is O_NONBLOCK, so no call ever waits.
 * A call that cannot make progress fails at once with EAGAIN ("not yet"),
 * and the server learns what is ready only by trying: one loop sweeps the
 * listener and every connection, over and over.
 *
 * Nothing blocks, and that is the catch: something must happen between two
 * sweeps that found nothing to do. --wait decides what:
 *   spin   sweep again at once: quick to react, and a whole CPU while idle
 *   sleep  nanosleep --sleep-us: cheap while idle, up to that much late
 *   sigio  signal-driven IO (Stevens' fourth model): the kernel sends SIGIO
 *          when a socket changes, and the loop sleeps in sigsuspend until then
 *
 * Which phase waits: no call sleeps waiting for data (phase 1): a read that
 * finds nothing says EAGAIN at once. The thread is still held in read
 * while the kernel copies what is there (phase 2). The waiting for data
 * has moved into the loop: spinning, sleeping, or sigsuspend.
 */
#include "buffer.h"
#include "clock.h"
#include "echo.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"
#include "stats.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum wait_mode { WAIT_SPIN, WAIT_SLEEP, WAIT_SIGIO };
static const char *const wait_names[] = {"spin", "sleep", "sigio", NULL};

struct server {
    int listen_fd;
    enum wait_mode wait;
    long sleep_us;
    struct echo_conn *conns; /* the open connections, packed at the front */
    size_t count, capacity;  /* capacity: --max-clients */
    struct buffer_pool pool;
    struct server_stats *stats;
    bool accept_paused;   /* descriptors ran out: accept waits ... */
    int64_t resume_at_ms; /* ... until then (monotonic_ms) */
};

/* ---- Signal-driven IO ---------------------------------------------------- */

/* SIGIO's default action kills the process; the handler exists only so
 * that the signal ends sigsuspend instead. */
static void wake_up(int signo)
{
    (void)signo;
}

/* From now on the kernel sends this process SIGIO whenever fd has news:
 * data or a connection arrived, room to write appeared, the peer left. */
static int enable_sigio(int fd)
{
    if (fcntl(fd, F_SETOWN, getpid()) < 0)
        return -1;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFL, flags | O_ASYNC);
}

/* SIGIO (and SIGALRM, the paused accept's retry) stay blocked outside the
 * wait: one that arrives during a sweep is kept pending and ends the next
 * sigsuspend at once, instead of being lost before it. */
static void prepare_sigio(int listen_fd)
{
    sigset_t wakeups;
    sigemptyset(&wakeups);
    sigaddset(&wakeups, SIGIO);
    sigaddset(&wakeups, SIGALRM);
    if (sigprocmask(SIG_BLOCK, &wakeups, NULL) < 0)
        die_errno("sigprocmask");

    struct sigaction sa = {.sa_handler = wake_up};
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGIO, &sa, NULL) < 0 || sigaction(SIGALRM, &sa, NULL) < 0)
        die_errno("sigaction");
    if (enable_sigio(listen_fd) < 0)
        die_errno("fcntl O_ASYNC on the listener");
}

/* A one-shot SIGALRM after ms. */
static void arm_alarm(long ms)
{
    struct itimerval timer = {.it_value = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000}};
    if (setitimer(ITIMER_REAL, &timer, NULL) < 0)
        die_errno("setitimer");
}

/* Sleeps until SIGIO says some socket changed, or a stop signal. The stop
 * signals are blocked from the flag check until sigsuspend lets them in
 * atomically, so one cannot slip in between and leave us asleep.
 *
 * A paused accept needs a timer: the listener's SIGIO fired when those
 * connections arrived, and will not fire again while they wait in the
 * backlog for a descriptor to free up. */
static void wait_for_sigio(const struct server *s)
{
    sigset_t during_sweeps;
    block_stop_signals(&during_sweeps);
    sigset_t during_wait = during_sweeps;
    sigdelset(&during_wait, SIGIO);
    sigdelset(&during_wait, SIGALRM);

    if (s->accept_paused) {
        int64_t ms = s->resume_at_ms - monotonic_ms();
        arm_alarm(ms > 0 ? (long)ms : 1);
    }
    if (!stop_requested())
        sigsuspend(&during_wait); /* always returns -1/EINTR, after a handler ran */
    if (sigprocmask(SIG_SETMASK, &during_sweeps, NULL) < 0)
        die_errno("sigprocmask");
}

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000L};
    if (nanosleep(&ts, NULL) < 0 && errno != EINTR)
        die_errno("nanosleep");
}

/* ---- The sweep ----------------------------------------------------------- */

static void add_connection(struct server *s, int fd, const char *peer)
{
    if (s->count == s->capacity) {
        refuse_connection(fd, peer, "%zu clients already connected", s->count);
        return;
    }
    stats_connection_opened(s->stats, fd, peer);
    struct echo_conn *conn = &s->conns[s->count++];
    echo_init(conn, fd, peer);
    if (s->wait == WAIT_SIGIO && enable_sigio(fd) < 0)
        conn->error = errno; /* the next pump closes it, and echo_close says why */
}

static void pause_accept(struct server *s)
{
    if (!s->accept_paused)
        warn_accept_paused(errno);
    s->accept_paused = true;
    s->resume_at_ms = monotonic_ms() + ACCEPT_PAUSE_MS;
}

/* Accepts until the backlog is empty (EAGAIN). Returns whether any arrived. */
static bool accept_waiting(struct server *s)
{
    if (s->accept_paused && monotonic_ms() < s->resume_at_ms)
        return false;
    bool accepted = false;
    for (;;) {
        char peer[ADDR_STRLEN];
        int fd = accept_connection(s->listen_fd, true, peer);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                s->accept_paused = false;
                return accepted;
            }
            if (accept_error_is_transient(errno))
                continue;
            if (accept_error_is_exhaustion(errno)) {
                pause_accept(s);
                return accepted;
            }
            die_errno("accept");
        }
        s->accept_paused = false;
        accepted = true;
        add_connection(s, fd, peer);
    }
}

/* Gives every connection one read and one write, whichever it wants; EAGAIN
 * only means "not yet". A finished connection is closed and the last one
 * moves into its slot. Returns whether any was closed. */
static bool pump_connections(struct server *s)
{
    bool closed = false;
    for (size_t i = 0; i < s->count;) {
        struct echo_conn *conn = &s->conns[i];
        if (echo_pump(conn, &s->pool, s->stats, false) & ECHO_CLOSE) {
            echo_close(conn, &s->pool);
            s->conns[i] = s->conns[--s->count];
            closed = true;
        } else {
            i++;
        }
    }
    return closed;
}

/* Each read that returned data counts a message, each byte written counts
 * in bytes: together the counters tell whether a sweep moved anything. */
static unsigned long bytes_and_messages(const struct server_stats *stats)
{
    return atomic_load(&stats->messages) + atomic_load(&stats->bytes);
}

/* One pass over every socket. Returns whether anything happened; if not,
 * every socket has said EAGAIN and the loop may wait. */
static bool sweep(struct server *s)
{
    unsigned long before = bytes_and_messages(s->stats);
    bool accepted = accept_waiting(s);
    bool closed = pump_connections(s);
    return accepted || closed || bytes_and_messages(s->stats) != before;
}

static void run(struct server *s)
{
    while (!stop_requested()) {
        if (sweep(s))
            continue; /* something moved: more may be ready already */
        switch (s->wait) {
        case WAIT_SPIN:
            break;
        case WAIT_SLEEP:
            sleep_us(s->sleep_us);
            break;
        case WAIT_SIGIO:
            wait_for_sigio(s);
            break;
        }
    }
}

static void shut_down(struct server *s)
{
    if (close(s->listen_fd) < 0)
        warn_errno("close listener");
    for (size_t i = 0; i < s->count; i++)
        echo_close(&s->conns[i], &s->pool);
    s->count = 0;
    free(s->conns);
    buffer_pool_destroy(&s->pool);
}

int main(int argc, char **argv)
{
    struct server_options options = server_options_defaults(8000);
    int wait = WAIT_SPIN;
    long sleep_us_option = 1000;
    const struct model_option model[] = {
        {.name = "wait",
         .kind = OPTION_CHOICE,
         .help = "what the loop does after a sweep that found nothing to do",
         .choices = wait_names,
         .value = &wait},
        {.name = "sleep-us",
         .kind = OPTION_NUMBER,
         .metavar = "N",
         .help = "--wait sleep: microseconds to sleep",
         .min = 1,
         .max = 1000000,
         .value = &sleep_us_option},
    };
    parse_server_options(argc, argv, "The nonblocking echo server: one loop sweeps every socket; EAGAIN means not yet.",
                         &options, model, sizeof model / sizeof model[0]);

    install_stop_handlers();
    reserve_descriptors(options.max_clients);

    struct server s = {
        .listen_fd = listen_on(options.host, options.port, true),
        .wait = (enum wait_mode)wait,
        .sleep_us = sleep_us_option,
        .conns = calloc((size_t)options.max_clients, sizeof(struct echo_conn)),
        .capacity = (size_t)options.max_clients,
        .stats = stats_create(),
    };
    if (!s.conns)
        die_errno("calloc");
    buffer_pool_init(&s.pool, POOLED_BUFFERS);
    if (s.wait == WAIT_SIGIO)
        prepare_sigio(s.listen_fd);
    announce_listening(s.listen_fd);

    run(&s);

    shut_down(&s);
    stats_print_summary(s.stats);
    return 0;
}
