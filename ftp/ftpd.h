/* The FTP server as a whole: what its command line decided, the one event
 * loop every socket of every session is watched by, and the table of
 * sessions. One thread owns all of it. */
#ifndef FTP_FTPD_H
#define FTP_FTPD_H

#include "buffer.h"
#include "clock.h"
#include "list.h"
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
};

struct ftp_server {
    struct ftp_config config;
    struct loop *loop;
    struct server_stats *stats; /* connections, commands (as messages), data bytes */
    struct buffer_pool buffers; /* uploads and listings borrow one while they run */
    int listen_fd;
    int tick_ms;                /* how often idle sessions are looked for */
    bool accept_paused;         /* the listener asks for nothing until a session closes or a tick */
    bool out_of_descriptors;    /* since the last accept that succeeded: warned once */
    struct list_node sessions;  /* struct session.link: for the tick and the shutdown */
    size_t session_count;
    long max_sessions;          /* --max-clients, or fewer if the descriptors hold fewer */
    unsigned long uploads_started; /* makes each temporary upload name unique */
};

/* A session closed: descriptors are free again, so a paused listener
 * resumes at once. */
void server_resume_accepting(struct ftp_server *server);

#endif
