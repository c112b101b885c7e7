/* Line mode: what you type goes to the server, and its echo comes back.
 *
 * One poll() loop watches standard input and the socket together, because
 * sending and printing in lock step can deadlock: with a long line, or
 * input piped in faster than it echoes, the server blocks writing its echo
 * to us while we block writing to it. So the socket is non-blocking, what
 * send() did not take waits in a buffer until poll() says the socket is
 * writable, and standard input is not read again until that buffer has
 * drained (backpressure). The echo is printed as it arrives, in whatever
 * pieces it arrives.
 *
 * On a terminal a ">>> " prompt appears once everything typed has come
 * back. At the end of the input the client half-closes (shutdown SHUT_WR),
 * so the server sees EOF, prints the rest of the echo, and exits when the
 * server closes its side. */
#include "client.h"

#include "address.h"
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

enum { CHUNK = 64 * 1024 };

struct line_session {
    int sock;
    char server[272];             /* "HOST:PORT" (host up to 255), for messages */
    bool on_terminal;             /* stdin is a tty: prompt, one line at a time */
    bool prompt_shown;
    bool input_done;              /* stdin reached EOF */
    bool half_closed;             /* our SHUT_WR has gone out */
    unsigned long long sent, echoed;
    size_t out_start, out_end;    /* out[out_start, out_end) read from stdin, not yet sent */
    unsigned char out[CHUNK];
};

/* Writes all of it, also to a non-blocking stdout inherited from a parent. */
static void write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            struct pollfd wait_out = {.fd = fd, .events = POLLOUT};
            if (poll(&wait_out, 1, -1) < 0 && errno != EINTR)
                die_errno("poll stdout");
            continue;
        }
        if (n < 0)
            die_errno("write stdout");
        p += n;
        len -= (size_t)n;
    }
}

static bool output_pending(const struct line_session *s)
{
    return s->out_end > s->out_start;
}

/* On a terminal, the next line is read only once the last one has come
 * back, so the echo and the prompt never interleave with typing. */
static bool wants_input(const struct line_session *s)
{
    if (s->input_done || output_pending(s))
        return false;
    return !s->on_terminal || s->echoed >= s->sent;
}

static void show_prompt_if_due(struct line_session *s)
{
    if (s->on_terminal && !s->prompt_shown && wants_input(s)) {
        write_all(STDOUT_FILENO, ">>> ", 4);
        s->prompt_shown = true;
    }
}

static void read_input(struct line_session *s)
{
    ssize_t n = read(STDIN_FILENO, s->out, sizeof s->out);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return;
        die_errno("read stdin");
    }
    if (n == 0) {
        s->input_done = true;
        if (s->on_terminal) /* the shell's next prompt starts on a line of its own */
            write_all(STDOUT_FILENO, "\n", 1);
        return;
    }
    s->out_start = 0;
    s->out_end = (size_t)n;
    s->prompt_shown = false;
}

static void send_pending(struct line_session *s)
{
    while (output_pending(s)) {
        ssize_t n = send(s->sock, s->out + s->out_start, s->out_end - s->out_start, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return; /* the socket buffer is full: poll will say when it drains */
            die_errno("connection to %s", s->server);
        }
        s->out_start += (size_t)n;
        s->sent += (unsigned long long)n;
    }
    if (s->input_done && !s->half_closed) {
        /* ENOTCONN: the server is gone already (a reset); the next recv says how */
        if (shutdown(s->sock, SHUT_WR) < 0 && errno != ENOTCONN)
            die_errno("shutdown");
        s->half_closed = true;
    }
}

/* Prints what arrived; returns false once the server has closed. */
static bool receive_echo(struct line_session *s)
{
    unsigned char echo[CHUNK];
    ssize_t n = recv(s->sock, echo, sizeof echo, 0);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN)
            return true;
        die_errno("connection to %s", s->server);
    }
    if (n == 0)
        return false;
    write_all(STDOUT_FILENO, echo, (size_t)n);
    s->echoed += (unsigned long long)n;
    return true;
}

/* The server closed: a clean end only if we had finished and it echoed
 * every byte. */
static int finish(const struct line_session *s)
{
    if (s->on_terminal && s->prompt_shown)
        write_all(STDOUT_FILENO, "\n", 1); /* the message starts on a line of its own */
    if (!s->half_closed) {
        warn("connection closed by %s", s->server);
        return 1;
    }
    if (s->echoed < s->sent) {
        warn("%s closed after echoing %llu of %llu bytes", s->server, s->echoed, s->sent);
        return 1;
    }
    return 0;
}

static int run_session(struct line_session *s)
{
    for (;;) {
        show_prompt_if_due(s);
        /* fd -1 is ignored by poll: stdin is left alone while we do not want it,
         * or its hang-up would be reported again and again */
        struct pollfd fds[2] = {
            {.fd = wants_input(s) ? STDIN_FILENO : -1, .events = POLLIN},
            {.fd = s->sock, .events = POLLIN | (output_pending(s) ? POLLOUT : 0)},
        };
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            die_errno("poll");
        }
        if (fds[0].revents)
            read_input(s);
        if (fds[0].revents || (fds[1].revents & (POLLOUT | POLLERR)))
            send_pending(s);
        if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) && !receive_echo(s))
            return finish(s);
    }
}

static void parse_line_mode_args(int argc, char **argv, char *host, size_t host_len, char *port,
                                 size_t port_len)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, CLIENT_OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
        case CLIENT_OPT_VERSION:
            client_help_or_version(c);
        default:
            client_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    client_parse_address_operand(argc, argv, optind, "", host, host_len, port, port_len);
}

int interactive_main(int argc, char **argv)
{
    char host[256], port[8], err[512];
    parse_line_mode_args(argc, argv, host, sizeof host, port, sizeof port);

    int sock = connect_to(host, port, true, err, sizeof err);
    if (sock < 0)
        die("%s", err);
    struct line_session s = {.sock = sock, .on_terminal = isatty(STDIN_FILENO)};
    client_format_address(host, port, s.server, sizeof s.server);

    int status = run_session(&s);
    if (close(sock) < 0)
        warn_errno("close");
    return status;
}
