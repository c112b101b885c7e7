/* What each FTP command does: a table from verb to handler, and the
 * handlers. Every path goes through paths.c (confinement); every transfer
 * is handed to data.c once its file or directory is open. Reply codes are
 * those of RFC 959, 2428 (EPSV/EPRT), 3659 (SIZE/MDTM/MLSD/REST) and 2389
 * (FEAT/OPTS). */
#include "session.h"

#include "listing.h"
#include "paths.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Failed logins a session may make before it is closed. */
enum { MAX_LOGIN_FAILURES = 3 };

enum argument_rule { ARG_NONE, ARG_OPTIONAL, ARG_REQUIRED };

struct command {
    const char *verb;
    enum argument_rule argument;
    bool needs_login;
    bool writes; /* refused under --read-only */
    void (*run)(struct session *s, const char *arg);
};

static const struct ftp_config *config(const struct session *s)
{
    return &s->server->config;
}

/* Joins arg to the working directory, or replies 550 and returns false. */
static bool resolve(struct session *s, const char *arg, char vpath[VPATH_MAX])
{
    int err = path_join(s->cwd, arg, vpath);
    if (err == 0)
        return true;
    session_reply(s, 550, "%s: %s", arg, path_error_text(err));
    return false;
}

/* Out of descriptors or memory is transient (451: try again), whatever
 * the path; anything else is about the path itself (550). */
static int path_error_code(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS ? 451 : 550;
}

static void reply_path_error(struct session *s, const char *vpath, int err)
{
    session_reply(s, path_error_code(err), "%s: %s", vpath, path_error_text(err));
}

/* -- login and session ---------------------------------------------------- */

/* Compares without stopping at the first difference, so the time taken
 * does not tell a guesser how much of a password was right. */
static bool same_secret(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char diff = la != lb;
    for (size_t i = 0; i < la; i++)
        diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
    return diff == 0;
}

static void cmd_user(struct session *s, const char *arg)
{
    snprintf(s->user, sizeof s->user, "%s", arg);
    s->state = SESSION_USER_GIVEN;
    session_reply(s, 331, "Please specify the password");
}

static void cmd_pass(struct session *s, const char *arg)
{
    if (s->state != SESSION_USER_GIVEN) {
        session_reply(s, 503, "Login with USER first");
        return;
    }
    const struct ftp_config *c = config(s);
    /* Both compared, always: which one failed must not show in the time. */
    bool name_ok = c->user ? same_secret(s->user, c->user) : true;
    bool password_ok = c->user ? same_secret(arg, c->password) : true;
    bool accepted = name_ok && password_ok;
    if (accepted) {
        s->state = SESSION_LOGGED_IN;
        strcpy(s->cwd, "/");
        session_reply(s, 230, "Login successful");
        return;
    }
    s->state = SESSION_GREETED;
    if (++s->login_failures >= MAX_LOGIN_FAILURES) {
        session_reply(s, 421, "Too many failed logins");
        session_close_later(s, "too many failed logins");
        return;
    }
    session_reply(s, 530, "Login incorrect");
}

static void cmd_quit(struct session *s, const char *arg)
{
    (void)arg;
    session_reply(s, 221, "Goodbye");
    session_close_later(s, "quit");
}

static void cmd_noop(struct session *s, const char *arg)
{
    (void)arg;
    session_reply(s, 200, "NOOP ok");
}

static void cmd_syst(struct session *s, const char *arg)
{
    (void)arg;
    session_reply(s, 215, "UNIX Type: L8");
}

static void cmd_feat(struct session *s, const char *arg)
{
    (void)arg;
    static const char features[] = "211-Features:\r\n"
                                   " EPRT\r\n"
                                   " EPSV\r\n"
                                   " MDTM\r\n"
                                   " MLST type*;size*;modify*;perm*;\r\n"
                                   " PASV\r\n"
                                   " REST STREAM\r\n"
                                   " SIZE\r\n"
                                   " TVFS\r\n"
                                   " UTF8\r\n"
                                   "211 End\r\n";
    session_reply_raw(s, features, sizeof features - 1);
}

