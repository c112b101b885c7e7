/* The control connection: reading command lines, queueing replies, and the
 * life of a session from greeting to close. What each command does is in
 * commands.c; the data connection is in data.c. */
#include "session.h"

#include "../multiplexing/loop.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Telnet command bytes (RFC 854): SE is the lowest, WILL the first of the
 * four that take an option byte (WILL, WONT, DO, DONT). */
enum { TELNET_IAC = 0xFF, TELNET_WILL = 0xFB, TELNET_DM = 0xF2, TELNET_SE = 0xF0 };

static void on_control_event(struct loop *loop, int fd, int ready, void *data);

void session_count_bytes(struct session *s, size_t n)
{
    atomic_fetch_add_explicit(&s->server->stats->bytes, n, memory_order_relaxed);
}

/* The local address passive listeners bind to, and the urgent-data
 * setting ABOR needs: clients send it as TCP urgent data (the Telnet
 * "Synch"), which must stay in the byte stream to be read as a line. */
static bool prepare_control_socket(struct session *s)
{
    socklen_t len = sizeof s->local_addr;
    if (getsockname(s->control_fd, (struct sockaddr *)&s->local_addr, &len) < 0)
        return false;
    int on = 1;
    return setsockopt(s->control_fd, SOL_SOCKET, SO_OOBINLINE, &on, sizeof on) == 0;
}

void session_open(struct ftp_server *server, int fd, const struct sockaddr_storage *peer_addr)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s) {
        warn("session for fd %d: out of memory", fd);
        close(fd);
        return;
    }
    s->server = server;
    s->control_fd = fd;
    s->peer_addr = *peer_addr;
    strcpy(s->cwd, "/");
    s->last_activity_ms = monotonic_ms();
    data_init(&s->data);

    if (!prepare_control_socket(s)) {
        warn_errno("session for fd %d", fd);
        close(fd);
        free(s);
        return;
    }
    list_add(&server->sessions, &s->link);
    server->session_count++;
    session_reply(s, 220, "iomodels ftpd ready");
    session_settle(s);
}

void session_destroy(struct session *s)
{
    struct ftp_server *server = s->server;
    char safe[LOGGABLE_MAX];
    if (data_abort(s))
        log_event("fd %d: transfer of %s aborted", s->control_fd, loggable_string(s->data.transfer.what, safe));
    loop_unwatch(server->loop, s->control_fd);
    log_event("closing fd %d%s%s", s->control_fd, s->close_reason ? ": " : "",
              s->close_reason ? s->close_reason : "");
    close(s->control_fd);
    list_del(&s->link);
    server->session_count--;
    free(s);
    server_resume_accepting(server);
}

void session_close_later(struct session *s, const char *reason)
{
    if (!s->close_reason)
        s->close_reason = reason;
}

/* How many bytes of well-formed UTF-8 start at p (1 to 4), or 0. C1
 * controls (U+0080 to U+009F) count as not well-formed: some terminals
 * obey them. */
static size_t utf8_length(const unsigned char *p, size_t left)
{
    size_t n = p[0] >= 0xF5 ? 0 : p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC2 ? 2 : 0;
    if (n == 0 || n > left || (p[0] == 0xC2 && p[1] < 0xA0))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0) || (p[0] == 0xF0 && p[1] < 0x90) ||
        (p[0] == 0xF4 && p[1] >= 0x90))
        return 0; /* overlong, a surrogate, or beyond U+10FFFF */
    return n;
}

const char *loggable(const char *text, size_t len, char out[LOGGABLE_MAX])
{
    const unsigned char *p = (const unsigned char *)text;
    size_t w = 0;
    for (size_t i = 0; i < len && w + 5 <= LOGGABLE_MAX;) {
        size_t n = p[i] >= 0x80 ? utf8_length(p + i, len - i) : (p[i] >= 0x20 && p[i] < 0x7F && p[i] != '\\');
        if (n == 0) {
            w += (size_t)snprintf(out + w, LOGGABLE_MAX - w, "\\x%02x", p[i]);
            i++;
        } else {
            memcpy(out + w, p + i, n);
            w += n;
            i += n;
        }
    }
    out[w] = '\0';
    return out;
}

/* -- replies ---------------------------------------------------------- */

void session_reply_raw(struct session *s, const char *text, size_t len)
{
    if (s->out_start > 0 && CONTROL_OUT_SIZE - s->out_end < len) {
        memmove(s->out, s->out + s->out_start, s->out_end - s->out_start);
        s->out_end -= s->out_start;
        s->out_start = 0;
    }
    if (CONTROL_OUT_SIZE - s->out_end < len) {
        /* Cannot happen while commands are read only with REPLY_RESERVE
         * free; if it does, the client is not reading and goes. */
        session_close_later(s, "reply buffer full");
        return;
    }
    memcpy(s->out + s->out_end, text, len);
    s->out_end += len;
}

