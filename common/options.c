#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_MODEL_OPTIONS = 16, LONG_ONLY_BASE = 256 };

enum common_option_id {
    ID_MAX_CLIENTS = LONG_ONLY_BASE + MAX_MODEL_OPTIONS,
    ID_VERSION,
};

/* A model option's value, whichever its kind. */
union option_value {
    bool flag;
    int choice;
    long number;
    const char *string;
};

/* What the usage calls the defaults: the values before parsing, saved by
 * parse_server_options. Parsing writes through the same pointers, so
 * reading them afterwards would show an earlier option's value instead. */
static struct {
    struct server_options common;
    union option_value model[MAX_MODEL_OPTIONS];
} usage_defaults;

static union option_value read_value(const struct model_option *o)
{
    switch (o->kind) {
    case OPTION_FLAG:
        return (union option_value){.flag = *(bool *)o->value};
    case OPTION_CHOICE:
        return (union option_value){.choice = *(int *)o->value};
    case OPTION_NUMBER:
        return (union option_value){.number = *(long *)o->value};
    case OPTION_STRING:
        return (union option_value){.string = *(const char **)o->value};
    }
    return (union option_value){0};
}

struct server_options server_options_defaults(int default_port)
{
    return (struct server_options){
        .host = "127.0.0.1",
        .port = default_port,
        .log_level = LOG_EVENTS,
        .max_clients = DEFAULT_MAX_CLIENTS,
    };
}

