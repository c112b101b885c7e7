/* ftpd: a concurrent FTP server on one thread, the capstone of the
 * multiplexing lesson.
 *
 * Every socket of every session, control connections, passive listeners
 * and data connections alike, is non-blocking and watched by the same
 * readiness loop as the echo server's (../multiplexing/loop.h). This file
 * is the server's frame: options, the listener, the table of sessions, the
 * tick that enforces --idle-timeout, and the shutdown. The protocol is in
 * session.c and commands.c, the data connections in data.c, confinement in
 * paths.c and the listings in listing.c. */
#include "ftpd.h"

#include "log.h"
#include "../multiplexing/loop.h"
#include "net.h"
#include "options.h"
#include "paths.h"
#include "session.h"
#include "signals.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum {
    DEFAULT_PORT = 2121,
    DEFAULT_IDLE_TIMEOUT_S = 300,
    /* The tick looks for idle sessions about four times per timeout, and
     * at least once a second (it also resumes a paused listener). */
    TICK_MIN_MS = 100,
    TICK_MAX_MS = 1000,
    /* The most a session holds at once: its control connection, a data
     * connection (or the passive listener waiting for it), and, during an
     * upload, the file and its directory. */
    DESCRIPTORS_PER_SESSION = 4,
    ACCEPTS_PER_EVENT = 16,
};

static const char SUMMARY[] =
    "A concurrent FTP server on one thread: control and data connections share one readiness loop.";

/* -- the command line ------------------------------------------------------ */

struct ftpd_options {
    struct server_options common;
    const char *root;
    bool read_only;
    int api;
    long idle_timeout_s;
    const char *user; /* NAME:PASSWORD */
};

static void parse_options(int argc, char **argv, struct ftpd_options *o)
{
    *o = (struct ftpd_options){
        .common = server_options_defaults(DEFAULT_PORT),
        .root = ".",
        .api = LOOP_EPOLL,
        .idle_timeout_s = DEFAULT_IDLE_TIMEOUT_S,
    };
    const struct model_option table[] = {
        {.name = "root", .short_name = 'r', .kind = OPTION_STRING, .metavar = "DIR",
         .help = "the directory served as /; nothing outside it can be reached", .value = &o->root},
        {.name = "read-only", .kind = OPTION_FLAG, .help = "refuse every command that writes",
         .value = &o->read_only},
        {.name = "api", .kind = OPTION_CHOICE, .help = "what the event loop waits with",
         .choices = loop_api_names, .value = &o->api},
        {.name = "idle-timeout", .kind = OPTION_NUMBER, .metavar = "SECONDS",
         .help = "close a session after this long without a command or a data byte", .min = 1, .max = 86400,
         .value = &o->idle_timeout_s},
        {.name = "user", .kind = OPTION_STRING, .metavar = "NAME:PASSWORD",
         .help = "require this one account (default: anonymous, any password)", .value = &o->user},
    };
    size_t count = sizeof table / sizeof table[0];
    parse_server_options(argc, argv, SUMMARY, &o->common, table, count);
    if (o->user && (!strchr(o->user, ':') || o->user[0] == ':'))
        server_usage_error(SUMMARY, table, count, "--user: '%s' is not NAME:PASSWORD", o->user);
}

/* -- the listener ---------------------------------------------------------- */

/* Over the session limit, or beyond what the loop can watch: told why
 * (RFC 959's 421, "service not available") and closed. */
