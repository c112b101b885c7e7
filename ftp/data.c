#include "data.h"

#include "../multiplexing/loop.h"
#include "session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The most one readiness event moves on one data connection, so a fast
 * transfer takes turns with everyone else instead of hogging the thread. */
enum { SENDFILE_CHUNK = 1024 * 1024 };

static void on_data_event(struct loop *loop, int fd, int ready, void *data);

struct transfer transfer_blank(void)
{
    return (struct transfer){.kind = TRANSFER_NONE, .file_fd = -1, .dir_fd = -1};
}

void data_init(struct data_channel *data)
{
    *data = (struct data_channel){.mode = DATA_NONE, .listen_fd = -1, .fd = -1, .transfer = transfer_blank()};
}

bool data_is_prepared(const struct session *s)
{
    return s->data.mode != DATA_NONE;
}

bool data_transfer_active(const struct session *s)
{
    return s->data.transfer.kind != TRANSFER_NONE;
}

/* Keeps t->what, which the log may still want. */
void transfer_release(struct session *s, struct transfer *t)
{
    if (t->file_fd >= 0)
        close(t->file_fd);
    if (t->dir)
        closedir(t->dir);
    if (t->buf)
        buffer_put(&s->server->buffers, t->buf);
    if (t->temp_name[0] && unlinkat(t->dir_fd, t->temp_name, 0) < 0)
        warn_errno("fd %d: cannot remove %s", s->control_fd, t->temp_name);
    if (t->dir_fd >= 0)
        close(t->dir_fd);
    char what[VPATH_MAX];
    memcpy(what, t->what, sizeof what);
    *t = transfer_blank();
    memcpy(t->what, what, sizeof what);
}

static void close_watched(struct session *s, int *fd)
{
    if (*fd < 0)
        return;
    loop_unwatch(s->server->loop, *fd);
    close(*fd);
    *fd = -1;
}

bool data_abort(struct session *s)
{
    struct data_channel *d = &s->data;
    bool running = data_transfer_active(s);
    close_watched(s, &d->listen_fd);
    close_watched(s, &d->fd);
    transfer_release(s, &d->transfer);
    d->mode = DATA_NONE;
    d->connecting = false;
    return running;
}

/* Ends the transfer with an error reply (426, 425, 451...). */
static void fail_transfer(struct session *s, int code, const char *fmt, ...) PRINTF_LIKE(3, 4);
static void fail_transfer(struct session *s, int code, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    char safe[LOGGABLE_MAX];
    if (data_abort(s))
        log_event("fd %d: transfer of %s failed: %s", s->control_fd, loggable_string(s->data.transfer.what, safe),
                  text);
    session_reply(s, code, "%s", text);
}

/* The prepared data connection cannot be made. With a transfer waiting on
 * it that transfer fails (425); without one, the channel is just closed and
 * the next transfer command gets 425 for want of a PASV: never a reply
 * the client did not ask for. */
static void drop_data_channel(struct session *s, const char *what)
{
    if (data_transfer_active(s))
        fail_transfer(s, 425, "%s: %s", what, strerror(errno));
    else
        data_abort(s);
}

/* -- addresses ------------------------------------------------------------ */

/* The IPv4 address of sa, also when it is IPv4 seen through an IPv6
 * socket (::ffff:a.b.c.d). */
static bool ipv4_of(const struct sockaddr_storage *sa, struct in_addr *out)
{
    if (sa->ss_family == AF_INET) {
        *out = ((const struct sockaddr_in *)sa)->sin_addr;
        return true;
    }
    const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (sa->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(a6)) {
        memcpy(out, &a6->s6_addr[12], 4);
        return true;
    }
    return false;
}

/* Same host, ports aside: the check that stops FTP bounce and data
 * connection theft. */
