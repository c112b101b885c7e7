/* bin/client bench: the load generator.
 *
 * One thread, one epoll instance, CONNS non-blocking connections (their
 * state machine is in bench_conn.c). This file keeps the clock: warm-up,
 * the end of the run, the open-loop schedule, and the report.
 *
 * The client must cost far less CPU per message than the servers it
 * measures, or it measures itself: so it makes one recv and one send per
 * message, one epoll_wait per batch of ready connections, and allocates
 * nothing once the run has started. */
#include "bench.h"

#include "address.h"
#include "client.h"
#include "clock.h"
#include "net.h"
#include "options.h"
#include "signals.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

enum {
    MAX_EVENTS = 256,
    SCRATCH_SIZE = 256 * 1024,
    MAX_CONNS = 1000000,
    MAX_MESSAGE_SIZE = 64 * 1024 * 1024,
};

static const int64_t NS_PER_SEC = 1000000000;

struct bench_config {
    char host[256], port[8];
    long conns;
    long size;
    double seconds;    /* -d; 0 with -n */
    long messages;     /* -n; 0 with -d */
    double rate;       /* --rate; 0: closed loop */
    double warmup;
    bool json;
};

/* -- the command line ------------------------------------------------------ */

static long number_arg(const char *opt, const char *text, long min, long max)
{
    long v;
    if (!parse_long(text, min, max, &v))
        client_usage_error("%s expects a whole number from %ld to %ld, not '%s'", opt, min, max, text);
    return v;
}

static double seconds_arg(const char *opt, const char *text, double min, double max)
{
    double v;
    if (!parse_double(text, min, max, &v))
        client_usage_error("%s expects a number from %g to %g, not '%s'", opt, min, max, text);
    return v;
}

static struct bench_config parse_bench_args(int argc, char **argv)
{
    enum { OPT_RATE = 256, OPT_WARMUP, OPT_JSON };
    static const struct option longopts[] = {
        {"conns", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'd'},
        {"messages", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, OPT_RATE},
        {"warmup", required_argument, NULL, OPT_WARMUP},
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, CLIENT_OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    struct bench_config cfg = {.warmup = 0.5};
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":c:s:d:n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            cfg.conns = number_arg("-c", optarg, 1, MAX_CONNS);
            break;
        case 's':
            cfg.size = number_arg("-s", optarg, 1, MAX_MESSAGE_SIZE);
            break;
        case 'd':
            cfg.seconds = seconds_arg("-d", optarg, 0.001, 1e6);
            break;
        case 'n':
            cfg.messages = number_arg("-n", optarg, 1, 1000000000000L);
            break;
        case OPT_RATE:
            cfg.rate = seconds_arg("--rate", optarg, 0.001, 1e9);
            break;
        case OPT_WARMUP:
            cfg.warmup = seconds_arg("--warmup", optarg, 0, 3600);
            break;
        case OPT_JSON:
            cfg.json = true;
            break;
        case 'h':
        case CLIENT_OPT_VERSION:
            client_help_or_version(c);
        case ':':
            client_usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
            client_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    client_parse_address_operand(argc, argv, optind, "bench: ", cfg.host, sizeof cfg.host, cfg.port,
                                 sizeof cfg.port);
    if (cfg.conns == 0)
        client_usage_error("bench: -c CONNS is required");
    if (cfg.size == 0)
        client_usage_error("bench: -s BYTES is required");
    if ((cfg.seconds > 0) == (cfg.messages > 0))
        client_usage_error("bench: give either -d SECONDS or -n MESSAGES");
    return cfg;
}

/* -- setting up -------------------------------------------------------------- */

/* The pattern the messages are cut from: PATTERN_PERIOD pseudo-random
 * bytes, then the start again so that a message of size bytes at any
 * offset below PATTERN_PERIOD is one contiguous window. */
static unsigned char *make_pattern(size_t size)
{
    unsigned char *pattern = malloc(PATTERN_PERIOD + size);
    if (!pattern)
        die_errno("malloc pattern");
    uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift64: fast and good enough to tell bytes apart */
    for (size_t i = 0; i < PATTERN_PERIOD; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pattern[i] = (unsigned char)(x >> 56);
    }
    for (size_t i = PATTERN_PERIOD; i < PATTERN_PERIOD + size; i++)
        pattern[i] = pattern[i % PATTERN_PERIOD];
    return pattern;
}

void ensure_descriptors(long conns)
{
    long needed = conns + 16; /* stdio, epoll, a few spare */
    long limit = raise_fd_limit(needed);
    if (limit < 0)
        die_errno("RLIMIT_NOFILE");
    if (limit < needed)
        die("%ld connections need %ld descriptors; RLIMIT_NOFILE allows %ld (raise it with ulimit -n)", conns,
            needed, limit);
}

static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) < 0)
        die_errno("getrusage");
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* -- the run ------------------------------------------------------------------- */