static void cmd_opts(struct session *s, const char *arg)
{
    if (strcasecmp(arg, "UTF8 ON") == 0 || strcasecmp(arg, "UTF8") == 0)
        session_reply(s, 200, "Always in UTF8 mode");
    else if (strncasecmp(arg, "MLST ", 5) == 0 || strcasecmp(arg, "MLST") == 0)
        session_reply(s, 200, "MLST OPTS type;size;modify;perm;");
    else
        session_reply(s, 501, "Option not understood");
}

static void cmd_type(struct session *s, const char *arg)
{
    /* Both types send the bytes as they are on disk, as most servers do:
     * the Unix line end is already what clients expect. */
    if (strcasecmp(arg, "I") == 0 || strcasecmp(arg, "L 8") == 0)
        session_reply(s, 200, "Switching to Binary mode");
    else if (strcasecmp(arg, "A") == 0 || strcasecmp(arg, "A N") == 0)
        session_reply(s, 200, "Switching to ASCII mode");
    else
        session_reply(s, 504, "Type %s not supported", arg);
}

static void cmd_mode(struct session *s, const char *arg)
{
    if (strcasecmp(arg, "S") == 0)
        session_reply(s, 200, "Mode set to Stream");
    else
        session_reply(s, 504, "Only Stream mode is supported");
}

static void cmd_stru(struct session *s, const char *arg)
{
    if (strcasecmp(arg, "F") == 0)
        session_reply(s, 200, "Structure set to File");
    else
        session_reply(s, 504, "Only File structure is supported");
}

/* ALLO only prepares a STOR, but it is marked as writing: a read-only
 * server says no before the upload rather than after. */
static void cmd_allo(struct session *s, const char *arg)
{
    (void)arg;
    session_reply(s, 202, "No storage allocation necessary");
}

/* -- directories ---------------------------------------------------------- */

/* Writes path into a PWD/MKD reply, doubling quotes as RFC 959 asks. */
static void quote_path(const char *path, char *out, size_t out_len)
{
    size_t w = 0;
    for (; *path && w + 2 < out_len; path++) {
        if (*path == '"')
            out[w++] = '"';
        out[w++] = *path;
    }
    out[w] = '\0';
}

static void cmd_pwd(struct session *s, const char *arg)
{
    (void)arg;
    char quoted[2 * VPATH_MAX];
    quote_path(s->cwd, quoted, sizeof quoted);
    session_reply(s, 257, "\"%s\" is the current directory", quoted);
}

static void change_directory(struct session *s, const char *arg)
{
    char vpath[VPATH_MAX];
    if (!resolve(s, arg, vpath))
        return;
    int fd = path_open(config(s)->root_fd, vpath, O_PATH | O_DIRECTORY, 0);
    if (fd < 0) {
        reply_path_error(s, vpath, errno);
        return;
    }
    close(fd);
    strcpy(s->cwd, vpath);
    session_reply(s, 250, "Directory changed to %s", vpath);
}

static void cmd_cwd(struct session *s, const char *arg)
{
    change_directory(s, arg);
}

static void cmd_cdup(struct session *s, const char *arg)
{
    (void)arg;
    change_directory(s, "..");
}

static void cmd_mkd(struct session *s, const char *arg)
{
    char vpath[VPATH_MAX], name[NAME_MAX + 1];
    if (!resolve(s, arg, vpath))
        return;
    int dir_fd = path_open_parent(config(s)->root_fd, vpath, name, sizeof name);
    if (dir_fd < 0 || mkdirat(dir_fd, name, 0755) < 0) {
        reply_path_error(s, vpath, errno);
    } else {
        char quoted[2 * VPATH_MAX];
        quote_path(vpath, quoted, sizeof quoted);
        session_reply(s, 257, "\"%s\" created", quoted);
    }
    if (dir_fd >= 0)
        close(dir_fd);
}

/* DELE and RMD: unlinkat() removes the name itself, so a link is removed,
 * never what it points to. */