static bool same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    struct in_addr a4, b4;
    bool a_is_v4 = ipv4_of(a, &a4), b_is_v4 = ipv4_of(b, &b4);
    if (a_is_v4 || b_is_v4)
        return a_is_v4 && b_is_v4 && a4.s_addr == b4.s_addr;
    return a->ss_family == AF_INET6 && b->ss_family == AF_INET6 &&
           memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                  sizeof(struct in6_addr)) == 0;
}

static unsigned port_of(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

/* A decimal number up to max, ending at stop; advances *text past it. */
static bool parse_number(const char **text, char stop, unsigned long max, unsigned long *out)
{
    const char *p = *text;
    unsigned long v = 0;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        v = v * 10 + (unsigned long)(*p - '0');
        if (v > max)
            return false;
    }
    if (*p != stop)
        return false;
    *text = p + (stop ? 1 : 0);
    *out = v;
    return true;
}

/* PORT h1,h2,h3,h4,p1,p2 (RFC 959). */
static bool parse_port_argument(const char *arg, struct sockaddr_storage *out)
{
    unsigned long n[6];
    for (int i = 0; i < 6; i++)
        if (!parse_number(&arg, i < 5 ? ',' : '\0', 255, &n[i]))
            return false;
    struct sockaddr_in *in = (struct sockaddr_in *)out;
    memset(out, 0, sizeof *out);
    in->sin_family = AF_INET;
    in->sin_addr.s_addr = htonl((uint32_t)(n[0] << 24 | n[1] << 16 | n[2] << 8 | n[3]));
    in->sin_port = htons((uint16_t)(n[4] << 8 | n[5]));
    return true;
}

/* EPRT |proto|address|port| (RFC 2428); any printable delimiter. Returns
 * 0 when parsed, 501 when malformed, 522 for an unknown protocol. */
static int parse_eprt_argument(const char *arg, struct sockaddr_storage *out)
{
    char delimiter = arg[0];
    if (delimiter < 33 || delimiter > 126)
        return 501;
    const char *proto = arg + 1;
    const char *addr = strchr(proto, delimiter);
    const char *port = addr ? strchr(addr + 1, delimiter) : NULL;
    if (!port || port - addr - 1 >= INET6_ADDRSTRLEN)
        return 501;
    char host[INET6_ADDRSTRLEN];
    memcpy(host, addr + 1, (size_t)(port - addr - 1));
    host[port - addr - 1] = '\0';
    const char *port_text = port + 1;
    unsigned long port_number;
    if (!parse_number(&port_text, delimiter, 65535, &port_number) || *port_text != '\0')
        return 501;

    memset(out, 0, sizeof *out);
    size_t proto_len = (size_t)(addr - proto);
    if (proto_len == 1 && proto[0] == '1') {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port_number);
        return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? 0 : 501;
    }
    if (proto_len == 1 && proto[0] == '2') {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port_number);
        return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? 0 : 501;
    }
    return 522;
}

static socklen_t sockaddr_length(const struct sockaddr_storage *sa)
{
    return sa->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

/* -- preparing: PASV/EPSV, PORT/EPRT -------------------------------------- */

static void on_passive_accept(struct loop *loop, int fd, int ready, void *data);

/* A listener on the control connection's own address and a port of the
 * kernel's choosing, for exactly one connection. */
static int open_passive_listener(struct session *s, unsigned *port)
{
    struct sockaddr_storage addr = s->local_addr;
    if (addr.ss_family == AF_INET)
        ((struct sockaddr_in *)&addr)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)&addr)->sin6_port = 0;
    int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    socklen_t len = sizeof addr;
    if (bind(fd, (struct sockaddr *)&addr, sockaddr_length(&addr)) < 0 || listen(fd, 1) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    *port = port_of(&addr);
    return fd;
}

