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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    /* A session holds its control connection, a passive listener or a data
     * connection, and a file or directory. */
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
    const struct server_options defaults = o->common;
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
        server_usage_error(SUMMARY, &defaults, table, count, "--user: '%s' is not NAME:PASSWORD", o->user);
}

/* -- the listener ---------------------------------------------------------- */

/* Over --max-clients, or beyond what the loop can watch: told why, closed. */
static void refuse_client(int fd, const char *reason)
{
    static const char reply[] = "421 Too many connections, try again later\r\n";
    /* Best effort: a fresh socket's buffer takes one line without waiting. */
    (void)send(fd, reply, sizeof reply - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    log_event("closing fd %d: %s", fd, reason);
    close(fd);
}

static void on_listener_readable(struct loop *loop, int listen_fd, int ready, void *data);

/* Interest 0: still registered, asking for nothing. */
static void pause_accepting(struct ftp_server *server)
{
    if (loop_watch(server->loop, server->listen_fd, 0, on_listener_readable, server) == 0)
        server->accept_paused = true;
}

static void resume_accepting(struct ftp_server *server)
{
    if (loop_watch(server->loop, server->listen_fd, LOOP_READABLE, on_listener_readable, server) == 0)
        server->accept_paused = false;
}

static void on_listener_readable(struct loop *loop, int listen_fd, int ready, void *data)
{
    (void)ready;
    struct ftp_server *server = data;
    for (int i = 0; i < ACCEPTS_PER_EVENT; i++) {
        char peer[ADDR_STRLEN];
        struct sockaddr_storage peer_addr;
        int fd = accept_connection_from(listen_fd, true, peer, &peer_addr);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (accept_error_is_transient(errno))
                continue;
            /* Out of descriptors (or worse): stop asking until the next
             * tick rather than spin on a listener that stays readable. */
            warn_errno("accept");
            pause_accepting(server);
            return;
        }
        stats_connection_opened(server->stats, fd, peer);
        if (server->session_count >= (size_t)server->config.max_clients)
            refuse_client(fd, "too many clients");
        else if (!loop_can_watch(loop, fd))
            refuse_client(fd, "descriptor beyond what the loop can watch");
        else
            session_open(server, fd, &peer_addr);
    }
}

/* -- the tick: idle sessions and a paused listener ------------------------- */

static void on_tick(struct loop *loop, void *data)
{
    (void)loop;
    struct ftp_server *server = data;
    long long now = monotonic_ms();
    for (struct session *s = server->sessions, *next; s; s = next) {
        next = s->next; /* s may be destroyed */
        session_check_idle(s, now);
    }
    if (server->accept_paused)
        resume_accepting(server);
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
        .max_clients = o->common.max_clients,
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

    long fd_limit = raise_fd_limit(o->common.max_clients * DESCRIPTORS_PER_SESSION + 64);
    if (fd_limit < 0)
        die_errno("RLIMIT_NOFILE");
    server->loop = loop_create((enum loop_api)o->api, false, (int)fd_limit);
    if (!server->loop)
        die_errno("event loop (%s)", loop_api_names[o->api]);
    server->stats = stats_create();
    buffer_pool_init(&server->buffers, POOLED_BUFFERS);

    server->listen_fd = listen_on(o->common.host, o->common.port, true);
    if (loop_watch(server->loop, server->listen_fd, LOOP_READABLE, on_listener_readable, server) < 0)
        die_errno("watch the listening socket");
    long tick_ms = server->config.idle_timeout_ms / 4;
    tick_ms = tick_ms < TICK_MIN_MS ? TICK_MIN_MS : tick_ms > TICK_MAX_MS ? TICK_MAX_MS : tick_ms;
    loop_set_tick(server->loop, (int)tick_ms, on_tick, server);
}

/* Every session is told and closed; an upload in progress loses its
 * temporary file, so no half-written file is left under any name. */
static void stop(struct ftp_server *server)
{
    while (server->sessions) {
        struct session *s = server->sessions;
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
    char line[200];
    int n = snprintf(line, sizeof line, "summary: %lu connections, %lu commands, %lu bytes transferred\n",
                     atomic_load(&stats->connections), atomic_load(&stats->messages), atomic_load(&stats->bytes));
    if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
        return; /* nowhere left to report it */
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