static void remove_entry(struct session *s, const char *arg, int flags)
{
    char vpath[VPATH_MAX], name[NAME_MAX + 1];
    if (!resolve(s, arg, vpath))
        return;
    int dir_fd = path_open_parent(config(s)->root_fd, vpath, name, sizeof name);
    if (dir_fd < 0 || unlinkat(dir_fd, name, flags) < 0)
        reply_path_error(s, vpath, errno);
    else
        session_reply(s, 250, "%s removed", vpath);
    if (dir_fd >= 0)
        close(dir_fd);
}

static void cmd_dele(struct session *s, const char *arg)
{
    remove_entry(s, arg, 0);
}

static void cmd_rmd(struct session *s, const char *arg)
{
    remove_entry(s, arg, AT_REMOVEDIR);
}

static void cmd_rnfr(struct session *s, const char *arg)
{
    char vpath[VPATH_MAX], name[NAME_MAX + 1];
    struct stat st;
    if (!resolve(s, arg, vpath))
        return;
    int dir_fd = path_open_parent(config(s)->root_fd, vpath, name, sizeof name);
    if (dir_fd < 0 || fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        reply_path_error(s, vpath, errno);
    } else {
        strcpy(s->rename_from, vpath);
        session_reply(s, 350, "Ready for RNTO");
    }
    if (dir_fd >= 0)
        close(dir_fd);
}

static void cmd_rnto(struct session *s, const char *arg)
{
    char from[VPATH_MAX], to[VPATH_MAX], from_name[NAME_MAX + 1], to_name[NAME_MAX + 1];
    strcpy(from, s->rename_from);
    s->rename_from[0] = '\0';
    if (from[0] == '\0') {
        session_reply(s, 503, "RNFR required first");
        return;
    }
    if (!resolve(s, arg, to))
        return;
    int root = config(s)->root_fd;
    int from_dir = path_open_parent(root, from, from_name, sizeof from_name);
    int to_dir = from_dir < 0 ? -1 : path_open_parent(root, to, to_name, sizeof to_name);
    int err = 0;
    if (from_dir < 0 || to_dir < 0 || renameat(from_dir, from_name, to_dir, to_name) < 0)
        err = errno; /* set by whichever call failed: nothing runs after it */
    if (err)
        session_reply(s, path_error_code(err), "Rename to %s: %s", to, path_error_text(err));
    else
        session_reply(s, 250, "Renamed %s to %s", from, to);
    if (from_dir >= 0)
        close(from_dir);
    if (to_dir >= 0)
        close(to_dir);
}

/* -- information about one file ------------------------------------------ */

/* Stats a path without opening what it names (O_PATH: a FIFO or a device
 * is not touched). */
static bool stat_path(struct session *s, const char *arg, char vpath[VPATH_MAX], struct stat *st)
{
    if (!resolve(s, arg, vpath))
        return false;
    int fd = path_open(config(s)->root_fd, vpath, O_PATH, 0);
    if (fd < 0 || fstat(fd, st) < 0) {
        reply_path_error(s, vpath, errno);
        if (fd >= 0)
            close(fd);
        return false;
    }
    close(fd);
    return true;
}

static void cmd_size(struct session *s, const char *arg)
{
    char vpath[VPATH_MAX];
    struct stat st;
    if (!stat_path(s, arg, vpath, &st))
        return;
    if (S_ISREG(st.st_mode))
        session_reply(s, 213, "%lld", (long long)st.st_size);
    else
        session_reply(s, 550, "%s: Not a regular file", vpath);
}

static void cmd_mdtm(struct session *s, const char *arg)
{
    char vpath[VPATH_MAX], stamp[15];
    struct stat st;
    if (!stat_path(s, arg, vpath, &st))
        return;
    listing_timestamp(stamp, st.st_mtime);
    session_reply(s, 213, "%s", stamp);
}

