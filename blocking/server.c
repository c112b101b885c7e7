/* The blocking model: accept, read and write each wait inside the kernel
 * until they can do their work, so one flow of control waits for one thing
 * at a time.
 *
 * The echo loop is the whole lesson. read() first blocks while the peer has
 * sent nothing (waiting for data), then copies what arrived into our buffer;
 * write() copies it back and blocks only while the peer's side is full.
 *
 * --concurrency decides who does the waiting:
 *   iterative  the main loop serves one client to the end; the next waits in
 *              the listen backlog meanwhile (one slow client stalls everyone)
 *   fork       a child process per connection (Stevens' classic server)
 *   thread     a detached thread per connection, at most --max-clients
 */
#include "list.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"
#include "stats.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdnoreturn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum concurrency { CONCURRENCY_ITERATIVE, CONCURRENCY_FORK, CONCURRENCY_THREAD };
static const char *const concurrency_names[] = {"iterative", "fork", "thread", NULL};

enum {
    ECHO_CHUNK = 64 * 1024,          /* the stack buffer: the most one read copies */
    REAP_INTERVAL_MS = 250,          /* fork: the reaping timer, see reap_children() */
    STOP_ROUNDS = 100,               /* fork: SIGTERM rounds before SIGKILL ... */
    STOP_ROUND_MS = 20,              /* ... each this long at most */
    WORKER_STACK_SIZE = 512 * 1024,  /* thread: the 64 KiB buffer and a little more */
};

/* ---- The echo loop: every variant runs it for each connection ---------- */

/* Writes all n bytes back. A write may copy less than asked (the send
 * buffer had less room): the rest goes on the next turn of the loop.
 * Returns 0, or the errno that broke the connection; gives up quietly once
 * the server is stopping. */
static int write_all(int fd, const unsigned char *data, size_t n, struct server_stats *stats)
{
    while (n > 0 && !stop_requested()) {
        ssize_t written = write(fd, data, n); /* blocks while the peer's side is full */
        if (written < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        stats_bytes_echoed(stats, (size_t)written);
        data += written;
        n -= (size_t)written;
    }
    return 0;
}

/* Echoes until the peer is done (EOF: all it sent has been written back) or
 * the server stops. Returns 0, or the errno that broke the connection. */
static int echo_until_done(int fd, struct server_stats *stats)
{
    unsigned char chunk[ECHO_CHUNK];

    while (!stop_requested()) {
        ssize_t n = read(fd, chunk, sizeof chunk); /* blocks until the peer sends */
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        stats_message_received(stats, fd, (size_t)n);
        int error = write_all(fd, chunk, (size_t)n, stats);
        if (error != 0)
            return error;
    }
    return 0;
}

static void close_connection(int fd, int error)
{
    if (error != 0)
        log_event("closing fd %d: %s", fd, strerror(error));
    else
        log_event("closing fd %d", fd);
    if (close(fd) < 0)
        warn_errno("close fd %d", fd);
}

/* ---- Accepting ----------------------------------------------------------- */

struct listener {
    int fd;
    bool exhausted; /* inside a descriptor-exhaustion episode (logged once) */
};

/* Sleeps, or less if a signal arrives: the caller's loop looks at why. */
static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    if (nanosleep(&ts, NULL) < 0 && errno != EINTR)
        die_errno("nanosleep");
}

/* Blocks in accept() until a client connects. Returns its descriptor, or -1
 * when this attempt produced none: a signal arrived, the peer gave up, the
 * server is stopping (the stop signal shut the listener down), or
 * descriptors ran out. That last one pauses first, so no caller spins; the
 * connection stays in the backlog and is accepted once one frees up. */
