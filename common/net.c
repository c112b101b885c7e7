#include "net.h"

#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* The kernel clamps this to net.core.somaxconn; a connection storm needs
 * the largest backlog it will give. */
enum { LISTEN_BACKLOG = 65535 };

int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int set_nodelay(int fd)
{
    int on = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

void format_sockaddr(const struct sockaddr *sa, char *out, size_t out_len)
{
    char ip[INET6_ADDRSTRLEN];

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(out, out_len, "%s:%u", ip, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(out, out_len, "[%s]:%u", ip, ntohs(in6->sin6_port));
    } else {
        snprintf(out, out_len, "(family %d)", sa->sa_family);
    }
}

int listen_on(const char *host, int port, bool nonblocking)
{
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(host, port_text, &hints, &list);
    if (rc != 0)
        die("cannot listen on %s:%s: %s", host, port_text, gai_strerror(rc));

    int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
    int fd = socket(list->ai_family, type, 0);
    if (fd < 0)
        die_errno("socket");
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0)
        die_errno("setsockopt SO_REUSEADDR");
    if (bind(fd, list->ai_addr, list->ai_addrlen) < 0)
        die_errno("bind %s:%d", host, port);
    if (listen(fd, LISTEN_BACKLOG) < 0)
        die_errno("listen");
    freeaddrinfo(list);
    return fd;
}

void announce_listening(int listen_fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char addr[ADDR_STRLEN];

    if (getsockname(listen_fd, (struct sockaddr *)&ss, &len) < 0)
        die_errno("getsockname");
    format_sockaddr((struct sockaddr *)&ss, addr, sizeof addr);
    printf("listening on %s\n", addr);
    if (fflush(stdout) == EOF)
        die_errno("stdout");
}

int accept_connection_from(int listen_fd, bool nonblocking, char peer[ADDR_STRLEN], struct sockaddr_storage *addr)
{
    socklen_t len = sizeof *addr;
    int flags = SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
    int fd = accept4(listen_fd, (struct sockaddr *)addr, &len, flags);
    if (fd < 0)
        return -1;
    /* Echo traffic is many small messages: Nagle would hold each reply back
     * waiting for the peer's delayed ACK. A socket that is no longer TCP
     * (the peer already left) may refuse; that is not worth failing over. */
    (void)set_nodelay(fd);
    format_sockaddr((struct sockaddr *)addr, peer, ADDR_STRLEN);
    return fd;
}

int accept_connection(int listen_fd, bool nonblocking, char peer[ADDR_STRLEN])
{
    struct sockaddr_storage ss;
    return accept_connection_from(listen_fd, nonblocking, peer, &ss);
}

void refuse_connection(int fd, const char *peer, const char *why_fmt, ...)
{
    char why[160];
    va_list ap;
    va_start(ap, why_fmt);
    vsnprintf(why, sizeof why, why_fmt, ap);
    va_end(ap);
    log_event("refusing fd %d from %s: %s", fd, peer, why);
    if (close(fd) < 0)
        warn_errno("close fd %d", fd);
}

bool accept_error_is_transient(int err)
{
    switch (err) {
    case EINTR:
    case ECONNABORTED:
    case EPROTO:
    case EPERM: /* a firewall rule refused this one peer */
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH:
        return true;
    default:
        return false;
    }
}

bool accept_error_is_exhaustion(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

void warn_accept_paused(int err)
{
    warn("accept: %s: pausing new connections, retrying every %d ms", strerror(err), ACCEPT_PAUSE_MS);
}

long raise_fd_limit(long wanted)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < wanted) {
        rlim_t target = (rlim_t)wanted;
        if (rl.rlim_max != RLIM_INFINITY && target > rl.rlim_max)
            target = rl.rlim_max;
        rl.rlim_cur = target;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            return -1;
    }
    return rl.rlim_cur == RLIM_INFINITY ? wanted : (long)rl.rlim_cur;
}

long reserve_descriptors(long max_clients)
{
    long limit = raise_fd_limit(max_clients + SPARE_FDS);
    if (limit < 0)
        die_errno("RLIMIT_NOFILE");
    return limit;
}
