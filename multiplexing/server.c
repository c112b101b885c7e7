/* The multiplexing echo server: one thread waits for readiness on every
 * socket at once (select, poll or epoll, see loop.h), then serves whichever
 * are ready. The thread sleeps only in that wait, for data on every socket
 * at once (phase 1); a handler's read or write finds the bytes there and is
 * held in the call only while the kernel copies them (phase 2).
 *
 * Read it top to bottom: a connection's handler (pump the echo, then tell
 * the loop what the connection waits for next), the listener's handler
 * (accept, refuse, or pause when descriptors run out), then main. */
#include "loop.h"

#include "echo.h"
#include "list.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"
#include "stats.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

enum { DEFAULT_PORT = 8000 };

enum trigger { TRIGGER_LEVEL, TRIGGER_EDGE };
static const char *const trigger_names[] = {"level", "edge", NULL};

static const char SUMMARY[] = "An echo server in one thread: select, poll or epoll waits for every socket at once.";

struct server;

struct connection {
    struct echo_conn echo; /* holds a buffer only while bytes are pending */
    struct server *server;
    struct list_node link; /* in server.connections */
};

struct server {
    struct loop *loop;
    int listen_fd;
    long max_clients;
    long clients;
    struct list_node connections; /* every open one, to close them all at the end */
    bool accept_paused;
    bool out_of_descriptors; /* this episode is logged already */
    bool read_once;          /* --read-once: the teaching mistake, see on_connection_ready */
    bool out_of_reach;       /* refusing descriptors the backend cannot watch: said once */
    struct buffer_pool pool;
    struct server_stats *stats;
};

static void resume_accepting(struct server *srv);

/* --- a connection -------------------------------------------------------- */

static int interest_for(int wants)
{
    return (wants & ECHO_WANT_READ ? LOOP_READABLE : 0) | (wants & ECHO_WANT_WRITE ? LOOP_WRITABLE : 0);
}

static void close_connection(struct server *srv, struct connection *conn)
{
    loop_unwatch(srv->loop, conn->echo.fd);
    echo_close(&conn->echo, &srv->pool);
    list_del(&conn->link);
    free(conn);
    srv->clients--;
    /* A descriptor just came free: a listener paused for lack of one can
     * go on. */
    resume_accepting(srv);
}

/* Level-triggered: one read and one write at most; the next wait says if
 * there is more. Edge-triggered: until EAGAIN, as the kernel will not say
 * it twice (a short read would show the buffer drained too, epoll(7), but
 * not an end of file that came with the last data, which no new event
 * announces; EAGAIN or 0 shows both). --read-once makes the edge-triggered handler stop after one
 * read, the mistake the lesson shows: bytes left in the socket are never
 * announced again, and the connection stalls. Either way the connection asks to hear about writability only
 * while it has bytes pending, and about readability only while its buffer
 * has room (backpressure). */
static void on_connection_ready(struct loop *loop, int fd, int ready, void *data)
{
    (void)ready; /* echo_pump tries what the state wants; EAGAIN costs nothing */
    struct connection *conn = data;
    struct server *srv = conn->server;

    int wants = echo_pump(&conn->echo, &srv->pool, srv->stats, loop_is_edge_triggered(loop) && !srv->read_once);
    if (wants & ECHO_CLOSE) {
        close_connection(srv, conn);
        return;
    }
    /* The loop calls into the kernel only if the interest changed. */
    if (loop_watch(loop, fd, interest_for(wants), on_connection_ready, conn) < 0) {
        conn->echo.error = errno;
        close_connection(srv, conn);
    }
}

/* --- the listener -------------------------------------------------------- */

static void admit(struct server *srv, int fd, const char *peer)
{
    if (srv->clients >= srv->max_clients) {
        refuse_connection(fd, peer, "%ld clients already connected", srv->clients);
        return;
    }
    if (!loop_can_watch(srv->loop, fd)) {
        /* A crowd past FD_SETSIZE brings one such refusal per newcomer:
         * the reason is logged once, until a connection is served again. */
        if (!srv->out_of_reach)
            refuse_connection(fd, peer, "%s cannot watch a descriptor that high (more such refusals unlogged)",
                              loop_api_name(srv->loop));
        else if (close(fd) < 0)
            warn_errno("close fd %d", fd);
        srv->out_of_reach = true;
        return;
    }
    srv->out_of_reach = false;
    struct connection *conn = malloc(sizeof *conn);
    if (!conn) {
        refuse_connection(fd, peer, "out of memory");
        return;
    }
    echo_init(&conn->echo, fd, peer);
    conn->server = srv;
    if (loop_watch(srv->loop, fd, LOOP_READABLE, on_connection_ready, conn) < 0) {
        refuse_connection(fd, peer, "%s", strerror(errno));
        free(conn);
        return;
    }
    list_add(&srv->connections, &conn->link);
    srv->clients++;
    stats_connection_opened(srv->stats, fd, peer);
}

static void on_retry_tick(struct loop *loop, void *data)
{
    (void)loop;
    resume_accepting(data);
}

static void on_listener_ready(struct loop *loop, int fd, int ready, void *data);

/* Out of descriptors, the pending connection stays in the backlog and the
 * listener stays readable: polled level-triggered, it would wake the loop
 * at once, for ever, at 100% CPU. So it asks for nothing until a
 * connection closes or the retry tick comes. */
