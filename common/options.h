/* Command-line parsing shared by every server: the common options
 * (-H -p -q -v --max-clients -h --version) plus a table of the model's own
 * options, so each server only declares what is particular to it.
 *
 * Bad input never half-works: an unknown option or a bad value prints one
 * line naming the problem, then the usage, on stderr, and exits 2. */
#ifndef IOMODELS_OPTIONS_H
#define IOMODELS_OPTIONS_H

#include "log.h"

#include <stdbool.h>
#include <stddef.h>

enum option_kind {
    OPTION_FLAG,   /* --sqpoll            -> bool */
    OPTION_CHOICE, /* --api select|poll   -> int, index into choices */
    OPTION_NUMBER, /* --sleep-us N        -> long, within [min, max] */
    OPTION_STRING, /* --root DIR          -> const char * */
};

struct model_option {
    const char *name;           /* the long name, without "--" */
    char short_name;            /* 0 when there is none */
    enum option_kind kind;
    const char *metavar;        /* "N", "DIR": shown in the usage */
    const char *help;
    const char *const *choices; /* OPTION_CHOICE: NULL-terminated */
    long min, max;              /* OPTION_NUMBER */
    void *value;                /* bool *, int *, long * or const char **; holds the default */
};

struct server_options {
    const char *host;
    int port;
    enum log_level log_level;
    long max_clients;
};

/* select watches descriptors below FD_SETSIZE (1024) only: 1000 clients
 * leave room for stdio, the listener and spares, so the default promises
 * nothing the select server cannot keep. */
enum { DEFAULT_MAX_CLIENTS = 1000 };

/* The defaults every server starts from; default_port differs (ftpd). */
struct server_options server_options_defaults(int default_port);

/* Parses argv into *common and the model's table, exits on -h, --version
 * and errors, and calls log_init() with the chosen level. summary is the
 * one line the usage starts with. Positional arguments are refused. */
void parse_server_options(int argc, char **argv, const char *summary, struct server_options *common,
                          const struct model_option *model, size_t model_count);

/* For a check that spans options, made after parse_server_options (the
 * multiplexing server's --trigger edge needs --api epoll): the same one-line
 * error, usage on stderr and exit 2. Pass the table given to
 * parse_server_options; the usage shows the defaults it saw before parsing. */
noreturn void server_usage_error(const char *summary, const struct model_option *model, size_t model_count,
                                 const char *fmt, ...) PRINTF_LIKE(4, 5);

/* The value checks, for programs with a command line of their own. */
bool parse_long(const char *text, long min, long max, long *out);
bool parse_double(const char *text, double min, double max, double *out);
int find_choice(const char *text, const char *const *choices); /* -1 if none */

#define IOMODELS_VERSION "1.0.0"

#endif
