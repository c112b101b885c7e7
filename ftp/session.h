/* One client's FTP session: its control connection, the state of its
 * dialogue, and its data channel.
 *
 *            USER             PASS (accepted)
 *   greeted -------> user given -------------> logged in --QUIT--> closed
 *      ^                 |  PASS refused (530)     |  \
 *      +-----------------+                         |   RNFR -> rename pending -> RNTO
 *                                                  |   REST -> offset pending -> RETR/STOR
 *                                                  |   (any other command ends either pending state)
 *                                                  +-- transfer running: only ABOR is read,
 *                                                      later commands wait their turn
 *
 * Any state: idle longer than --idle-timeout -> 421, closed; the peer
 * closes or errs -> closed. An unknown command gets 500, a bad argument
 * 501, and the session goes on. */
#ifndef FTP_SESSION_H
#define FTP_SESSION_H

#include "data.h"
#include "ftpd.h"
#include "log.h"
#include "net.h"
#include "paths.h"

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

/* RFC 959 leaves the length open; about 512 bytes is the custom. Longer
 * lines get 500 and are dropped without ever being stored. */
enum {
    COMMAND_LINE_MAX = 512,
    CONTROL_IN_SIZE = 1024,
    CONTROL_OUT_SIZE = 8192,
    /* Commands are read only while this much reply room is left, so a
     * client that sends without reading its replies is paused, not grown. */
    REPLY_RESERVE = 3 * 1024,
};

enum session_state {
    SESSION_GREETED,   /* waiting for USER */
    SESSION_USER_GIVEN, /* waiting for PASS */
    SESSION_LOGGED_IN,
};

struct session {
    struct ftp_server *server;
    struct list_node link;       /* in the server's table */

    int control_fd;
    int control_interest;        /* what the loop watches it for now */
    struct sockaddr_storage peer_addr;  /* data connections must come from / go to this address */
    struct sockaddr_storage local_addr; /* passive listeners bind here */

    enum session_state state;
    char user[256];
    int login_failures;
    char cwd[VPATH_MAX];         /* a virtual path: "/" is --root */
    char rename_from[VPATH_MAX]; /* "" unless RNFR just succeeded */
    off_t restart_offset;        /* REST, for the next RETR or STOR */
    bool epsv_all;               /* EPSV ALL: only EPSV from now on (RFC 2428) */
    int64_t last_activity_ms;

    const char *close_reason;    /* non-NULL: closed when this event ends, after a last flush */

    size_t in_len;
    bool discarding;             /* inside a line that was too long */
    char in[CONTROL_IN_SIZE];
    size_t out_start, out_end;
    char out[CONTROL_OUT_SIZE];

    struct data_channel data;
};

/* Takes a freshly accepted control connection and its peer's address:
 * greets it (220) and watches it. On failure the descriptor is closed and
 * a line logged. */
void session_open(struct ftp_server *server, int fd, const struct sockaddr_storage *peer_addr);

/* Closes everything the session holds and frees it. */
void session_destroy(struct session *s);

/* Queues one reply line "CODE text\r\n". */
void session_reply(struct session *s, int code, const char *fmt, ...) PRINTF_LIKE(3, 4);

/* Queues preformatted text (a multi-line reply, CRLFs included). */
void session_reply_raw(struct session *s, const char *text, size_t len);

/* Marks the session to be closed at the end of the current event, once
 * its replies have had one last chance to leave. */
void session_close_later(struct session *s, const char *reason);

/* Called at the end of every event handler that touched the session: runs
 * the commands waiting in its input, sends replies, updates what the
 * control socket is watched for, and destroys the session if it is over.
 * The session must not be used after this returns. */
void session_settle(struct session *s);

/* The server's tick: honours a Telnet Synch that arrived while the session
 * could not read, and closes the session with 421 if it has been idle too
 * long. The session must not be used after this returns. */
void session_tick(struct session *s, int64_t now_ms);

/* What a peer sent, made safe to log: control bytes, C1 controls, bytes
 * that are not UTF-8 and the backslash become \xHH escapes, so no client
 * can forge a log line or drive the terminal. Returns out. */
enum { LOGGABLE_MAX = 4 * VPATH_MAX + 1 };
const char *loggable(const char *text, size_t len, char out[LOGGABLE_MAX]);
static inline const char *loggable_string(const char *text, char out[LOGGABLE_MAX])
{
    return loggable(text, strlen(text), out);
}

/* Run one command line (commands.c). */
void command_execute(struct session *s, char *line);

/* The bytes moved on data connections, for the summary. */
void session_count_bytes(struct session *s, size_t n);

#endif