void data_enter_passive(struct session *s, bool extended)
{
    struct in_addr v4 = {0};
    bool has_v4 = ipv4_of(&s->local_addr, &v4);
    if (!extended && !has_v4) {
        session_reply(s, 425, "PASV works only over IPv4: use EPSV");
        return;
    }
    data_abort(s); /* a new PASV replaces whatever was prepared before */
    unsigned port;
    int fd = open_passive_listener(s, &port);
    if (fd < 0) {
        session_reply(s, 425, "Cannot open a passive port: %s", strerror(errno));
        return;
    }
    if (!loop_can_watch(s->server->loop, fd) ||
        loop_watch(s->server->loop, fd, LOOP_READABLE, on_passive_accept, s) < 0) {
        close(fd);
        session_reply(s, 425, "Cannot open a passive port: too many connections");
        return;
    }
    s->data.listen_fd = fd;
    s->data.mode = DATA_PASSIVE;
    if (extended) {
        session_reply(s, 229, "Entering Extended Passive Mode (|||%u|)", port);
    } else {
        uint32_t a = ntohl(v4.s_addr);
        session_reply(s, 227, "Entering Passive Mode (%u,%u,%u,%u,%u,%u)", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
                      a & 255, port >> 8, port & 255);
    }
}

void data_set_active(struct session *s, bool extended, const char *arg)
{
    struct sockaddr_storage addr;
    int verdict = extended ? parse_eprt_argument(arg, &addr) : (parse_port_argument(arg, &addr) ? 0 : 501);
    if (verdict == 522) {
        session_reply(s, 522, "Network protocol not supported, use (1,2)");
        return;
    }
    if (verdict != 0) {
        session_reply(s, 501, "Syntax error in %s argument", extended ? "EPRT" : "PORT");
        return;
    }
    if (!same_host(&addr, &s->peer_addr)) {
        log_event("fd %d: refused %s to another host", s->control_fd, extended ? "EPRT" : "PORT");
        session_reply(s, 501, "Data connections may only go to your own address");
        return;
    }
    /* Below 1024 live the well-known services: a PORT there is an attack
     * on them (RFC 2577), never a real client. */
    if (port_of(&addr) < 1024) {
        session_reply(s, 501, "Port %u refused: below 1024", port_of(&addr));
        return;
    }
    data_abort(s);
    s->data.mode = DATA_ACTIVE;
    s->data.active_addr = addr;
    s->data.active_len = sockaddr_length(&addr);
    session_reply(s, 200, "%s command successful", extended ? "EPRT" : "PORT");
}

/* -- connecting ----------------------------------------------------------- */

/* The data connection is up: watch it for what the transfer needs. */
static void begin_moving(struct session *s)
{
    struct data_channel *d = &s->data;
    int interest = d->transfer.kind == TRANSFER_RECEIVE_FILE ? LOOP_READABLE : LOOP_WRITABLE;
    if (loop_watch(s->server->loop, d->fd, interest, on_data_event, s) < 0)
        fail_transfer(s, 425, "Cannot watch the data connection: %s", strerror(errno));
}

static void on_passive_accept(struct loop *loop, int fd, int ready, void *data)
{
    (void)loop;
    (void)ready;
    struct session *s = data;
    struct sockaddr_storage peer_addr;
    char peer[ADDR_STRLEN];

    /* The address accept4 reports, not a later getpeername(): a client that
     * connected and reset at once is still told apart from an intruder (its
     * transfer then fails with 426 instead of waiting for ever). */
    int conn = accept_connection_from(fd, true, peer, &peer_addr);
    if (conn < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && !accept_error_is_transient(errno))
            drop_data_channel(s, "Cannot accept the data connection");
    } else if (!same_host(&peer_addr, &s->peer_addr)) {
        /* Someone else raced for the port: refused, keep waiting. */
        log_event("fd %d: refused data connection from %s", s->control_fd, peer);
        close(conn);
    } else if (!loop_can_watch(s->server->loop, conn)) {
        close(conn);
        errno = EMFILE;
        drop_data_channel(s, "Cannot open data connection");
    } else {
        log_verbose("fd %d: data connection fd %d from %s", s->control_fd, conn, peer);
        close_watched(s, &s->data.listen_fd);
        s->data.fd = conn;
        if (data_transfer_active(s))
            begin_moving(s);
    }
    session_settle(s);
}