bool parse_long(const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool parse_double(const char *text, double min, double max, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int find_choice(const char *text, const char *const *choices)
{
    for (int i = 0; choices[i]; i++)
        if (strcmp(text, choices[i]) == 0)
            return i;
    return -1;
}

static void print_choices(FILE *out, const char *const *choices)
{
    for (int i = 0; choices[i]; i++)
        fprintf(out, "%s%s", i ? "|" : "", choices[i]);
}

static void print_model_option(FILE *out, const struct model_option *o, union option_value def)
{
    char left[64];
    if (o->short_name)
        snprintf(left, sizeof left, "-%c, --%s", o->short_name, o->name);
    else
        snprintf(left, sizeof left, "    --%s", o->name);
    fprintf(out, "  %s", left);
    if (o->kind == OPTION_CHOICE) {
        fputc(' ', out);
        print_choices(out, o->choices);
    } else if (o->metavar) {
        fprintf(out, " %s", o->metavar);
    }
    fprintf(out, "\n        %s", o->help);
    if (o->kind == OPTION_CHOICE)
        fprintf(out, " (default %s)", o->choices[def.choice]);
    else if (o->kind == OPTION_NUMBER)
        fprintf(out, " (default %ld)", def.number);
    else if (o->kind == OPTION_STRING && def.string)
        fprintf(out, " (default %s)", def.string);
    fputc('\n', out);
}

static void print_usage(FILE *out, const char *summary, const struct model_option *model, size_t model_count)
{
    const struct server_options *defaults = &usage_defaults.common;
    fprintf(out, "usage: %s [options]\n%s\n\n", program_name(), summary);
    if (model_count > 0) {
        fprintf(out, "model options:\n");
        for (size_t i = 0; i < model_count; i++)
            print_model_option(out, &model[i], usage_defaults.model[i]);
        fputc('\n', out);
    }
    fprintf(out,
            "common options:\n"
            "  -H, --host ADDR        address to listen on (default %s; ::1 for IPv6)\n"
            "  -p, --port PORT        port to listen on, 0 lets the kernel choose (default %d)\n"
            "  -q, --quiet            no event log, only errors and the summary\n"
            "  -v, --verbose          log every message too\n"
            "      --max-clients N    connections served at once; more are refused (default %ld)\n"
            "  -h, --help             show this help\n"
            "      --version          show the version\n"
            "\nOnce ready it prints \"listening on ADDR:PORT\"; SIGINT or SIGTERM stops it with a summary.\n",
            defaults->host, defaults->port, defaults->max_clients);
}

void server_usage_error(const char *summary, const struct model_option *model, size_t model_count,
                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", program_name());
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    print_usage(stderr, summary, model, model_count);
    exit(2);
}

/* Stores optarg into the model option; returns false if it does not fit. */
static bool set_model_value(const struct model_option *o, const char *arg)
{
    switch (o->kind) {
    case OPTION_FLAG:
        *(bool *)o->value = true;
        return true;
    case OPTION_CHOICE: {
        int i = find_choice(arg, o->choices);
        if (i < 0)
            return false;
        *(int *)o->value = i;
        return true;
    }
    case OPTION_NUMBER:
        return parse_long(arg, o->min, o->max, (long *)o->value);
    case OPTION_STRING:
        if (*arg == '\0')
            return false;
        *(const char **)o->value = arg;
        return true;
    }
    return false;
}

static void describe_expected(const struct model_option *o, char *out, size_t len)
{
    if (o->kind == OPTION_CHOICE) {
        size_t used = (size_t)snprintf(out, len, "one of ");
        for (int i = 0; o->choices[i] && used < len; i++)
            used += (size_t)snprintf(out + used, len - used, "%s%s", i ? ", " : "", o->choices[i]);
    } else if (o->kind == OPTION_NUMBER) {
        snprintf(out, len, "a whole number from %ld to %ld", o->min, o->max);
    } else {
        snprintf(out, len, "a non-empty value");
    }
}

/* getopt_long reports a missing value as '?' with optopt naming the option. */
static bool is_known_option(int id, const struct option *longopts)
{
    for (; id != 0 && longopts->name; longopts++)
        if (longopts->val == id)
            return true;
    return false;
}

void parse_server_options(int argc, char **argv, const char *summary, struct server_options *common,
                          const struct model_option *model, size_t model_count)
{
    log_init(argv[0], LOG_EVENTS);
    if (model_count > MAX_MODEL_OPTIONS)
        die("too many model options (%zu)", model_count);

    usage_defaults.common = *common;
    for (size_t i = 0; i < model_count; i++)
        usage_defaults.model[i] = read_value(&model[i]);
    struct option longopts[MAX_MODEL_OPTIONS + 9];
    char shortopts[2 * MAX_MODEL_OPTIONS + 16] = "+H:p:qvh";
    size_t n = 0, s = strlen(shortopts);

    longopts[n++] = (struct option){"host", required_argument, NULL, 'H'};
    longopts[n++] = (struct option){"port", required_argument, NULL, 'p'};
    longopts[n++] = (struct option){"quiet", no_argument, NULL, 'q'};
    longopts[n++] = (struct option){"verbose", no_argument, NULL, 'v'};
    longopts[n++] = (struct option){"help", no_argument, NULL, 'h'};
    longopts[n++] = (struct option){"max-clients", required_argument, NULL, ID_MAX_CLIENTS};
    longopts[n++] = (struct option){"version", no_argument, NULL, ID_VERSION};
    for (size_t i = 0; i < model_count; i++) {
        const struct model_option *o = &model[i];
        int has_arg = o->kind == OPTION_FLAG ? no_argument : required_argument;
        int id = o->short_name ? o->short_name : (int)(LONG_ONLY_BASE + i);
        longopts[n++] = (struct option){o->name, has_arg, NULL, id};
        if (o->short_name) {
            shortopts[s++] = o->short_name;
            if (has_arg)
                shortopts[s++] = ':';
        }
    }
    longopts[n] = (struct option){0};
    shortopts[s] = '\0';

    opterr = 0; /* we word the errors ourselves, on one line */
    int c, index;
    long number;
    while ((c = getopt_long(argc, argv, shortopts, longopts, &index)) != -1) {
        const char *bad = optind > 1 && optind <= argc ? argv[optind - 1] : "?";
        switch (c) {
        case 'H':
            common->host = optarg;
            continue;
        case 'p':
            if (!parse_long(optarg, 0, 65535, &number))
                server_usage_error(summary, model, model_count,
                            "--port: '%s' is not a port number (0 to 65535)", optarg);
            common->port = (int)number;
            continue;
        case 'q':
            common->log_level = LOG_QUIET;
            continue;
        case 'v':
            common->log_level = LOG_VERBOSE;
            continue;
        case 'h':
            print_usage(stdout, summary, model, model_count);
            exit(0);
        case ID_VERSION:
            printf("%s (iomodels) %s\n", program_name(), IOMODELS_VERSION);
            exit(0);
        case ID_MAX_CLIENTS:
            if (!parse_long(optarg, 1, 1000000, &common->max_clients))
                server_usage_error(summary, model, model_count,
                            "--max-clients: '%s' is not a whole number from 1 to 1000000", optarg);
            continue;
        case '?':
            if (is_known_option(optopt, longopts))
                server_usage_error(summary, model, model_count, "option '%s' needs a value", bad);
            server_usage_error(summary, model, model_count, "unknown option '%s'", bad);
        default:
            break;
        }
        for (size_t i = 0; i < model_count; i++) {
            const struct model_option *o = &model[i];
            int id = o->short_name ? o->short_name : (int)(LONG_ONLY_BASE + i);
            if (id != c)
                continue;
            if (!set_model_value(o, optarg)) {
                char expected[256];
                describe_expected(o, expected, sizeof expected);
                char what[300];
                snprintf(what, sizeof what, "'%s' is not %s", optarg ? optarg : "", expected);
                server_usage_error(summary, model, model_count, "--%s: %s", o->name, what);
            }
            break;
        }
    }
    if (optind < argc)
        server_usage_error(summary, model, model_count, "unexpected argument '%s'", argv[optind]);
    log_init(argv[0], common->log_level);
}
