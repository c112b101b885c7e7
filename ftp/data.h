/* The data connection: where files and listings travel, apart from the
 * control connection's commands and replies.
 *
 * A session prepares one before each transfer, either passive (PASV/EPSV:
 * we listen, the client connects) or active (PORT/EPRT: we connect to the
 * client). Either way the new socket is non-blocking and joins the same
 * event loop as every control connection, so a client that stops reading
 * its data connection stalls only its own transfer.
 *
 *   prepared --transfer command--> 150 --connected--> moving --EOF/done--> 226
 *                                                        +--error/ABOR--> 426
 *
 * Bytes move in bounded steps, one per readiness event: sendfile() for
 * RETR (the file goes from the page cache to the socket without passing
 * through us), a pooled 64 KiB buffer for STOR and for listings. */
#ifndef FTP_DATA_H
#define FTP_DATA_H

#include "buffer.h"
#include "listing.h"
#include "paths.h"

#include <dirent.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/types.h>

struct session;

enum transfer_kind {
    TRANSFER_NONE,
    TRANSFER_SEND_FILE,    /* RETR */
    TRANSFER_RECEIVE_FILE, /* STOR, APPE */
    TRANSFER_SEND_LISTING, /* LIST, NLST, MLSD */
};

struct transfer {
    enum transfer_kind kind;
    int file_fd;               /* the file read or written; -1 for a listing */
    off_t offset;              /* SEND_FILE: the next byte sendfile() takes */
    DIR *dir;                  /* SEND_LISTING: entries not formatted yet (NULL once read) */
    enum listing_format format;
    struct buffer *buf;        /* SEND_LISTING: formatted lines not sent yet */
    int dir_fd;                /* RECEIVE_FILE into a temporary name: the directory */
    char temp_name[NAME_MAX + 1]; /* "" when writing in place (APPE, REST) */
    char final_name[NAME_MAX + 1];
    unsigned long long bytes;
    char what[VPATH_MAX];      /* the virtual path, for the log */
};

enum data_mode { DATA_NONE, DATA_PASSIVE, DATA_ACTIVE };

struct data_channel {
    enum data_mode mode;
    int listen_fd;    /* PASSIVE: our listening socket, until the client connects */
    int fd;           /* the data connection, -1 until it exists */
    bool connecting;  /* ACTIVE: the non-blocking connect() is in flight */
    struct sockaddr_storage active_addr; /* ACTIVE: where PORT/EPRT told us to connect */
    socklen_t active_len;
    struct transfer transfer;
};

void data_init(struct data_channel *data);

/* PASV (extended = false) and EPSV: open a listener and reply 227 / 229. */
void data_enter_passive(struct session *s, bool extended);

/* PORT (extended = false) and EPRT: check the address names the control
 * connection's peer (no FTP bounce) and reply 200, or 501 / 522. */
void data_set_active(struct session *s, bool extended, const char *arg);

bool data_is_prepared(const struct session *s);
bool data_transfer_active(const struct session *s);

/* Takes over *t (its descriptors and buffer), replies 150 with preface and
 * moves bytes as the data connection allows. 425 if none was prepared. */
void data_start_transfer(struct session *s, struct transfer *t, const char *preface);

/* A transfer's blank slate, descriptors -1. */
struct transfer transfer_blank(void);

/* Releases what a transfer holds that never reached data_start_transfer. */
void transfer_release(struct session *s, struct transfer *t);

/* Closes the data connection and any listener; an unfinished upload's
 * temporary file is removed. Returns whether a transfer was running. */
bool data_abort(struct session *s);

#endif