/* PORT/EPRT: a non-blocking connect(); its end is reported as writable. */
static void start_connect(struct session *s)
{
    struct data_channel *d = &s->data;
    d->fd = socket(d->active_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->fd < 0) {
        fail_transfer(s, 425, "Cannot open data connection: %s", strerror(errno));
        return;
    }
    if (!loop_can_watch(s->server->loop, d->fd)) {
        fail_transfer(s, 425, "Cannot open data connection: too many connections");
        return;
    }
    if (connect(d->fd, (struct sockaddr *)&d->active_addr, d->active_len) < 0 && errno != EINPROGRESS) {
        fail_transfer(s, 425, "Cannot open data connection: %s", strerror(errno));
        return;
    }
    d->connecting = true;
    if (loop_watch(s->server->loop, d->fd, LOOP_WRITABLE, on_data_event, s) < 0)
        fail_transfer(s, 425, "Cannot watch the data connection: %s", strerror(errno));
}

static void finish_connect(struct session *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(s->data.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err != 0) {
        fail_transfer(s, 425, "Cannot open data connection: %s", strerror(err));
        return;
    }
    s->data.connecting = false;
    begin_moving(s);
}

void data_start_transfer(struct session *s, struct transfer *t, const char *preface)
{
    struct data_channel *d = &s->data;
    d->transfer = *t;
    *t = transfer_blank();
    session_reply(s, 150, "%s", preface);
    if (d->fd >= 0)
        begin_moving(s); /* passive, and the client connected already */
    else if (d->mode == DATA_ACTIVE)
        start_connect(s);
    /* else passive and not connected yet: on_passive_accept begins */
}

/* -- moving bytes --------------------------------------------------------- */

static void transfer_progress(struct session *s, size_t n)
{
    s->data.transfer.bytes += n;
    s->last_activity_ms = monotonic_ms();
    session_count_bytes(s, n);
}

/* The data connection is closed first, so the client sees the end of the
 * data (EOF) no later than the 226 that confirms it. */
static void finish_transfer(struct session *s)
{
    struct transfer *t = &s->data.transfer;
    if (t->kind == TRANSFER_RECEIVE_FILE) {
        int fd = t->file_fd;
        t->file_fd = -1;
        if (close(fd) < 0) { /* a deferred write error (NFS, quota) shows here */
            fail_transfer(s, 451, "Cannot store %s: %s", t->what, strerror(errno));
            return;
        }
        if (t->temp_name[0] && renameat(t->dir_fd, t->temp_name, t->dir_fd, t->final_name) < 0) {
            fail_transfer(s, 451, "Cannot store %s: %s", t->what, strerror(errno));
            return;
        }
        t->temp_name[0] = '\0'; /* it is the real file now */
    }
    unsigned long long bytes = t->bytes;
    static const char *const done[] = {
        [TRANSFER_SEND_FILE] = "sent",
        [TRANSFER_RECEIVE_FILE] = "received",
        [TRANSFER_SEND_LISTING] = "listed",
    };
    char safe[LOGGABLE_MAX];
    log_event("fd %d: %s %s, %llu bytes", s->control_fd, done[t->kind], loggable_string(t->what, safe), bytes);
    data_abort(s);
    session_reply(s, 226, "Transfer complete, %llu bytes", bytes);
}

static void send_file_chunk(struct session *s)
{
    struct transfer *t = &s->data.transfer;
    /* sendfile: the kernel copies from the page cache to the socket. On a
     * non-blocking socket it takes what fits in the send buffer. */
    ssize_t n = sendfile(s->data.fd, t->file_fd, &t->offset, SENDFILE_CHUNK);
    if (n > 0)
        transfer_progress(s, (size_t)n);
    else if (n == 0)
        finish_transfer(s); /* end of file */
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        fail_transfer(s, 426, "Data connection failed: %s", strerror(errno));
}