struct run_clock {
    uint64_t next_global; /* open loop: the next message of the schedule */
    int64_t next_release; /* and when it is due */
    int64_t idle_limit;   /* -n: a run with no echo for this long is over */
    int timer_fd;         /* readable at the run's next milestone */
    int stop_fd;          /* readable when SIGINT or SIGTERM came */
    bool over;
    bool cpu_marked;      /* the CPU clock was read when measuring began */
    double cpu_at_measure;
    uint64_t echoes_at_measure;
};

/* Open loop: hands every message whose time has come to its connection. */
static void release_due_messages(struct bench_run *run, struct bench_conn *conns, struct run_clock *clock,
                                 int64_t now)
{
    while (clock->next_release <= now) {
        struct bench_conn *c = &conns[clock->next_global % (uint64_t)run->conns];
        if (c->fd >= 0)
            bench_conn_release(c);
        clock->next_global++;
        clock->next_release = run->schedule_start + (int64_t)((double)clock->next_global * run->interval_ns);
    }
}

/* The run's milestones (the warm-up's end, the run's end, and with -n the
 * moment silence has lasted too long) move a few times a run, so they wait
 * in a timerfd among the sockets. An epoll_wait with a timeout would arm
 * and cancel a kernel timer on every wait that sleeps (fs/eventpoll.c:
 * ep_poll sleeps in schedule_hrtimeout_range, which sets an hrtimer only
 * when it is given an expiry). */
static int64_t next_milestone(const struct bench_run *run, const struct run_clock *clock)
{
    int64_t at = run->measure_until;
    if (run->last_progress + clock->idle_limit < at)
        at = run->last_progress + clock->idle_limit;
    if (!clock->cpu_marked && run->measure_from < at)
        at = run->measure_from;
    return at;
}

static void set_timer(const struct run_clock *clock, int64_t at)
{
    struct itimerspec when = {.it_value = {.tv_sec = at / NS_PER_SEC, .tv_nsec = at % NS_PER_SEC}};
    if (timerfd_settime(clock->timer_fd, TFD_TIMER_ABSTIME, &when, NULL) < 0)
        die_errno("timerfd_settime");
}

/* The timer fired: a milestone may have passed (the idle one moves with
 * every echo, so it may not have), and the timer is set for the next. */