static void cmd_mlst(struct session *s, const char *arg)
{
    char vpath[VPATH_MAX], facts[128], text[2 * VPATH_MAX + 256];
    struct stat st;
    if (!stat_path(s, *arg ? arg : ".", vpath, &st))
        return;
    listing_facts(facts, sizeof facts, &st, !config(s)->read_only);
    int n = snprintf(text, sizeof text, "250-Listing %s\r\n %s %s\r\n250 End\r\n", vpath, facts, vpath);
    if (n > 0 && (size_t)n < sizeof text && !strpbrk(vpath, "\r"))
        session_reply_raw(s, text, (size_t)n);
    else
        session_reply(s, 501, "Cannot describe %s", vpath);
}

/* -- data connection setup ------------------------------------------------ */

static bool refuse_after_epsv_all(struct session *s)
{
    if (s->epsv_all)
        session_reply(s, 503, "Only EPSV is accepted after EPSV ALL");
    return s->epsv_all;
}

static void cmd_pasv(struct session *s, const char *arg)
{
    (void)arg;
    if (!refuse_after_epsv_all(s))
        data_enter_passive(s, false);
}

/* EPSV's protocol number: 1 for IPv4, also when an IPv4 client reached a
 * dual-stack listener and shows as ::ffff:a.b.c.d; 2 for IPv6. */
static const char *control_protocol(const struct session *s)
{
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&s->local_addr;
    bool v4 = s->local_addr.ss_family == AF_INET ||
              (s->local_addr.ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr));
    return v4 ? "1" : "2";
}

static void cmd_epsv(struct session *s, const char *arg)
{
    const char *protocol = control_protocol(s);
    if (strcasecmp(arg, "ALL") == 0) {
        s->epsv_all = true;
        session_reply(s, 200, "EPSV ALL ok");
    } else if (*arg == '\0' || strcmp(arg, protocol) == 0) {
        data_enter_passive(s, true);
    } else if (strspn(arg, "0123456789") == strlen(arg)) {
        /* RFC 2428: an unsupported protocol number gets 522 and the list
         * of those that work, here the control connection's own. */
        session_reply(s, 522, "Network protocol not supported, use (%s)", protocol);
    } else {
        session_reply(s, 501, "EPSV takes no argument, 1, 2 or ALL");
    }
}

static void cmd_port(struct session *s, const char *arg)
{
    if (!refuse_after_epsv_all(s))
        data_set_active(s, false, arg);
}

static void cmd_eprt(struct session *s, const char *arg)
{
    if (!refuse_after_epsv_all(s))
        data_set_active(s, true, arg);
}

static void cmd_rest(struct session *s, const char *arg)
{
    char *end;
    errno = 0;
    long long offset = strtoll(arg, &end, 10);
    if (arg[0] < '0' || arg[0] > '9' || *end != '\0' || errno != 0) {
        session_reply(s, 501, "REST needs a byte offset");
        return;
    }
    s->restart_offset = (off_t)offset;
    session_reply(s, 350, "Restarting at %lld. Send RETR or STOR to start the transfer", offset);
}

static void cmd_abor(struct session *s, const char *arg)
{
    (void)arg;
    if (data_abort(s)) {
        char safe[LOGGABLE_MAX];
        log_event("fd %d: transfer of %s aborted by the client", s->control_fd,
                  loggable_string(s->data.transfer.what, safe));
        session_reply(s, 426, "Transfer aborted");
        session_reply(s, 226, "ABOR successful");
    } else {
        session_reply(s, 225, "No transfer to abort");
    }
}

/* -- transfers ------------------------------------------------------------ */

/* A transfer command that failed after its data connection was prepared:
 * that connection is closed too, as the client will prepare a new one. */
static void refuse_transfer(struct session *s, struct transfer *t)
{
    transfer_release(s, t);
    data_abort(s);
}

/* The start of every transfer command: 425 unless PASV/EPSV/PORT/EPRT
 * came first (checked before any file is opened, so a refusal leaves
 * nothing behind), then the path, or 550 and the prepared connection
 * closed. */
static bool prepare_transfer(struct session *s, const char *arg, struct transfer *t)
{
    if (!data_is_prepared(s)) {
        session_reply(s, 425, "Use PASV, EPSV, PORT or EPRT first");
        return false;
    }
    if (!resolve(s, arg, t->what)) {
        data_abort(s);
        return false;
    }
    return true;
}

