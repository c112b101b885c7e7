#include "address.h"

#include "net.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

struct addrinfo *resolve_address(const char *host, const char *port, char *err, size_t err_len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(host, port, &hints, &list);
    if (rc != 0) {
        snprintf(err, err_len, "%s:%s: %s", host, port, gai_strerror(rc));
        return NULL;
    }
    return list;
}

int connect_to(const char *host, const char *port, bool nonblocking, char *err, size_t err_len)
{
    struct addrinfo *list = resolve_address(host, port, err, err_len);
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