static void on_timer(const struct bench_run *run, struct run_clock *clock)
{
    uint64_t expirations;
    if (read(clock->timer_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        die_errno("read timerfd");
    int64_t now = monotonic_ns();
    if (!clock->cpu_marked && now >= run->measure_from) {
        clock->cpu_marked = true;
        clock->cpu_at_measure = cpu_seconds();
        clock->echoes_at_measure = run->echoes;
    }
    if (now >= run->measure_until || now - run->last_progress >= clock->idle_limit)
        clock->over = true;
    else
        set_timer(clock, next_milestone(run, clock));
}

/* Ctrl-C and SIGTERM end the run with a report. They stay blocked, so
 * they never interrupt a call, and arrive as data on a signalfd among the
 * sockets: the wait needs no signal mask of its own to let them in. */
static int stop_signals_fd(void)
{
    sigset_t stop;
    block_stop_signals(NULL);
    stop_signal_set(&stop);
    int fd = signalfd(-1, &stop, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        die_errno("signalfd");
    return fd;
}

static void watch(int epoll_fd, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
        die_errno("epoll_ctl");
}

/* Waits for the sockets, the timer or a stop signal. The closed loop has
 * nothing else to wait for (wait_ns < 0); the open loop's schedule moves
 * with every message, too often for a timerfd, so it is the wait's own
 * timeout. epoll_pwait2 (Linux 5.11) takes it in ns; on an older kernel it
 * fails with ENOSYS, and the wait falls back to epoll_wait, whose timeout
 * is in ms: rounded up, so it never wakes before the deadline, and the
 * schedule is kept to the millisecond. */
static int wait_for_events(int epoll_fd, struct epoll_event *events, int64_t wait_ns)
{
    static bool no_pwait2;
    if (wait_ns < 0)
        return epoll_wait(epoll_fd, events, MAX_EVENTS, -1);
    if (!no_pwait2) {
        struct timespec timeout = {.tv_sec = wait_ns / NS_PER_SEC, .tv_nsec = wait_ns % NS_PER_SEC};
        int n = epoll_pwait2(epoll_fd, events, MAX_EVENTS, &timeout, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        no_pwait2 = true;
        warn("epoll_pwait2: %s (it needs Linux 5.11): waiting in epoll_wait, to the millisecond", strerror(ENOSYS));
    }
    int64_t ms = (wait_ns + 999999) / 1000000;
    return epoll_wait(epoll_fd, events, MAX_EVENTS, ms > INT_MAX ? INT_MAX : (int)ms);
}

/* Returns when the run ended. */
static int64_t run_loop(struct bench_run *run, struct bench_conn *conns, struct run_clock *clock)
{
    struct epoll_event events[MAX_EVENTS];
    set_timer(clock, next_milestone(run, clock));
    for (;;) {
        int64_t wait_ns = -1;
        if (run->open_loop) {
            int64_t now = monotonic_ns();
            release_due_messages(run, conns, clock, now);
            wait_ns = clock->next_release - now;
        }
        if (clock->over || run->alive == 0 || run->measured >= run->measure_target)
            return monotonic_ns();

        /* The only place the client blocks. */
        int n = wait_for_events(run->epoll_fd, events, wait_ns);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die_errno("epoll wait");
        }
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == &clock->timer_fd)
                on_timer(run, clock);
            else if (tag == &clock->stop_fd)
                clock->over = true;
            else
                bench_conn_on_event(tag, events[i].events);
        }
    }
}

/* -- the report ------------------------------------------------------------------ */

struct bench_result {
    double seconds, msgs_per_sec;
    double p50, p90, p99, p999, max, mean; /* us */
    unsigned long stalled;
    double cpu_seconds, cpu_us_per_msg;
    /* Fairness: a server may serve some connections fast and starve the
     * rest, which per-message percentiles reward. */
    long served;                      /* connections with an echo in the window */
    double conn_min_rate, conn_max_rate; /* msgs/s of the least and most served */
    double worst_conn_p50;            /* us: the highest per-connection median */
};

static double percentile_us(const struct histogram *h, double percent)
{
    return (double)histogram_percentile(h, percent) / 1000.0;
}

static struct bench_result summarize(const struct bench_run *run, const struct bench_conn *conns,
                                     const struct run_clock *clock, int64_t ended)
{
    struct bench_result r = {0};
    int64_t end = run->measured >= run->measure_target ? run->last_measured_at : ended;
    if (end > run->measure_until)
        end = run->measure_until;
    r.seconds = end > run->measure_from ? (double)(end - run->measure_from) / 1e9 : 0.0;
    r.msgs_per_sec = r.seconds > 0 ? (double)run->measured / r.seconds : 0.0;
    r.p50 = percentile_us(&run->latency, 50);
    r.p90 = percentile_us(&run->latency, 90);
    r.p99 = percentile_us(&run->latency, 99);
    r.p999 = percentile_us(&run->latency, 99.9);
    r.max = (double)run->latency.max / 1000.0;
    r.mean = histogram_mean(&run->latency) / 1000.0;
    for (long i = 0; i < run->conns; i++)
        if (!conns[i].failed && conns[i].echoes == 0)
            r.stalled++;
    r.conn_min_rate = -1;
    for (long i = 0; i < run->conns; i++) {
        double rate = r.seconds > 0 ? (double)conns[i].served / r.seconds : 0.0;
        double p50 = (double)bench_conn_median(&conns[i]) / 1000.0;
        r.served += conns[i].served > 0;
        if (r.conn_min_rate < 0 || rate < r.conn_min_rate)
            r.conn_min_rate = rate;
        if (rate > r.conn_max_rate)
            r.conn_max_rate = rate;
        if (p50 > r.worst_conn_p50)
            r.worst_conn_p50 = p50;
    }
    if (clock->cpu_marked) {
        r.cpu_seconds = cpu_seconds() - clock->cpu_at_measure;
        uint64_t echoes = run->echoes - clock->echoes_at_measure;
        r.cpu_us_per_msg = echoes ? r.cpu_seconds * 1e6 / (double)echoes : 0.0;
    }
    return r;
}

static void print_json(const struct bench_config *cfg, const struct bench_run *run, const struct bench_result *r)
{
    printf("{\"conns\":%ld,\"size\":%ld,\"seconds\":%.3f,\"msgs\":%llu,\"msgs_per_sec\":%.1f,"
           "\"p50_us\":%.1f,\"p90_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"max_us\":%.1f,\"mean_us\":%.1f,"
           "\"errors\":%lu,\"mismatches\":%lu,\"stalled\":%lu,\"unanswered\":%llu,\"warmup\":%.3f,"
           "\"client_cpu_seconds\":%.3f,\"client_cpu_us_per_msg\":%.2f",
           cfg->conns, cfg->size, r->seconds, (unsigned long long)run->measured, r->msgs_per_sec, r->p50, r->p90,
           r->p99, r->p999, r->max, r->mean, run->errors, run->mismatches, r->stalled,
           (unsigned long long)run->unanswered, cfg->warmup,
           r->cpu_seconds, r->cpu_us_per_msg);
    printf(",\"conns_served\":%ld,\"conn_min_msgs_per_sec\":%.1f,\"conn_max_msgs_per_sec\":%.1f,"
           "\"worst_conn_p50_us\":%.1f",
           r->served, r->conn_min_rate, r->conn_max_rate, r->worst_conn_p50);
    if (run->open_loop)
        printf(",\"rate_requested\":%.1f,\"rate_achieved\":%.1f", cfg->rate, r->msgs_per_sec);
    printf("}\n");
}

static void print_summary(const struct bench_config *cfg, const struct bench_run *run, const struct bench_result *r)
{
    char server[sizeof cfg->host + 16];
    client_format_address(cfg->host, cfg->port, server, sizeof server);
    printf("bench %s: %ld connection%s, %ld-byte messages, ", server, cfg->conns,
           cfg->conns == 1 ? "" : "s", cfg->size);
    if (run->open_loop)
        printf("open loop at %.1f msgs/s\n", cfg->rate);
    else
        printf("closed loop\n");
    printf("  measured  %.3f s after %.3f s warm-up: %llu echoes, %.1f msgs/s\n", r->seconds, cfg->warmup,
           (unsigned long long)run->measured, r->msgs_per_sec);
    printf("  latency   p50 %.1f us, p90 %.1f, p99 %.1f, p99.9 %.1f, max %.1f (mean %.1f)\n", r->p50, r->p90,
           r->p99, r->p999, r->max, r->mean);
    printf("  problems  errors %lu, mismatches %lu, stalled %lu%s\n", run->errors, run->mismatches, r->stalled,
           r->stalled ? " (connections that never got an echo)" : "");
    printf("  fairness  %ld of %ld connections served; per connection %.1f to %.1f msgs/s; "
           "slowest median %.1f us\n",
           r->served, cfg->conns, r->conn_min_rate, r->conn_max_rate, r->worst_conn_p50);
    if (run->unanswered)
        printf("  in flight %llu messages unanswered at the end, in the latencies with their wait so far\n",
               (unsigned long long)run->unanswered);
    printf("  client    %.3f s of CPU, %.2f us per message\n", r->cpu_seconds, r->cpu_us_per_msg);
}

int bench_main(int argc, char **argv)
{
    struct bench_config cfg = parse_bench_args(argc, argv);
    char err[512];
    struct addrinfo *server = resolve_address(cfg.host, cfg.port, err, sizeof err);
    if (!server)
        die("cannot resolve %s", err);
    ensure_descriptors(cfg.conns);

    unsigned char *pattern = make_pattern((size_t)cfg.size);
    struct bench_run run = {
        .conns = cfg.conns,
        .size = (size_t)cfg.size,
        .open_loop = cfg.rate > 0,
        .pattern = pattern,
        .scratch = malloc(SCRATCH_SIZE),
        .scratch_size = SCRATCH_SIZE,
        .interval_ns = cfg.rate > 0 ? 1e9 / cfg.rate : 0,
        .measure_target = cfg.messages > 0 ? (uint64_t)cfg.messages : UINT64_MAX,
    };
    struct bench_conn *conns = calloc((size_t)cfg.conns, sizeof *conns);
    if (!run.scratch || !conns || !histogram_init(&run.latency))
        die_errno("malloc");
    run.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (run.epoll_fd < 0)
        die_errno("epoll_create1");
    /* A timed sleep may overrun by the thread's timer slack (50 us by
     * default); the open loop's schedule wants it as tight as it gets. */
    if (run.open_loop && prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL) < 0)
        warn_errno("prctl PR_SET_TIMERSLACK");

    int64_t start = monotonic_ns();
    run.schedule_start = start;
    run.measure_from = start + (int64_t)(cfg.warmup * 1e9);
    run.measure_until = cfg.seconds > 0 ? run.measure_from + (int64_t)(cfg.seconds * 1e9) : INT64_MAX;
    run.last_progress = start;
    /* After the last echo, the open loop owes the next message at most one
     * interval later: only silence beyond that is the server's. */
    struct run_clock clock = {
        .next_release = start,
        .idle_limit = cfg.messages > 0 ? CLIENT_IDLE_LIMIT_SECONDS * NS_PER_SEC + (int64_t)run.interval_ns
                                       : INT64_MAX / 2,
        .timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC),
        .stop_fd = stop_signals_fd(),
    };
    if (clock.timer_fd < 0)
        die_errno("timerfd_create");
    watch(run.epoll_fd, clock.timer_fd, &clock.timer_fd);
    watch(run.epoll_fd, clock.stop_fd, &clock.stop_fd);
    for (long i = 0; i < cfg.conns; i++)
        bench_conn_open(&conns[i], &run, (uint32_t)i, server);

    int64_t ended = run_loop(&run, conns, &clock);
    if (run.measured < run.measure_target && ended - run.last_progress >= clock.idle_limit)
        warn("no echo for %d s: giving up after %llu of %ld messages", (int)(clock.idle_limit / NS_PER_SEC),
             (unsigned long long)run.measured, cfg.messages);
    int64_t window_end = ended < run.measure_until ? ended : run.measure_until;
    for (long i = 0; i < cfg.conns && run.measured + run.unanswered < run.measure_target; i++)
        run.unanswered += bench_conn_charge_unanswered(&conns[i], window_end,
                                                       run.measure_target - run.measured - run.unanswered);
    struct bench_result result = summarize(&run, conns, &clock, ended);
    for (long i = 0; i < cfg.conns; i++)
        bench_conn_close(&conns[i]);

    if (cfg.json)
        print_json(&cfg, &run, &result);
    else
        print_summary(&cfg, &run, &result);
    if (fflush(stdout) == EOF)
        die_errno("stdout");

    close(clock.timer_fd);
    close(clock.stop_fd);
    close(run.epoll_fd);
    histogram_destroy(&run.latency);
    free(conns);
    free(run.scratch);
    free(pattern);
    freeaddrinfo(server);
    return run.errors || run.mismatches ? 1 : 0;
}
