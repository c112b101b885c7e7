/* client hold -n N: connections that cost the server a descriptor and a
 * place in its wait, but never a message, held open while compare.sh -i
 * measures the server with bench in another process. They show what watching many sockets costs each model:
 * select and poll hand the kernel every watched descriptor on every wait,
 * epoll and io_uring only the ready ones.
 *
 * Each first echoes one byte, so the server is known to have accepted it
 * and to be watching it (a connection still in the listen backlog costs
 * the server nothing). */
#include "bench.h"

#include "client.h"
#include "clock.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* At most this many connections are proving themselves at once: a burst
 * of thousands of connects overflows the listen backlog, and the SYNs the
 * kernel drops are retried after 1, 3, 7... seconds (TCP's backoff), which
 * would stall the measured connections that come after them. */
enum { IDLE_EVENTS = 256, IDLE_IN_FLIGHT = 64 };

/* An idle connection while it proves itself: has its byte left yet? */
struct idle {
    int fd;
    bool sent;
};

/* Returns how many echoed their byte; closed or reset ones are counted in
 * *refused. Gives up on the rest at deadline (monotonic ns). */
static void start_one(int epoll_fd, const struct addrinfo *ai, struct idle *c)
{
    c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        die_errno("socket");
    if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS)
        die_errno("connect (idle connection)");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die_errno("epoll_ctl");
}

static long open_idle(const struct addrinfo *ai, long n, int64_t deadline, long *refused)
{
    *refused = 0;
    if (n == 0)
        return 0;
    struct idle *idle = calloc((size_t)n, sizeof *idle);
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (!idle || epoll_fd < 0)
        die_errno("idle connections");
    long echoed = 0, started = 0, pending = 0;
    struct epoll_event events[IDLE_EVENTS];
    for (;;) {
        while (pending < IDLE_IN_FLIGHT && started < n) {
            start_one(epoll_fd, ai, &idle[started++]);
            pending++;
        }
        if (pending == 0)
            break;
        int64_t left = deadline - monotonic_ns();
        if (left <= 0 || stop_requested())
            break;
        int ready = epoll_wait(epoll_fd, events, IDLE_EVENTS, (int)(left / 1000000) + 1);
        if (ready < 0 && errno != EINTR)
            die_errno("epoll_wait");
        for (int k = 0; k < ready; k++) {
            struct idle *c = events[k].data.ptr;
            char byte = 'i';
            if (events[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                ssize_t got = recv(c->fd, &byte, 1, 0);
                if (got == 1)
                    echoed++;
                else if (got < 0 && errno == EAGAIN)
                    continue;
                else
                    (*refused)++; /* closed or reset: the server refused it */
                epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL); /* open, no longer watched */
                pending--;
            } else if ((events[k].events & EPOLLOUT) && !c->sent) {
                if (send(c->fd, &byte, 1, MSG_NOSIGNAL) == 1) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
                    c->sent = true;
                } else if (errno != EAGAIN) {
                    (*refused)++;
                    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
                    pending--;
                }
            }
        }
    }
    close(epoll_fd);
    free(idle); /* the descriptors stay open until the process exits */
    return echoed;
}

int hold_main(int argc, char **argv)
{
    long n = -1;
    opterr = 0;
    int c;
    while ((c = getopt(argc, argv, ":n:h")) != -1) {
        switch (c) {
        case 'n':
            if (!parse_long(optarg, 0, 1000000, &n))
                client_usage_error("hold: -n expects a whole number from 0 to 1000000, not '%s'", optarg);
            break;
        case 'h':
            client_usage(stdout);
            exit(0);
        case ':':
            client_usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            client_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    char host[256], port[8];
    client_parse_address_operand(argc, argv, optind, "hold: ", host, sizeof host, port, sizeof port);
    if (n < 0)
        client_usage_error("hold: -n N is required");
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *server;
    int rc = getaddrinfo(host, port, &hints, &server);
    if (rc != 0)
        die("cannot resolve %s:%s: %s", host, port, gai_strerror(rc));
    ensure_descriptors(n);
    install_stop_handlers();

    long refused = 0;
    /* Generous: a server whose every wait scans every descriptor (poll,
     * select) takes time quadratic in n to accept them all. */
    long held = open_idle(server, n, monotonic_ns() + (30 + n / 200) * 1000000000LL, &refused);
    freeaddrinfo(server);
    printf("holding %ld of %ld connections", held, n);
    if (refused)
        printf(" (%ld refused)", refused);
    printf("\n");
    if (fflush(stdout) == EOF)
        die_errno("stdout");

    /* Hold them, asleep, until told to stop or the caller's pipe closes. */
    struct pollfd in = {.fd = STDIN_FILENO, .events = POLLIN};
    while (!stop_requested()) {
        int ready = poll(&in, 1, -1);
        if (ready < 0 && errno != EINTR)
            die_errno("poll");
        if (ready > 0) {
            char junk[256];
            if (read(STDIN_FILENO, junk, sizeof junk) <= 0)
                break;
        }
    }
    return 0; /* exiting closes every connection */
}