void session_reply(struct session *s, int code, const char *fmt, ...)
{
    char line[2 * VPATH_MAX + 128];
    int n = snprintf(line, sizeof line, "%03d ", code);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 2, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof line - 3)
        len = sizeof line - 3; /* a reply is cut rather than overflowing */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\r' || line[i] == '\n')
            line[i] = ' '; /* a name echoed back must not end the reply early */
    line[len++] = '\r';
    line[len++] = '\n';
    session_reply_raw(s, line, len);
    if (log_enabled(LOG_VERBOSE)) {
        char safe[LOGGABLE_MAX];
        log_verbose("fd %d: > %s", s->control_fd, loggable(line, len - 2, safe));
    }
}

/* Sends what the socket takes now; the rest waits for writability. */
static void flush_replies(struct session *s)
{
    while (s->out_start < s->out_end) {
        ssize_t n = send(s->control_fd, s->out + s->out_start, s->out_end - s->out_start, MSG_NOSIGNAL);
        if (n > 0) {
            s->out_start += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        session_close_later(s, n < 0 ? strerror(errno) : "send returned 0");
        s->out_start = s->out_end; /* nothing more can reach this peer */
    }
    s->out_start = s->out_end = 0;
}

/* -- command lines ---------------------------------------------------- */

/* Removes the Telnet commands a client may put in a command line (RFC
 * 854): IAC and a command byte (0xF0 to 0xFA, IP and DM before ABOR
 * among them), three bytes for an option negotiation (IAC WILL, WONT, DO
 * or DONT and the option), and IAC IAC, an escaped 0xFF, becomes one
 * 0xFF. Any other byte after IAC is not a Telnet command, so both bytes
 * stay: they are part of a file name. */
static void strip_telnet(char *line)
{
    unsigned char *r = (unsigned char *)line, *w = r;
    while (*r) {
        if (r[0] != TELNET_IAC || r[1] < TELNET_SE) {
            *w++ = *r++;
        } else if (r[1] == TELNET_IAC) {
            *w++ = TELNET_IAC;
            r += 2;
        } else if (r[1] >= TELNET_WILL) {
            r += r[2] ? 3 : 2; /* the option byte, unless the line ends first */
        } else {
            r += 2;
        }
    }
    *w = '\0';
}

static void drop_input(struct session *s, size_t n)
{
    memmove(s->in, s->in + n, s->in_len - n);
    s->in_len -= n;
}

/* Copies the next complete line (without CR LF) into line and returns
 * true, or returns false if no whole line is there yet. A line too long
 * is answered with 500 here and skipped up to its end. */
static bool next_line(struct session *s, char line[COMMAND_LINE_MAX], size_t *taken)
{
    for (;;) {
        char *newline = memchr(s->in, '\n', s->in_len);
        if (s->discarding) {
            if (!newline) {
                s->in_len = 0;
                return false;
            }
            drop_input(s, (size_t)(newline - s->in) + 1);
            s->discarding = false;
            continue;
        }
        size_t len = newline ? (size_t)(newline - s->in) : s->in_len;
        if (len >= COMMAND_LINE_MAX) {
            session_reply(s, 500, "Command line too long");
            s->discarding = true;
            continue;
        }
        if (!newline)
            return false;
        *taken = len + 1;
        if (len > 0 && s->in[len - 1] == '\r')
            len--;
        if (memchr(s->in, '\0', len)) {
            memcpy(line, "\x01", 2); /* a NUL byte: no command can match */
            return true;
        }
        memcpy(line, s->in, len);
        line[len] = '\0';
        strip_telnet(line);
        return true;
    }
}

/* The Telnet Synch (IAC DM, sent as urgent data before ABOR) tells the
 * receiver to discard what came before it (RFC 854). Honoured during a
 * transfer, it lets ABOR overtake commands queued behind the transfer,
 * which would otherwise wait for a transfer that may never end. */
static void honour_telnet_synch(struct session *s)
{
    const unsigned char *in = (const unsigned char *)s->in;
    for (size_t i = s->in_len; i-- > 1;) {
        if (in[i] != TELNET_DM)
            continue;
        size_t iacs = 0; /* IAC IAC is an escaped 0xFF: an even run is no command */
        while (iacs < i && in[i - 1 - iacs] == TELNET_IAC)
            iacs++;
        if (iacs % 2 == 1) { /* the last Synch wins */
            drop_input(s, i + 1);
            s->discarding = false;
            return;
        }
    }
}

/* A session whose input is full of commands waiting for a running transfer
 * reads no more (its input is bounded), so a Synch sent now would never be
 * seen in the stream. The kernel still reports it: the client sends the DM
 * as TCP urgent data, which poll() shows as POLLPRI, select() as an
 * exceptional condition. Everything before the urgent mark is then
 * discarded, as the Synch asks (RFC 854); reads stop at the mark by
 * themselves (tcp(7), SIOCATMARK), and with SO_OOBINLINE the next byte is
 * the DM. Looked for on every tick, so the ABOR behind it waits a tick at
 * most. */
static void honour_urgent_synch(struct session *s)
{
    if (!data_transfer_active(s) || s->in_len < CONTROL_IN_SIZE)
        return;
    struct pollfd urgent = {.fd = s->control_fd, .events = POLLPRI};
    if (poll(&urgent, 1, 0) != 1 || !(urgent.revents & POLLPRI))
        return;
    s->in_len = 0;
    s->discarding = false;
    for (;;) {
        int at_mark = 0;
        if (ioctl(s->control_fd, SIOCATMARK, &at_mark) < 0)
            break;
        ssize_t n = recv(s->control_fd, s->in, at_mark ? 1 : CONTROL_IN_SIZE, 0);
        if (at_mark || n <= 0)
            break; /* the DM is gone too; an error or EOF shows on the next read */
    }
}

static bool is_abort(const char *line)
{
    return strncasecmp(line, "ABOR", 4) == 0 && (line[4] == '\0' || line[4] == ' ');
}

/* Executes the complete lines waiting in the input, while there is room
 * for their replies, and returns how many ran. During a transfer only
 * ABOR is taken; any other command waits until the transfer ends, as
 * RFC 959 has the server finish one thing before it starts the next. */
static int run_pending_commands(struct session *s)
{
    char line[COMMAND_LINE_MAX];
    size_t taken;
    int ran = 0;
    if (data_transfer_active(s))
        honour_telnet_synch(s);
    while (!s->close_reason && CONTROL_OUT_SIZE - (s->out_end - s->out_start) >= REPLY_RESERVE &&
           next_line(s, line, &taken)) {
        if (data_transfer_active(s) && !is_abort(line))
            break;
        drop_input(s, taken);
        s->last_activity_ms = monotonic_ms();
        atomic_fetch_add_explicit(&s->server->stats->messages, 1, memory_order_relaxed);
        command_execute(s, line);
        ran++;
    }
    return ran;
}

/* One read per readiness event (level-triggered: the loop says again). */
static void read_control(struct session *s)
{
    ssize_t n;
    do
        n = recv(s->control_fd, s->in + s->in_len, CONTROL_IN_SIZE - s->in_len, 0);
    while (n < 0 && errno == EINTR);
    if (n > 0)
        s->in_len += (size_t)n;
    else if (n == 0)
        session_close_later(s, "client closed the connection");
    else if (errno != EAGAIN && errno != EWOULDBLOCK)
        session_close_later(s, strerror(errno));
}

static int wanted_control_interest(const struct session *s)
{
    int interest = 0;
    /* Stop reading while the input is full of commands that must wait
     * (a transfer is running) or while replies pile up unread. */
    if (s->in_len < CONTROL_IN_SIZE && CONTROL_OUT_SIZE - (s->out_end - s->out_start) >= REPLY_RESERVE)
        interest |= LOOP_READABLE;
    if (s->out_end > s->out_start)
        interest |= LOOP_WRITABLE;
    return interest;
}

void session_settle(struct session *s)
{
    /* Replies first: what the socket takes makes room for the commands
     * still waiting in the input. Those may already be all the client
     * sent, so no readable event would come to run them: keep going while
     * commands run and their replies leave at once. */
    flush_replies(s);
    while (run_pending_commands(s) > 0) {
        flush_replies(s);
        if (s->close_reason || s->out_end > s->out_start)
            break; /* the rest waits for writability */
    }
    /* Closing does not wait for a peer that will not read: whatever of
     * the last reply the socket did not take is dropped. */
    if (s->close_reason) {
        session_destroy(s);
        return;
    }
    int interest = wanted_control_interest(s);
    if (interest != s->control_interest) {
        if (loop_watch(s->server->loop, s->control_fd, interest, on_control_event, s) < 0) {
            session_close_later(s, strerror(errno));
            session_destroy(s);
            return;
        }
        s->control_interest = interest;
    }
}

static void on_control_event(struct loop *loop, int fd, int ready, void *data)
{
    (void)loop;
    (void)fd;
    struct session *s = data;
    if (ready & LOOP_READABLE)
        read_control(s);
    session_settle(s); /* flushes pending replies when writable, too */
}

void session_tick(struct session *s, int64_t now_ms)
{
    honour_urgent_synch(s);
    long timeout = s->server->config.idle_timeout_ms;
    if (now_ms - s->last_activity_ms >= timeout) {
        session_reply(s, 421, "Idle for %ld seconds: closing the control connection", timeout / 1000);
        session_close_later(s, "idle timeout");
    }
    session_settle(s);
}