static int accept_client(struct listener *listener, char peer[ADDR_STRLEN])
{
    int fd = accept_connection(listener->fd, false, peer);
    if (fd >= 0) {
        listener->exhausted = false;
        return fd;
    }
    if (accept_error_is_transient(errno) || stop_requested())
        return -1;
    if (!accept_error_is_exhaustion(errno))
        die_errno("accept");
    if (!listener->exhausted)
        warn_accept_paused(errno);
    listener->exhausted = true;
    pause_ms(ACCEPT_PAUSE_MS);
    return -1;
}

/* ---- iterative: the main loop is the only worker ------------------------- */

static void serve_iteratively(struct listener *listener, struct server_stats *stats)
{
    while (!stop_requested()) {
        char peer[ADDR_STRLEN];
        int fd = accept_client(listener, peer);
        if (fd < 0)
            continue;
        stats_connection_opened(stats, fd, peer);
        close_connection(fd, echo_until_done(fd, stats));
    }
}

/* ---- fork: a process per connection -------------------------------------- */

/* The children this server started. Only the main loop reaps them, so a PID
 * listed here is alive or a zombie, never recycled, and safe to signal. */
struct children {
    pid_t *pids;
    long count;
};

/* A handler that does nothing: its only effect is that the blocked call it
 * lands in returns EINTR (installed without SA_RESTART). */
static void interrupt_only(int signo)
{
    (void)signo;
}

static void install_interrupting_handler(int signo, int flags)
{
    struct sigaction sa = {.sa_handler = interrupt_only, .sa_flags = flags};
    sigemptyset(&sa.sa_mask);
    if (sigaction(signo, &sa, NULL) < 0)
        die_errno("sigaction %s", strsignal(signo));
}

/* SIGCHLD interrupts accept(), so an exited child is reaped at once. One
 * that lands after the last reap but before accept() blocks would leave a
 * zombie until the next client; while children exist, this timer's SIGALRM
 * interrupts accept() too, so none lingers longer than one interval. */
static void set_reap_timer(bool on)
{
    struct itimerval timer = {0};
    if (on)
        timer.it_interval = timer.it_value = (struct timeval){.tv_usec = REAP_INTERVAL_MS * 1000};
    if (setitimer(ITIMER_REAL, &timer, NULL) < 0)
        die_errno("setitimer");
}

static void add_child(struct children *children, pid_t pid)
{
    children->pids[children->count++] = pid;
    if (children->count == 1)
        set_reap_timer(true);
}

static void forget_child(struct children *children, pid_t pid)
{
    for (long i = 0; i < children->count; i++) {
        if (children->pids[i] == pid) {
            children->pids[i] = children->pids[--children->count];
            break;
        }
    }
    if (children->count == 0)
        set_reap_timer(false);
}

/* Collects every child that has exited, without waiting for the others. */
static void reap_children(struct children *children)
{
    while (children->count > 0) {
        pid_t pid = waitpid(-1, NULL, WNOHANG);
        if (pid == 0)
            return;
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            die_errno("waitpid");
        }
        forget_child(children, pid);
    }
}

static void signal_children(const struct children *children, int signo)
{
    for (long i = 0; i < children->count; i++)
        if (kill(children->pids[i], signo) < 0 && errno != ESRCH)
            warn_errno("kill %ld", (long)children->pids[i]);
}

/* Asks every child to stop and reaps it. A SIGTERM that lands just before a
 * child's read() blocks only sets its flag, so it is sent again each round;
 * a child still there after every round is killed. */
static void stop_children(struct children *children)
{
    for (int round = 0; children->count > 0 && round < STOP_ROUNDS; round++) {
        signal_children(children, SIGTERM);
        pause_ms(STOP_ROUND_MS);
        reap_children(children);
    }
    if (children->count > 0) {
        warn("%ld children ignored SIGTERM; killing them", children->count);
        signal_children(children, SIGKILL);
    }
    while (children->count > 0) {
        pid_t pid = waitpid(-1, NULL, 0);
        if (pid < 0 && errno != EINTR)
            die_errno("waitpid");
        if (pid > 0)
            forget_child(children, pid);
    }
}

