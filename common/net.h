/* The socket helper every model shares, so that a model's own file shows
 * only what is particular to that model (Stevens' wrapsock.c, Bendersky's
 * utils.c). IPv4 and IPv6 alike. */
#ifndef IOMODELS_NET_H
#define IOMODELS_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "log.h"

/* "255.255.255.255:65535" or "[ffff:...:ffff]:65535", with room to spare. */
#define ADDR_STRLEN 64

/* Binds host:port (port 0: the kernel chooses), listens with the largest
 * backlog the kernel allows, and returns the socket. SO_REUSEADDR so a
 * restarted server need not wait out TIME_WAIT. Dies on failure. */
int listen_on(const char *host, int port, bool nonblocking);

/* Prints the readiness line "listening on ADDR:PORT" (the real port, also
 * after -p 0) on stdout and flushes it: tests and scripts wait for it. */
void announce_listening(int listen_fd);

/* accept4() with close-on-exec (and O_NONBLOCK if asked), then TCP_NODELAY;
 * writes the peer's "ADDR:PORT" into peer. Returns the descriptor, or -1
 * with errno set by accept4 (the caller decides what that means). */
int accept_connection(int listen_fd, bool nonblocking, char peer[ADDR_STRLEN]);

/* The same, also handing back the peer's address as accept4 reported it,
 * for a server that must check who connected (ftpd's passive data ports).
 * Unlike a later getpeername(), it is there even if the peer has already
 * reset the connection. */
int accept_connection_from(int listen_fd, bool nonblocking, char peer[ADDR_STRLEN], struct sockaddr_storage *addr);

/* Logs "refusing fd N from PEER: <why>" and closes fd: the one way every
 * server turns away a connection it has accepted but cannot serve. */
void refuse_connection(int fd, const char *peer, const char *why_fmt, ...) PRINTF_LIKE(3, 4);

/* What an accept error means for the loop that made it. */
bool accept_error_is_transient(int err);  /* the peer went away, EINTR...: try the next one */
bool accept_error_is_exhaustion(int err); /* EMFILE, ENFILE, ENOBUFS, ENOMEM: back off */

/* The descriptor policy every server shares. */
enum {
    /* Descriptors a server needs besides one per client: stdio, the
     * listener, the backend's own (epoll, io_uring), libc's, and one for a
     * connection accepted only to be refused. */
    SPARE_FDS = 16,
    /* Out of descriptors, accept fails again at once until one frees up:
     * a server stops accepting for this long (or until a connection
     * closes, where it can tell) instead of spinning on the listener. */
    ACCEPT_PAUSE_MS = 100,
};

/* The one log line for that pause; call it once per episode (when the
 * first accept fails), not on every retry. */
void warn_accept_paused(int err);

int set_nonblocking(int fd);
int set_nodelay(int fd);
void format_sockaddr(const struct sockaddr *sa, char *out, size_t out_len);

/* Raises the soft RLIMIT_NOFILE towards wanted (never above the hard
 * limit); returns the limit now in force, or -1 with errno set. */
long raise_fd_limit(long wanted);

/* A server's descriptors: raises the limit for max_clients connections and
 * SPARE_FDS more, and returns the limit in force (it may be lower: the hard
 * limit caps it, and the server pauses accepting when it runs out). Dies
 * if the limit cannot be read or set. */
long reserve_descriptors(long max_clients);

#endif
