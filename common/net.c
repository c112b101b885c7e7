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

static struct addrinfo *resolve(const char *host, const char *port, int flags, char *err, size_t err_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = flags};
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(host, port, &hints, &list);
    if (rc != 0) {
        snprintf(err, err_len, "%s:%s: %s", host, port, gai_strerror(rc));
        return NULL;
    }
    return list;
}

int listen_on(const char *host, int port, bool nonblocking)
{
    char port_text[16], err[256];
    snprintf(port_text, sizeof port_text, "%d", port);
    struct addrinfo *list = resolve(host, port_text, AI_PASSIVE, err, sizeof err);
    if (!list)
        die("cannot listen on %s", err);

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

int connect_to(const char *host, const char *port, bool nonblocking, char *err, size_t err_len)
{
    struct addrinfo *list = resolve(host, port, 0, err, err_len);
    if (!list)
        return -1;

    int fd = -1, saved = 0;
    for (struct addrinfo *ai = list; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int rc;
        do
            rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        while (rc < 0 && errno == EINTR);
        if (rc == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(list);
    if (fd < 0) {
        snprintf(err, err_len, "connect to %s:%s: %s", host, port, strerror(saved));
        return -1;
    }
    (void)set_nodelay(fd);
    if (nonblocking && set_nonblocking(fd) < 0) {
        snprintf(err, err_len, "fcntl O_NONBLOCK: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static bool copy_part(char *dst, size_t dst_len, const char *src, size_t n)
{
    if (n == 0 || n >= dst_len)
        return false;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return true;
}

static bool is_port(const char *text)
{
    if (*text == '\0' || strlen(text) > 5)
        return false;
    for (const char *p = text; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    return atoi(text) <= 65535;
}

bool parse_host_port(const char *arg, char *host, size_t host_len, char *port, size_t port_len)
{
    const char *colon = strrchr(arg, ':');
    const char *port_text = colon ? colon + 1 : arg;

    if (!is_port(port_text) || !copy_part(port, port_len, port_text, strlen(port_text)))
        return false;
    if (!colon)
        return copy_part(host, host_len, "127.0.0.1", strlen("127.0.0.1"));

    const char *h = arg;
    size_t n = (size_t)(colon - arg);
    if (n >= 2 && h[0] == '[' && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    return copy_part(host, host_len, h, n);
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
