#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Written once by log_init() before any thread or child exists, then only
 * read: the one piece of process-wide state, kept private to this file. */
static const char *log_program = "iomodels";
static enum log_level log_threshold = LOG_EVENTS;

void log_init(const char *program, enum log_level level)
{
    const char *slash = strrchr(program, '/');
    log_program = slash ? slash + 1 : program;
    log_threshold = level;
}

const char *program_name(void)
{
    return log_program;
}

bool log_enabled(enum log_level level)
{
    return log_threshold >= level;
}

/* Formats "[program: ]message[: strerror]\n" and writes it in one call. */
static void emit(bool with_program, int saved_errno, const char *fmt, va_list ap)
{
    char line[1024];
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

    for (size_t off = 0; off < len;) {
        ssize_t w = write(STDERR_FILENO, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(true, 0, fmt, ap);
    va_end(ap);
    exit(1);
}

void die_errno(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    emit(true, saved, fmt, ap);
    va_end(ap);
    exit(1);
}

void warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(true, 0, fmt, ap);
    va_end(ap);
}

void warn_errno(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    emit(true, saved, fmt, ap);
    va_end(ap);
    errno = saved;
}

void log_event(const char *fmt, ...)
{
    if (!log_enabled(LOG_EVENTS))
        return;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    emit(false, 0, fmt, ap);
    va_end(ap);
    errno = saved;
}

void log_verbose(const char *fmt, ...)
{
    if (!log_enabled(LOG_VERBOSE))
        return;
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    emit(false, 0, fmt, ap);
    va_end(ap);
    errno = saved;
}