static void cmd_retr(struct session *s, const char *arg)
{
    off_t offset = s->restart_offset;
    s->restart_offset = 0;
    struct transfer t = transfer_blank();
    struct stat st;
    if (!prepare_transfer(s, arg, &t))
        return;
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    t.file_fd = path_open(config(s)->root_fd, t.what, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
    if (t.file_fd < 0 || fstat(t.file_fd, &st) < 0) {
        reply_path_error(s, t.what, errno);
    } else if (!S_ISREG(st.st_mode)) {
        session_reply(s, 550, "%s: Not a regular file", t.what);
    } else if (offset > st.st_size) {
        session_reply(s, 554, "Restart offset %lld is beyond the end of the file", (long long)offset);
    } else {
        char preface[VPATH_MAX + 64];
        t.kind = TRANSFER_SEND_FILE;
        t.offset = offset;
        snprintf(preface, sizeof preface, "Opening data connection for %s (%lld bytes)", t.what,
                 (long long)(st.st_size - offset));
        data_start_transfer(s, &t, preface);
        return;
    }
    refuse_transfer(s, &t);
}

/* STOR: written under a temporary name in the same directory, renamed over
 * the target only once complete, so a cut connection or a shutdown never
 * leaves half a file under the real name. Replies 550 itself on failure. */
static bool open_temporary_upload(struct session *s, struct transfer *t)
{
    struct stat st;
    t->dir_fd = path_open_parent(config(s)->root_fd, t->what, t->final_name, sizeof t->final_name);
    if (t->dir_fd < 0) {
        reply_path_error(s, t->what, errno);
        return false;
    }
    if (fstatat(t->dir_fd, t->final_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
        reply_path_error(s, t->what, EISDIR);
        return false;
    }
    snprintf(t->temp_name, sizeof t->temp_name, ".%.200s.ftpd-%ld-%lu.part", t->final_name, (long)getpid(),
             ++s->server->uploads_started);
    t->file_fd = openat(t->dir_fd, t->temp_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (t->file_fd < 0) {
        t->temp_name[0] = '\0'; /* not ours to remove */
        reply_path_error(s, t->what, errno);
        return false;
    }
    return true;
}

/* APPE, and STOR after REST: by definition they extend the file that is
 * there, so they write in place. Only APPE creates a missing file: a
 * resume of nothing is refused and must leave nothing behind. Replies
 * itself on failure. */
static bool open_in_place_upload(struct session *s, struct transfer *t, bool append, off_t offset)
{
    struct stat st;
    int flags = O_WRONLY | O_NONBLOCK | O_NOCTTY | (append ? O_APPEND | O_CREAT : 0);
    t->file_fd = path_open(config(s)->root_fd, t->what, flags, 0644);
    if (t->file_fd < 0 || fstat(t->file_fd, &st) < 0) {
        reply_path_error(s, t->what, errno);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        session_reply(s, 550, "%s: Not a regular file", t->what);
        return false;
    }
    if (append)
        return true;
    if (offset > st.st_size) {
        session_reply(s, 554, "Restart offset %lld is beyond the end of the file", (long long)offset);
        return false;
    }
    /* What was after the offset is replaced by what the client sends. */
    if (ftruncate(t->file_fd, offset) < 0 || lseek(t->file_fd, offset, SEEK_SET) < 0) {
        reply_path_error(s, t->what, errno);
        return false;
    }
    return true;
}

static void start_upload(struct session *s, const char *arg, bool append)
{
    off_t offset = s->restart_offset;
    s->restart_offset = 0;
    struct transfer t = transfer_blank();
    if (!prepare_transfer(s, arg, &t))
        return;
    bool opened = (append || offset > 0) ? open_in_place_upload(s, &t, append, offset)
                                         : open_temporary_upload(s, &t);
    if (!opened) {
        refuse_transfer(s, &t);
        return;
    }
    char preface[VPATH_MAX + 64];
    t.kind = TRANSFER_RECEIVE_FILE;
    snprintf(preface, sizeof preface, "Ready to receive %s", t.what);
    data_start_transfer(s, &t, preface);
}

static void cmd_stor(struct session *s, const char *arg)
{
    start_upload(s, arg, false);
}

static void cmd_appe(struct session *s, const char *arg)
{
    start_upload(s, arg, true);
}

/* Clients often pass ls options ("LIST -la"); the server's format is
 * fixed, so they are skipped. */
static const char *skip_ls_options(const char *arg)
{
    while (arg[0] == '-') {
        const char *space = strchr(arg, ' ');
        arg = space ? space + 1 : "";
        while (*arg == ' ')
            arg++;
    }
    return arg;
}

/* A listing of one entry that is not a directory (LIST file). */
static bool list_single_entry(struct session *s, struct transfer *t)
{
    char name[NAME_MAX + 1];
    struct stat st;
    int dir_fd = path_open_parent(config(s)->root_fd, t->what, name, sizeof name);
    bool ok = dir_fd >= 0 && fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
    int err = errno;
    if (dir_fd >= 0)
        close(dir_fd);
    if (!ok) {
        errno = err;
        return false;
    }
    t->buf = buffer_get(&s->server->buffers);
    if (!t->buf)
        return false;
    t->buf->end = listing_format_entry((char *)t->buf->data, sizeof t->buf->data, t->format, name, &st, time(NULL),
                                       !config(s)->read_only);
    return true;
}

static void start_listing(struct session *s, const char *arg, enum listing_format format)
{
    struct transfer t = transfer_blank();
    t.kind = TRANSFER_SEND_LISTING;
    t.format = format;
    if (!prepare_transfer(s, skip_ls_options(arg), &t))
        return;
    int fd = path_open(config(s)->root_fd, t.what, O_RDONLY | O_DIRECTORY, 0);
    if (fd >= 0) {
        t.dir = fdopendir(fd);
        if (!t.dir) {
            reply_path_error(s, t.what, errno);
            close(fd);
            refuse_transfer(s, &t);
            return;
        }
    } else if (errno != ENOTDIR || format == LISTING_FACTS || !list_single_entry(s, &t)) {
        if (errno == ENOTDIR)
            session_reply(s, 501, "%s: Not a directory", t.what);
        else
            reply_path_error(s, t.what, errno);
        refuse_transfer(s, &t);
        return;
    }
    data_start_transfer(s, &t, "Here comes the directory listing");
}

static void cmd_list(struct session *s, const char *arg)
{
    start_listing(s, arg, LISTING_LONG);
}

static void cmd_nlst(struct session *s, const char *arg)
{
    start_listing(s, arg, LISTING_NAMES);
}

static void cmd_mlsd(struct session *s, const char *arg)
{
    start_listing(s, arg, LISTING_FACTS);
}

/* -- dispatch ------------------------------------------------------------- */

static const struct command commands[] = {
    /* verb    argument      login  writes */
    {"USER", ARG_REQUIRED, false, false, cmd_user},
    {"PASS", ARG_OPTIONAL, false, false, cmd_pass},
    {"QUIT", ARG_NONE, false, false, cmd_quit},
    {"NOOP", ARG_NONE, false, false, cmd_noop},
    {"FEAT", ARG_NONE, false, false, cmd_feat},
    {"OPTS", ARG_REQUIRED, false, false, cmd_opts},
    {"SYST", ARG_NONE, true, false, cmd_syst},
    {"TYPE", ARG_REQUIRED, true, false, cmd_type},
    {"MODE", ARG_REQUIRED, true, false, cmd_mode},
    {"STRU", ARG_REQUIRED, true, false, cmd_stru},
    {"ALLO", ARG_OPTIONAL, true, true, cmd_allo},
    {"PWD", ARG_NONE, true, false, cmd_pwd},
    {"XPWD", ARG_NONE, true, false, cmd_pwd},
    {"CWD", ARG_REQUIRED, true, false, cmd_cwd},
    {"XCWD", ARG_REQUIRED, true, false, cmd_cwd},
    {"CDUP", ARG_NONE, true, false, cmd_cdup},
    {"XCUP", ARG_NONE, true, false, cmd_cdup},
    {"PASV", ARG_NONE, true, false, cmd_pasv},
    {"EPSV", ARG_OPTIONAL, true, false, cmd_epsv},
    {"PORT", ARG_REQUIRED, true, false, cmd_port},
    {"EPRT", ARG_REQUIRED, true, false, cmd_eprt},
    {"REST", ARG_REQUIRED, true, false, cmd_rest},
    {"ABOR", ARG_NONE, true, false, cmd_abor},
    {"LIST", ARG_OPTIONAL, true, false, cmd_list},
    {"NLST", ARG_OPTIONAL, true, false, cmd_nlst},
    {"MLSD", ARG_OPTIONAL, true, false, cmd_mlsd},
    {"MLST", ARG_OPTIONAL, true, false, cmd_mlst},
    {"SIZE", ARG_REQUIRED, true, false, cmd_size},
    {"MDTM", ARG_REQUIRED, true, false, cmd_mdtm},
    {"RETR", ARG_REQUIRED, true, false, cmd_retr},
    {"STOR", ARG_REQUIRED, true, true, cmd_stor},
    {"APPE", ARG_REQUIRED, true, true, cmd_appe},
    {"DELE", ARG_REQUIRED, true, true, cmd_dele},
    {"MKD", ARG_REQUIRED, true, true, cmd_mkd},
    {"XMKD", ARG_REQUIRED, true, true, cmd_mkd},
    {"RMD", ARG_REQUIRED, true, true, cmd_rmd},
    {"XRMD", ARG_REQUIRED, true, true, cmd_rmd},
    {"RNFR", ARG_REQUIRED, true, true, cmd_rnfr},
    {"RNTO", ARG_REQUIRED, true, true, cmd_rnto},
};

static const struct command *find_command(const char *verb)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcasecmp(verb, commands[i].verb) == 0)
            return &commands[i];
    return NULL;
}

/* A verb is three or four letters; anything else is not worth a lookup. */
static bool plausible_verb(const char *verb)
{
    size_t n = strlen(verb);
    if (n < 3 || n > 4)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((verb[i] >= 'A' && verb[i] <= 'Z') || (verb[i] >= 'a' && verb[i] <= 'z')))
            return false;
    return true;
}