static void refuse_client(int fd, const char *peer, const char *why)
{
    static const char reply[] = "421 Too many connections, try again later\r\n";
    /* Best effort: a fresh socket's buffer takes one line without waiting. */
    (void)send(fd, reply, sizeof reply - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    refuse_connection(fd, peer, "%s", why);
}

static void on_listener_readable(struct loop *loop, int listen_fd, int ready, void *data);
static void on_tick(struct loop *loop, void *data);

/* Out of descriptors, the pending connection stays in the backlog and the
 * listener stays readable: watched level-triggered, it would wake the loop
 * at once, for ever. So the listener asks for nothing until a session
 * closes or ACCEPT_PAUSE_MS pass. One warning per episode: the flag is
 * cleared only by an accept that succeeds. */
static void pause_accepting(struct ftp_server *server, int err)
{
    if (!server->out_of_descriptors)
        warn_accept_paused(err);
    server->out_of_descriptors = true;
    if (loop_watch(server->loop, server->listen_fd, 0, on_listener_readable, server) < 0)
        die_errno("pause the listening socket");
    server->accept_paused = true;
    loop_set_tick(server->loop, ACCEPT_PAUSE_MS, on_tick, server);
}

void server_resume_accepting(struct ftp_server *server)
{
    if (!server->accept_paused)
        return;
    if (loop_watch(server->loop, server->listen_fd, LOOP_READABLE, on_listener_readable, server) < 0)
        die_errno("resume the listening socket");
    server->accept_paused = false;
    loop_set_tick(server->loop, server->tick_ms, on_tick, server);
}

static void admit(struct ftp_server *server, int fd, const char *peer, const struct sockaddr_storage *peer_addr)
{
    char why[80];
    if (server->session_count >= (size_t)server->max_sessions) {
        snprintf(why, sizeof why, "%zu clients already connected", server->session_count);
        refuse_client(fd, peer, why);
    } else if (!loop_can_watch(server->loop, fd)) {
        snprintf(why, sizeof why, "%s cannot watch a descriptor that high", loop_api_name(server->loop));
        refuse_client(fd, peer, why);
    } else {
        stats_connection_opened(server->stats, fd, peer);
        session_open(server, fd, peer_addr);
    }
}

static void on_listener_readable(struct loop *loop, int listen_fd, int ready, void *data)
{
    (void)loop;
    (void)ready;
    struct ftp_server *server = data;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        char peer[ADDR_STRLEN];
        struct sockaddr_storage peer_addr;
        int fd = accept_connection_from(listen_fd, true, peer, &peer_addr);
        if (fd >= 0) {
            server->out_of_descriptors = false;
            admit(server, fd, peer, &peer_addr);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else if (accept_error_is_exhaustion(errno)) {
            pause_accepting(server, errno);
            return;
        } else if (!accept_error_is_transient(errno)) {
            die_errno("accept");
        }
    }
}

/* -- the tick: idle sessions and a paused listener ------------------------- */

static void on_tick(struct loop *loop, void *data)
{
    (void)loop;
    struct ftp_server *server = data;
    int64_t now = monotonic_ms();
    struct list_node *node, *next;
    list_for_each_safe(node, next, &server->sessions) /* a session may be destroyed */
        session_tick(container_of(node, struct session, link), now);
    server_resume_accepting(server);
}

/* -- the session limit ----------------------------------------------------- */

/* As many sessions as the descriptors allow, each with room for its data
 * connection and its files, so that a client over the limit is told 421
 * at once instead of a session failing later for want of a descriptor.
 * The loop's own ceiling counts too: select's fd_set holds FD_SETSIZE
 * descriptors (select(2)). */
static long session_limit(long max_clients, long fd_limit, enum loop_api api)
{
    long usable = api == LOOP_SELECT && fd_limit > FD_SETSIZE ? FD_SETSIZE : fd_limit;
    long fit = (usable - SPARE_FDS) / DESCRIPTORS_PER_SESSION;
    if (fit < 1)
        die("%ld descriptors (RLIMIT_NOFILE%s) leave no room for a session: %d needed", usable,
            usable < fd_limit ? ", FD_SETSIZE" : "", SPARE_FDS + DESCRIPTORS_PER_SESSION);
    if (fit >= max_clients)
        return max_clients;
    log_event("at most %ld sessions, not %ld: %ld descriptors (%s) at %d per session and %d spare", fit, max_clients,
              usable, usable < fd_limit ? "select's FD_SETSIZE" : "RLIMIT_NOFILE", DESCRIPTORS_PER_SESSION,
              SPARE_FDS);
    return fit;
}

/* -- start and stop -------------------------------------------------------- */

static void start(struct ftp_server *server, const struct ftpd_options *o)
{
    int root_fd = open(o->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        die_errno("--root %s", o->root);
    if (!path_confinement_available(root_fd))
        die_errno("openat2 (Linux 5.6 or later confines paths with it)");

    server->config = (struct ftp_config){
        .root_fd = root_fd,
        .read_only = o->read_only,
        .idle_timeout_ms = o->idle_timeout_s * 1000,
    };
    if (o->user) {
        /* The password is the part after the first ':'; the option string
         * is ours to cut (argv). The password is copied and wiped from
         * argv, which every local user can read (ps, /proc/PID/cmdline). */
        char *colon = strchr(o->user, ':');
        *colon = '\0';
        server->config.user = o->user;
        server->config.password = strdup(colon + 1);
        if (!server->config.password)
            die_errno("--user");
        memset(colon + 1, 0, strlen(colon + 1));
    }

    long fd_limit = raise_fd_limit(o->common.max_clients * DESCRIPTORS_PER_SESSION + SPARE_FDS);
    if (fd_limit < 0)
        die_errno("RLIMIT_NOFILE");
    server->max_sessions = session_limit(o->common.max_clients, fd_limit, (enum loop_api)o->api);
    list_init(&server->sessions);
    server->loop = loop_create((enum loop_api)o->api, false, fd_limit > INT_MAX ? INT_MAX : (int)fd_limit);
    if (!server->loop)
        die_errno("event loop (%s)", loop_api_names[o->api]);
    server->stats = stats_create();
    buffer_pool_init(&server->buffers, POOLED_BUFFERS);

    server->listen_fd = listen_on(o->common.host, o->common.port, true);
    if (loop_watch(server->loop, server->listen_fd, LOOP_READABLE, on_listener_readable, server) < 0)
        die_errno("watch the listening socket");
    long tick_ms = server->config.idle_timeout_ms / 4;
    server->tick_ms = tick_ms < TICK_MIN_MS ? TICK_MIN_MS : tick_ms > TICK_MAX_MS ? TICK_MAX_MS : (int)tick_ms;
    loop_set_tick(server->loop, server->tick_ms, on_tick, server);
}

/* Every session is told and closed; an upload in progress loses its
 * temporary file, so no half-written file is left under any name. */
static void stop(struct ftp_server *server)
{
    while (!list_empty(&server->sessions)) {
        struct session *s = container_of(server->sessions.next, struct session, link);
        session_reply(s, 421, "Server shutting down");
        session_close_later(s, "server stopping");
        session_settle(s);
    }
    loop_unwatch(server->loop, server->listen_fd);
    close(server->listen_fd);
    close(server->config.root_fd);
    free(server->config.password);
    loop_destroy(server->loop);
    buffer_pool_destroy(&server->buffers);
}

static void print_summary(const struct server_stats *stats)
{
    log_summary("%lu connections, %lu commands, %lu bytes transferred", atomic_load(&stats->connections),
                atomic_load(&stats->messages), atomic_load(&stats->bytes));
}

int main(int argc, char **argv)
{
    struct ftpd_options options;
    parse_options(argc, argv, &options);
    install_stop_handlers();

    struct ftp_server server = {0};
    start(&server, &options);
    announce_listening(server.listen_fd);
    log_event("serving %s with %s%s", options.root, loop_api_name(server.loop),
              options.read_only ? ", read-only" : "");

    if (loop_run(server.loop) < 0)
        die_errno("%s", loop_api_name(server.loop));
    stop(&server);
    print_summary(server.stats);
    return 0;
}
