/* bin/client: one client for every echo server of the suite.
 *
 *   client [HOST:]PORT          line mode (interactive.c)
 *   client bench [HOST:]PORT    the load generator (bench.c)
 *   client hold -n N [HOST:]PORT   idle connections held open (bench_idle.c)
 */
#ifndef IOMODELS_CLIENT_H
#define IOMODELS_CLIENT_H

#include "log.h"

#include <stdio.h>
#include <stdnoreturn.h>

/* bench -n: a run with messages outstanding and no echo byte for this
 * long is over (the server is not serving); -d runs end on time anyway. */
enum { CLIENT_IDLE_LIMIT_SECONDS = 5 };

int interactive_main(int argc, char **argv);
int bench_main(int argc, char **argv);
int hold_main(int argc, char **argv);

/* Raises RLIMIT_NOFILE for conns sockets and a few more, or exits saying why not. */
void ensure_descriptors(long conns);

void client_usage(FILE *out);

/* -h/--help and --version, the same in both modes: the usage or the
 * version on stdout, exit 0. CLIENT_OPT_VERSION is getopt_long's value for
 * --version. */
enum { CLIENT_OPT_VERSION = 512 };
noreturn void client_help_or_version(int option);

/* "client: MESSAGE", a blank line and the usage on stderr, exit status 2. */
noreturn void client_usage_error(const char *fmt, ...) PRINTF_LIKE(1, 2);

/* Takes argv[index], which must be the last argument, as [HOST:]PORT, or
 * exits 2 saying what is missing or wrong; context ("bench: " or "")
 * starts the message. */
void client_parse_address_operand(int argc, char **argv, int index, const char *context, char *host,
                                  size_t host_len, char *port, size_t port_len);

/* "HOST:PORT", or "[HOST]:PORT" for an IPv6 address, for messages. */
void client_format_address(const char *host, const char *port, char *out, size_t out_len);

#endif