/* The child serves this one connection and exits; the listener is the
 * parent's business. _exit: the parent's stdio and atexit work is not ours. */
static noreturn void serve_in_child(int listen_fd, int fd, struct server_stats *stats)
{
    if (close(listen_fd) < 0)
        warn_errno("close listener");
    close_connection(fd, echo_until_done(fd, stats));
    _exit(0);
}

static void serve_with_processes(struct listener *listener, struct server_stats *stats, long max_clients)
{
    struct children children = {.pids = calloc((size_t)max_clients, sizeof(pid_t))};
    if (!children.pids)
        die_errno("calloc");
    install_interrupting_handler(SIGCHLD, SA_NOCLDSTOP);
    install_interrupting_handler(SIGALRM, 0);

    while (!stop_requested()) {
        char peer[ADDR_STRLEN];
        int fd = accept_client(listener, peer); /* SIGCHLD interrupts it */
        reap_children(&children);
        if (fd < 0)
            continue;
        if (children.count >= max_clients) {
            refuse_connection(fd, peer, "%ld clients already connected", children.count);
            continue;
        }
        stats_connection_opened(stats, fd, peer);
        pid_t pid = fork();
        if (pid < 0) {
            int error = errno;
            warn_errno("fork for fd %d", fd);
            close_connection(fd, error);
            continue;
        }
        if (pid == 0)
            serve_in_child(listener->fd, fd, stats);
        add_child(&children, pid);
        /* The child holds its own copy; the connection ends when it closes. */
        if (close(fd) < 0)
            warn_errno("close fd %d", fd);
    }
    stop_children(&children);
    free(children.pids);
}

/* ---- thread: a thread per connection ------------------------------------- */

/* The connections being served, one thread each: counted against
 * --max-clients, and listed so that a stopping server can wake every worker
 * blocked in read or write and wait until all have finished. */
struct roster {
    pthread_mutex_t lock;
    pthread_cond_t emptied;
    struct list_node workers;
    long count;
};

struct worker {
    struct list_node link; /* in roster->workers */
    struct roster *roster;
    struct server_stats *stats;
    int fd;
};

/* Lists the worker and returns how many were served before, unless that is
 * already max_clients: then the worker is not listed. */
static long roster_try_add(struct roster *roster, struct worker *worker, long max_clients)
{
    pthread_mutex_lock(&roster->lock);
    long served = roster->count;
    if (served < max_clients) {
        list_add(&roster->workers, &worker->link);
        roster->count++;
    }
    pthread_mutex_unlock(&roster->lock);
    return served;
}

static void roster_unlink(struct roster *roster, struct worker *worker)
{
    list_del(&worker->link);
    roster->count--;
    if (roster->count == 0)
        pthread_cond_signal(&roster->emptied);
}

/* The socket is closed under the lock, so a stopping main thread never
 * shuts down a descriptor number that has already been reused. */
static void worker_finish(struct worker *worker, int error)
{
    struct roster *roster = worker->roster;
    pthread_mutex_lock(&roster->lock);
    roster_unlink(roster, worker);
    close_connection(worker->fd, error);
    free(worker);
    pthread_mutex_unlock(&roster->lock);
}

static void *serve_in_thread(void *arg)
{
    struct worker *worker = arg;
    worker_finish(worker, echo_until_done(worker->fd, worker->stats));
    return NULL;
}

/* shutdown() wakes a worker blocked in read (it sees EOF) or in write (it
 * gets EPIPE); then each finishes and closes its own socket. */