void command_execute(struct session *s, char *line)
{
    char *space = strchr(line, ' ');
    const char *arg = "";
    if (space) {
        *space = '\0';
        arg = space + 1;
    }
    if (log_enabled(LOG_VERBOSE)) {
        char verb[LOGGABLE_MAX], argument[LOGGABLE_MAX];
        log_verbose("fd %d: < %s%s%s", s->control_fd, loggable_string(line, verb), space ? " " : "",
                    strcasecmp(line, "PASS") == 0 ? "****" : loggable_string(arg, argument));
    }

    const struct command *cmd = plausible_verb(line) ? find_command(line) : NULL;
    /* A REST offset applies to the transfer command straight after it
     * (RFC 959, RFC 3659 5.3); any other command forgets it. */
    if (!cmd || (cmd->run != cmd_rest && cmd->run != cmd_retr && cmd->run != cmd_stor))
        s->restart_offset = 0;
    if (!cmd) {
        session_reply(s, 500, "Unknown command");
        return;
    }
    /* RNTO must come straight after RNFR (RFC 959). */
    if (cmd->run != cmd_rnfr && cmd->run != cmd_rnto)
        s->rename_from[0] = '\0';
    if (cmd->needs_login && s->state != SESSION_LOGGED_IN)
        session_reply(s, 530, "Please log in with USER and PASS");
    else if (cmd->writes && config(s)->read_only)
        session_reply(s, 550, "Permission denied: the server is read-only");
    else if (cmd->argument == ARG_REQUIRED && *arg == '\0')
        session_reply(s, 501, "%s needs an argument", cmd->verb);
    else if (cmd->argument == ARG_NONE && *arg != '\0')
        session_reply(s, 501, "%s takes no argument", cmd->verb);
    else
        cmd->run(s, arg);
}