static bool write_all(int fd, const unsigned char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static void receive_file_chunk(struct session *s)
{
    struct transfer *t = &s->data.transfer;
    if (!t->buf && !(t->buf = buffer_get(&s->server->buffers))) {
        fail_transfer(s, 451, "Out of memory");
        return;
    }
    ssize_t n;
    do
        n = read(s->data.fd, t->buf->data, sizeof t->buf->data);
    while (n < 0 && errno == EINTR);
    if (n > 0) {
        /* A regular file is always "ready": this write waits for the disk
         * at worst, never for a peer. */
        if (!write_all(t->file_fd, t->buf->data, (size_t)n))
            fail_transfer(s, errno == ENOSPC || errno == EDQUOT ? 452 : 451, "Cannot write %s: %s", t->what,
                          strerror(errno));
        else
            transfer_progress(s, (size_t)n);
    } else if (n == 0) {
        finish_transfer(s); /* the client closed: the upload is complete */
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        fail_transfer(s, 426, "Data connection failed: %s", strerror(errno));
    }
}

/* Formats directory entries into the buffer until it is nearly full or
 * the directory ends; memory stays one buffer, however big the directory. */
static bool fill_listing(struct session *s)
{
    struct transfer *t = &s->data.transfer;
    struct buffer *buf = t->buf;
    time_t now = time(NULL);
    bool writable = !s->server->config.read_only;
    while (t->dir && buffer_room(buf) >= LISTING_LINE_MAX) {
        errno = 0;
        struct dirent *entry = readdir(t->dir);
        if (!entry) {
            if (errno != 0)
                return false;
            closedir(t->dir);
            t->dir = NULL;
            break;
        }
        const char *name = entry->d_name;
        struct stat st;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        /* AT_SYMLINK_NOFOLLOW: a link is described, never what it points
         * to, which may be outside the root. */
        if (fstatat(dirfd(t->dir), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* removed since readdir saw it */
        buf->end += listing_format_entry((char *)buf->data + buf->end, buffer_room(buf), t->format, name, &st, now,
                                         writable);
    }
    return true;
}

static void send_listing_chunk(struct session *s)
{
    struct transfer *t = &s->data.transfer;
    if (!t->buf && !(t->buf = buffer_get(&s->server->buffers))) {
        fail_transfer(s, 451, "Out of memory");
        return;
    }
    if (buffer_pending(t->buf) == 0 && !fill_listing(s)) {
        fail_transfer(s, 451, "Cannot read %s: %s", t->what, strerror(errno));
        return;
    }
    if (buffer_pending(t->buf) == 0) {
        finish_transfer(s);
        return;
    }
    ssize_t n = send(s->data.fd, t->buf->data + t->buf->start, buffer_pending(t->buf), MSG_NOSIGNAL);
    if (n > 0) {
        buffer_consume(t->buf, (size_t)n);
        transfer_progress(s, (size_t)n);
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        fail_transfer(s, 426, "Data connection failed: %s", strerror(errno));
    }
}

static void on_data_event(struct loop *loop, int fd, int ready, void *data)
{
    (void)loop;
    (void)fd;
    (void)ready;
    struct session *s = data;
    if (s->data.connecting) {
        finish_connect(s);
    } else {
        switch (s->data.transfer.kind) {
        case TRANSFER_SEND_FILE:
            send_file_chunk(s);
            break;
        case TRANSFER_RECEIVE_FILE:
            receive_file_chunk(s);
            break;
        case TRANSFER_SEND_LISTING:
            send_listing_chunk(s);
            break;
        case TRANSFER_NONE:
            break;
        }
    }
    session_settle(s);
}
