/* The FTP server as a whole: what its command line decided, the one event
 * loop every socket of every session is watched by, and the table of
 * sessions. One thread owns all of it. */
#ifndef FTP_FTPD_H
#define FTP_FTPD_H

#include "buffer.h"
#include "clock.h"
#include "stats.h"

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct session;

struct ftp_config {
    int root_fd;            /* --root, opened once: every path resolves beneath it */
    bool read_only;         /* --read-only */
    long idle_timeout_ms;   /* --idle-timeout */
    const char *user;       /* --user NAME:PASSWORD, or NULL: anonymous */
    char *password;         /* a copy: wiped from argv */
    long max_clients;
};

struct ftp_server {
    struct ftp_config config;
    struct loop *loop;
    struct server_stats *stats; /* connections, commands (as messages), data bytes */
    struct buffer_pool buffers; /* uploads and listings borrow one while they run */
    int listen_fd;
    bool accept_paused;         /* out of descriptors: retried on the next tick */
    struct session *sessions;   /* a doubly linked list, for the tick and the shutdown */
    size_t session_count;
    unsigned long uploads_started; /* makes each temporary upload name unique */
};


#endif
