#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* A line is at most this long, below PIPE_BUF (4096 on Linux): a write of
 * it to a pipe is atomic, all of it or nothing (pipe(7)). */
enum { LINE_MAX_BYTES = 1024 };

/* How long the last lines (an error that ends the program, the summary)
 * may wait for a stderr that is full: long enough for a reader that is
 * slow, short enough that a stopped server exits when nobody reads. */
enum { FINAL_LINE_WAIT_MS = 1000 };

/* How a line reaches stderr without ever waiting for a reader. */
enum sink {
    SINK_FILE,        /* a regular file: it takes every line, nobody has to read it */
    SINK_NONBLOCKING, /* a pipe or terminal, reopened privately with O_NONBLOCK */
    SINK_SOCKET,      /* send(MSG_DONTWAIT): non-blocking for this call alone */
    SINK_POLLED,      /* could not reopen: write only when poll says there is room */
};

/* Written by log_init() before any thread or child exists, then only
 * read: the process-wide state of the log, kept private to this file. */
static const char *log_program = "iomodels";
static enum log_level log_threshold = LOG_EVENTS;
static int log_fd = STDERR_FILENO;
static enum sink log_sink = SINK_FILE;

/* Lines dropped because stderr could not take them. In a shared page, so
 * that the lines forked children drop count in the parent's summary. */
static atomic_ulong dropped_fallback;
static atomic_ulong *dropped = &dropped_fallback;

/* O_NONBLOCK belongs to an open file description, which stderr shares
 * with the shell and everything else started from the same terminal:
 * setting it there would make their writes fail with EAGAIN. Opening
 * /proc/self/fd/2 again gives this process a description of its own on
 * the same pipe or terminal, where O_NONBLOCK concerns no one else
 * (proc(5)). A socket cannot be reopened that way; it needs no reopening,
 * since send() takes MSG_DONTWAIT per call. */
static void choose_sink(void)
{
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0 || S_ISREG(st.st_mode)) {
        log_sink = SINK_FILE;
    } else if (S_ISSOCK(st.st_mode)) {
        log_sink = SINK_SOCKET;
    } else {
        int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        log_fd = fd >= 0 ? fd : STDERR_FILENO;
        log_sink = fd >= 0 ? SINK_NONBLOCKING : SINK_POLLED;
    }
    void *page = mmap(NULL, sizeof *dropped, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED) {
        dropped = page;
        atomic_init(dropped, 0);
    }
}

void log_init(const char *program, enum log_level level)
{
    static bool sink_chosen;
    const char *slash = strrchr(program, '/');
    log_program = slash ? slash + 1 : program;
    log_threshold = level;
    if (!sink_chosen) {
        choose_sink();
        sink_chosen = true;
    }
}

const char *program_name(void)
{
    return log_program;
}

bool log_enabled(enum log_level level)
{
    return log_threshold >= level;
}

/* Lines dropped so far, by this process and its forked children. */
static unsigned long log_lines_dropped(void)
{
    return atomic_load(dropped);
}

enum attempt { WRITTEN, FULL, FAILED };

/* One attempt that never waits. A signal cannot interrupt it, as nothing
 * here sleeps. */
static enum attempt try_write(const char *line, size_t len)
{
    ssize_t w;
    if (log_sink == SINK_SOCKET) {
        w = send(log_fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else {
        if (log_sink == SINK_POLLED) {
            /* Racy against other writers to the same pipe, but only the
             * fallback: a pipe with room takes a write of at most PIPE_BUF
             * bytes whole. */
            struct pollfd p = {.fd = log_fd, .events = POLLOUT};
            if (poll(&p, 1, 0) != 1 || !(p.revents & POLLOUT))
                return FULL;
        }
        w = write(log_fd, line, len);
    }
    if (w == (ssize_t)len)
        return WRITTEN;
    /* A terminal may take part of a line and refuse the rest: that line
     * is cut, and counted as dropped. */
    return w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? FULL : FAILED;
}

/* Writes the line if stderr takes it now; otherwise counts it as dropped.
 * A final line may wait for room, up to FINAL_LINE_WAIT_MS. */
static void send_line(const char *line, size_t len, bool final)
{
    enum attempt a = try_write(line, len);
    for (int waited_ms = 0; final && a == FULL && waited_ms < FINAL_LINE_WAIT_MS; waited_ms += 100) {
        struct pollfd p = {.fd = log_fd, .events = POLLOUT};
        (void)poll(&p, 1, 100);
        a = try_write(line, len);
    }
    if (a != WRITTEN)
        atomic_fetch_add_explicit(dropped, 1, memory_order_relaxed);
}

/* Formats "[program: ]message[: strerror]\n" and sends it as one line. */
static void emit(bool with_program, bool final, int saved_errno, const char *fmt, va_list ap)
{
    char line[LINE_MAX_BYTES];
    size_t len = 0;
    int n;

    if (with_program) {
        n = snprintf(line, sizeof line, "%s: ", log_program);
        len = n > 0 ? (size_t)n : 0;
    }
    n = vsnprintf(line + len, sizeof line - len, fmt, ap);
    if (n > 0)
        len += (size_t)n;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    if (saved_errno != 0) {
        n = snprintf(line + len, sizeof line - len, ": %s", strerror(saved_errno));
        if (n > 0)
            len += (size_t)n;
        if (len > sizeof line - 2)
            len = sizeof line - 2;
    }
    line[len++] = '\n';
    send_line(line, len, final);
}

/* The entry points differ only in what they hand to emit(): whether the
 * line is shown at this level, the program prefix, whether it is a last
 * line that may wait, strerror(errno). errno is read first and given back
 * afterwards, so logging between a failed call and a look at its errno
 * changes nothing. die and die_errno then exit(1). */
#define LOG_FUNCTION(name, level, with_program, final, with_errno, then) \
    void name(const char *fmt, ...)                                       \
    {                                                                     \
        int saved = errno;                                                \
        if (log_enabled(level)) {                                         \
            va_list ap;                                                   \
            va_start(ap, fmt);                                            \
            emit(with_program, final, with_errno ? saved : 0, fmt, ap);   \
            va_end(ap);                                                   \
        }                                                                 \
        errno = saved;                                                    \
        then;                                                             \
    }

LOG_FUNCTION(die, LOG_QUIET, true, true, false, exit(1))
LOG_FUNCTION(die_errno, LOG_QUIET, true, true, true, exit(1))
LOG_FUNCTION(warn, LOG_QUIET, true, false, false, (void)0)
LOG_FUNCTION(warn_errno, LOG_QUIET, true, false, true, (void)0)
LOG_FUNCTION(log_event, LOG_EVENTS, false, false, false, (void)0)
LOG_FUNCTION(log_verbose, LOG_VERBOSE, false, false, false, (void)0)

void log_summary(const char *fmt, ...)
{
    char text[LINE_MAX_BYTES - 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    unsigned long lost = log_lines_dropped();
    char line[LINE_MAX_BYTES];
    int n = lost > 0 ? snprintf(line, sizeof line, "summary: %s, %lu log lines dropped\n", text, lost)
                     : snprintf(line, sizeof line, "summary: %s\n", text);
    if (n > 0)
        send_line(line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1, true);
}
