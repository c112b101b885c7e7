/* bin/client: the line-mode client and the load generator share one
 * program, so a class needs to know one command. main() only dispatches. */
#include "client.h"

#include "address.h"
#include "options.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void client_usage(FILE *out)
{
    fprintf(out,
            "usage: %s [HOST:]PORT\n"
            "       %s bench [HOST:]PORT -c CONNS -s BYTES (-d SECONDS | -n MESSAGES)\n"
            "              [--rate MSGS_PER_SEC] [--warmup SECONDS] [--json]\n"
            "       %s hold -n N [HOST:]PORT\n"
            "\n"
            "The client of every echo server in the suite. HOST defaults to 127.0.0.1;\n"
            "an IPv6 address goes in brackets: [::1]:8000.\n"
            "\n"
            "line mode: each line typed at the \">>> \" prompt is sent and its echo\n"
            "printed. From a pipe, all of standard input is sent and all of its echo\n"
            "printed; at the end of the input the client half-closes, prints the rest\n"
            "of the echo and exits when the server closes.\n"
            "\n"
            "bench: CONNS connections, each sending BYTES and waiting for exactly\n"
            "BYTES back (closed loop), every byte checked, round trips in a histogram.\n"
            "  -c, --conns CONNS       connections\n"
            "  -s, --size BYTES        message size\n"
            "  -d, --duration SECONDS  measure for this long (fractions allowed)\n"
            "  -n, --messages N        or: measure N echoes, all connections together\n"
            "                          (gives up after %d s without any echo)\n"
            "      --rate R            open loop: R messages per second on a fixed\n"
            "                          schedule; latency counts from when each message\n"
            "                          should have left\n"
            "      --warmup SECONDS    run this long before measuring (default 0.5)\n"

            "      --json              one JSON line instead of the summary\n"
            "\n"
            "hold: open N connections, each echoing one byte (so the server has\n"
            "accepted it and watches it), then hold them silent until SIGINT, SIGTERM\n"
            "or the end of standard input; prints \"holding H of N connections\" once\n"
            "they are up (R refused, if the server closed some). compare.sh -i uses it\n"
            "for the idle-connection curve.\n"
            "\n"
            "  -h, --help              show this help\n"
            "      --version           show the version\n"
            "\n"
            "Exit status: 0 done, 1 a connection failed or an echo was wrong,\n"
            "2 usage error. Connections that never got an echo are reported as\n"
            "stalled, which alone is not a failure; a measured message still\n"
            "unanswered at the end is counted as unanswered and enters the\n"
            "latencies with the time it had waited.\n",
            program_name(), program_name(), program_name(), (int)CLIENT_IDLE_LIMIT_SECONDS);
}

void client_help_or_version(int option)
{
    if (option == CLIENT_OPT_VERSION)
        printf("%s %s\n", program_name(), IOMODELS_VERSION);
    else
        client_usage(stdout);
    exit(0);
}

void client_usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", program_name());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    client_usage(stderr);
    exit(2);
}

void client_parse_address_operand(int argc, char **argv, int index, const char *context, char *host,
                                  size_t host_len, char *port, size_t port_len)
{
    if (index >= argc)
        client_usage_error("%smissing [HOST:]PORT", context);
    if (index + 1 < argc)
        client_usage_error("%sunexpected argument '%s'", context, argv[index + 1]);
    if (!parse_host_port(argv[index], host, host_len, port, port_len))
        client_usage_error("bad address '%s': expected [HOST:]PORT", argv[index]);
}

void client_format_address(const char *host, const char *port, char *out, size_t out_len)
{
    if (strchr(host, ':'))
        snprintf(out, out_len, "[%s]:%s", host, port);
    else
        snprintf(out, out_len, "%s:%s", host, port);
}

int main(int argc, char **argv)
{
    log_init(argv[0], LOG_EVENTS);
    if (argc >= 2 && strcmp(argv[1], "bench") == 0)
        return bench_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "hold") == 0)
        return hold_main(argc - 1, argv + 1);
    return interactive_main(argc, argv);
}
