/* Error reporting and the event log, in the spirit of Stevens' error.c.
 *
 * die*()  report and exit(1): for what the program cannot go on without.
 * warn*() report and return: for what ends one connection, not the server.
 * The *_errno forms append ": strerror(errno)"; errno is read first, before
 * anything else can change it.
 *
 * Every line is formatted in memory and written with a single write(2), so
 * lines from forked children and threads never interleave mid-line.
 *
 * No line ever makes a server wait. stderr may be a pipe or a terminal that
 * nobody drains; a blocking write there would stop the whole event loop,
 * the very blocking the suite teaches against. So a line stderr cannot
 * take at once is dropped and counted, and the summary says how many.
 * Only the last lines (die's message, the summary) wait for room, for a
 * second at most. A regular file takes every line.
 */
#ifndef IOMODELS_LOG_H
#define IOMODELS_LOG_H

#include <stdbool.h>
#include <stdnoreturn.h>

enum log_level {
    LOG_QUIET,   /* -q: errors and the summary only */
    LOG_EVENTS,  /* default: accepted / closing lines */
    LOG_VERBOSE, /* -v: every message too */
};

#if defined(__GNUC__)
#define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#define PRINTF_LIKE(f, a)
#endif

/* Set once at start-up; program is the name errors are prefixed with. */
void log_init(const char *program, enum log_level level);
const char *program_name(void);
bool log_enabled(enum log_level level);

noreturn void die(const char *fmt, ...) PRINTF_LIKE(1, 2);
noreturn void die_errno(const char *fmt, ...) PRINTF_LIKE(1, 2);
void warn(const char *fmt, ...) PRINTF_LIKE(1, 2);
void warn_errno(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* The event log on stderr: shown unless -q (log_event) or only with -v
 * (log_verbose). The caller writes no newline. */
void log_event(const char *fmt, ...) PRINTF_LIKE(1, 2);
void log_verbose(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* "summary: MESSAGE" on stderr, always (also with -q), followed by
 * ", N log lines dropped" when stderr could not take N lines. */
void log_summary(const char *fmt, ...) PRINTF_LIKE(1, 2);

#endif