static void pause_accepting(struct server *srv, int err)
{
    if (!srv->out_of_descriptors)
        warn_accept_paused(err);
    srv->out_of_descriptors = true;
    srv->accept_paused = true;
    if (loop_watch(srv->loop, srv->listen_fd, 0, on_listener_ready, srv) < 0)
        die_errno("pause the listening socket");
    loop_set_tick(srv->loop, ACCEPT_PAUSE_MS, on_retry_tick, srv);
}

static void resume_accepting(struct server *srv)
{
    if (!srv->accept_paused)
        return;
    srv->accept_paused = false;
    loop_set_tick(srv->loop, 0, NULL, NULL);
    if (loop_watch(srv->loop, srv->listen_fd, LOOP_READABLE, on_listener_ready, srv) < 0)
        die_errno("resume the listening socket");
}

/* Level-triggered: one accept per wake-up. Edge-triggered: until EAGAIN,
 * or the connections still in the backlog would never be announced. */
static void on_listener_ready(struct loop *loop, int fd, int ready, void *data)
{
    (void)ready;
    struct server *srv = data;
    bool drain = loop_is_edge_triggered(loop);
    do {
        char peer[ADDR_STRLEN];
        int client = accept_connection(fd, true, peer);
        if (client >= 0) {
            srv->out_of_descriptors = false;
            admit(srv, client, peer);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return;
        } else if (accept_error_is_exhaustion(errno)) {
            pause_accepting(srv, errno);
            return;
        } else if (!accept_error_is_transient(errno)) {
            die_errno("accept");
        }
    } while (drain);
}

/* --- main ---------------------------------------------------------------- */

enum { MODEL_OPTIONS = 3 };

static void describe_options(struct model_option table[MODEL_OPTIONS], int *api, int *trigger, bool *read_once)
{
    table[0] = (struct model_option){
        .name = "api", .kind = OPTION_CHOICE, .metavar = "API", .choices = loop_api_names, .value = api,
        .help = "the readiness call the loop waits in"};
    table[1] = (struct model_option){
        .name = "trigger", .kind = OPTION_CHOICE, .metavar = "MODE", .choices = trigger_names, .value = trigger,
        .help = "epoll only: edge-triggered handlers drain every socket to EAGAIN"};
    table[2] = (struct model_option){
        .name = "read-once", .kind = OPTION_FLAG, .value = read_once,
        .help = "for the lesson: read at most once per readiness event, even edge-triggered (it stalls)"};
}

static void parse_options(int argc, char **argv, struct server_options *common, int *api, int *trigger,
                          bool *read_once)
{
    struct model_option model[MODEL_OPTIONS];
    *common = server_options_defaults(DEFAULT_PORT);
    *api = LOOP_EPOLL;
    *trigger = TRIGGER_LEVEL;
    *read_once = false;
    describe_options(model, api, trigger, read_once);
    parse_server_options(argc, argv, SUMMARY, common, model, MODEL_OPTIONS);

    if (*trigger == TRIGGER_EDGE && *api != LOOP_EPOLL)
        server_usage_error(SUMMARY, model, MODEL_OPTIONS, "--trigger edge needs --api epoll (%s is level-triggered only)",
                           loop_api_names[*api]);
}

static void shut_down(struct server *srv)
{
    loop_unwatch(srv->loop, srv->listen_fd);
    if (close(srv->listen_fd) < 0)
        warn_errno("close the listening socket");
    srv->accept_paused = false;
    struct list_node *node, *tmp;
    list_for_each_safe(node, tmp, &srv->connections)
        close_connection(srv, container_of(node, struct connection, link));
    loop_destroy(srv->loop);
    buffer_pool_destroy(&srv->pool);
}

int main(int argc, char **argv)
{
    struct server_options common;
    int api, trigger;
    bool read_once;
    parse_options(argc, argv, &common, &api, &trigger, &read_once);
    install_stop_handlers();
    if (api == LOOP_SELECT && common.max_clients > FD_SETSIZE - SPARE_FDS)
        warn("select watches descriptors below FD_SETSIZE (%d) only: a client past that is refused, "
             "well before --max-clients %ld", FD_SETSIZE, common.max_clients);

    /* The loop's table is indexed by descriptor, so it is sized by the
     * highest descriptor the process may open. */
    long fd_limit = reserve_descriptors(common.max_clients);

    struct server srv = {.max_clients = common.max_clients, .read_once = read_once, .stats = stats_create()};
    list_init(&srv.connections);
    buffer_pool_init(&srv.pool, POOLED_BUFFERS);
    srv.loop = loop_create((enum loop_api)api, trigger == TRIGGER_EDGE, fd_limit > INT_MAX ? INT_MAX : (int)fd_limit);
    if (!srv.loop)
        die_errno("create the %s loop", loop_api_names[api]);
    srv.listen_fd = listen_on(common.host, common.port, true);
    if (loop_watch(srv.loop, srv.listen_fd, LOOP_READABLE, on_listener_ready, &srv) < 0)
        die_errno("watch the listening socket");

    log_event("multiplexing with %s (%s-triggered%s)", loop_api_name(srv.loop), trigger_names[trigger],
              read_once ? ", one read per event" : "");
    announce_listening(srv.listen_fd);

    if (loop_run(srv.loop) < 0)
        die_errno("%s", loop_api_name(srv.loop));

    shut_down(&srv);
    stats_print_summary(srv.stats);
    return 0;
}