static void stop_workers(struct roster *roster)
{
    pthread_mutex_lock(&roster->lock);
    struct list_node *node, *tmp;
    list_for_each_safe(node, tmp, &roster->workers) {
        struct worker *w = container_of(node, struct worker, link);
        if (shutdown(w->fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
            warn_errno("shutdown fd %d", w->fd);
    }
    while (roster->count > 0)
        pthread_cond_wait(&roster->emptied, &roster->lock);
    pthread_mutex_unlock(&roster->lock);
}

/* Stop signals must interrupt the main thread's accept(), never a worker:
 * the new thread inherits a mask that blocks them. Returns 0 or an errno. */
static int start_worker(struct worker *worker, const pthread_attr_t *attr)
{
    sigset_t unblocked;
    block_stop_signals(&unblocked);
    pthread_t thread;
    int rc = pthread_create(&thread, attr, serve_in_thread, worker);
    int mask_rc = pthread_sigmask(SIG_SETMASK, &unblocked, NULL);
    if (mask_rc != 0) {
        errno = mask_rc;
        die_errno("pthread_sigmask");
    }
    return rc;
}

static void make_worker_attr(pthread_attr_t *attr)
{
    int rc = pthread_attr_init(attr);
    if (rc == 0)
        rc = pthread_attr_setdetachstate(attr, PTHREAD_CREATE_DETACHED);
    if (rc == 0) /* a small stack lets thousands of workers fit */
        rc = pthread_attr_setstacksize(attr, WORKER_STACK_SIZE);
    if (rc != 0) {
        errno = rc;
        die_errno("pthread_attr");
    }
}

static void serve_with_threads(struct listener *listener, struct server_stats *stats, long max_clients)
{
    struct roster roster = {.lock = PTHREAD_MUTEX_INITIALIZER, .emptied = PTHREAD_COND_INITIALIZER};
    list_init(&roster.workers);
    pthread_attr_t attr;
    make_worker_attr(&attr);

    while (!stop_requested()) {
        char peer[ADDR_STRLEN];
        int fd = accept_client(listener, peer);
        if (fd < 0)
            continue;
        struct worker *worker = malloc(sizeof *worker);
        if (!worker) {
            close_connection(fd, ENOMEM);
            continue;
        }
        *worker = (struct worker){.roster = &roster, .stats = stats, .fd = fd};
        long served = roster_try_add(&roster, worker, max_clients);
        if (served >= max_clients) {
            free(worker);
            refuse_connection(fd, peer, "%ld clients already connected", served);
            continue;
        }
        stats_connection_opened(stats, fd, peer);
        int rc = start_worker(worker, &attr);
        if (rc != 0) {
            warn("cannot start a thread for fd %d: %s", fd, strerror(rc));
            worker_finish(worker, rc);
        }
    }
    stop_workers(&roster);
    pthread_attr_destroy(&attr);
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct server_options options = server_options_defaults(8000);
    int concurrency = CONCURRENCY_ITERATIVE;
    const struct model_option model[] = {
        {.name = "concurrency",
         .kind = OPTION_CHOICE,
         .help = "who serves a connection: the main loop, a child process, or a thread",
         .choices = concurrency_names,
         .value = &concurrency},
    };
    parse_server_options(argc, argv, "The blocking echo server: accept, read and write each wait in the kernel.",
                         &options, model, sizeof model / sizeof model[0]);

    install_stop_handlers();
    reserve_descriptors(options.max_clients);
    struct server_stats *stats = stats_create();
    struct listener listener = {.fd = listen_on(options.host, options.port, false)};
    announce_listening(listener.fd);
    /* A stop signal that lands just before accept() blocks only sets the
     * flag; shutting the listener down too makes that accept() return. */
    stop_wakes_listener(listener.fd);

    switch (concurrency) {
    case CONCURRENCY_ITERATIVE:
        serve_iteratively(&listener, stats);
        break;
    case CONCURRENCY_FORK:
        serve_with_processes(&listener, stats, options.max_clients);
        break;
    case CONCURRENCY_THREAD:
        serve_with_threads(&listener, stats, options.max_clients);
        break;
    }

    stop_wakes_listener(-1);
    if (close(listener.fd) < 0)
        warn_errno("close listener");
    stats_print_summary(stats);
    return 0;
}
