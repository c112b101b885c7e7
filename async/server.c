/* bin/server-async: the async model. The process asks for a transfer and
 * is told afterwards that it is done; it never calls read or write, and no
 * request it makes waits for the data.
 *
 *   --engine uring      io_uring (uring.c on ring.c): the kernel accepts,
 *                       receives and sends; strace shows no read at all
 *                       (the copies run inside io_uring_enter, which
 *                       strace cannot see into: docs/async.md).
 *   --engine posix-aio  POSIX AIO (posix_aio.c): the interface the textbooks
 *                       name, which glibc runs on threads that block in read.
 *   --engine auto       io_uring where the kernel allows it, otherwise
 *                       posix-aio, saying why in one log line.
 *
 * This file only picks the engine; read uring.c or posix_aio.c next. */
#include "engines.h"

#include "log.h"
#include "net.h"
#include "options.h"
#include "signals.h"
#include "stats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { DEFAULT_PORT = 8000 };

enum engine { ENGINE_AUTO, ENGINE_URING, ENGINE_POSIX_AIO };
static const char *const engine_names[] = {"auto", "uring", "posix-aio", NULL};

/* In the order of enum ring_task_run. */
static const char *const task_run_names[] = {"auto", "deferred", "cooperative", "interrupting", NULL};

static const char SUMMARY[] = "An echo server in the async model: it asks for each read and write and is told when it "
                              "is complete (io_uring: by default the copy runs on this thread, inside io_uring_enter; POSIX AIO: "
                              "glibc's helper threads do it, and a real-time signal reports it).";

static const char *const on_off[] = {"on", "off", NULL};
enum { ON, OFF };

struct choices {
    int engine;
    int task_run;
    bool sqpoll;
    bool oneshot;
    bool oneshot_recv;
    int registered_ring;
    const char *wait_batch;
    enum wait_batching batching; /* from wait_batch */
    unsigned wait_batch_us;
};

enum { MODEL_OPTIONS = 7, MAX_WAIT_BATCH_US = 10000 };

static void describe_options(struct model_option table[MODEL_OPTIONS], struct choices *c)
{
    table[0] = (struct model_option){
        .name = "engine", .kind = OPTION_CHOICE, .choices = engine_names, .value = &c->engine,
        .help = "who does the IO: io_uring, or POSIX AIO (glibc's threads); auto prefers io_uring"};
    table[1] = (struct model_option){
        .name = "sqpoll", .kind = OPTION_FLAG, .value = &c->sqpoll,
        .help = "io_uring: a kernel thread polls the submission queue, so a busy server makes almost no system calls"};
    table[2] = (struct model_option){
        .name = "oneshot", .kind = OPTION_FLAG, .value = &c->oneshot,
        .help = "io_uring: one request per accept and per recv, no buffer ring (what kernels before 5.19 allow)"};
    table[3] = (struct model_option){
        .name = "task-run", .kind = OPTION_CHOICE, .choices = task_run_names, .value = &c->task_run,
        .help = "io_uring: when the kernel finishes completions in our thread: deferred until we wait, when we "
                "next leave the kernel, or interrupting us; auto takes the first this kernel accepts"};
    table[4] = (struct model_option){
        .name = "oneshot-recv", .kind = OPTION_FLAG, .value = &c->oneshot_recv,
        .help = "io_uring: receive into the buffer ring, but one recv request per message (no multishot recv)"};
    table[5] = (struct model_option){
        .name = "registered-ring", .kind = OPTION_CHOICE, .choices = on_off, .value = &c->registered_ring,
        .help = "io_uring: register the ring's own descriptor, so io_uring_enter need not look it up (5.18)"};
    table[6] = (struct model_option){
        .name = "wait-batch", .kind = OPTION_STRING, .metavar = "auto|off|USEC", .value = &c->wait_batch,
        .help = "io_uring: wait for several completions at once, returning with what has come after a bound "
                "(6.12): auto, while nearly every connection is busy, for at most 50 us; USEC, always, for at "
                "most USEC microseconds; off, one completion at a time"};
}

/* auto, off (or 0, as before), or a bound in microseconds: batch always. */
static bool parse_wait_batch(const char *text, enum wait_batching *batching, unsigned *usec)
{
    *usec = 0;
    if (strcmp(text, "auto") == 0) {
        *batching = BATCH_WHEN_BUSY;
        return true;
    }
    if (strcmp(text, "off") == 0 || strcmp(text, "0") == 0) {
        *batching = BATCH_NEVER;
        return true;
    }
    long value;
    if (!parse_long(text, 1, MAX_WAIT_BATCH_US, &value))
        return false;
    *batching = BATCH_ALWAYS;
    *usec = (unsigned)value;
    return true;
}

static void parse_options(int argc, char **argv, struct server_options *common, struct choices *c)
{
    struct model_option model[MODEL_OPTIONS];
    *common = server_options_defaults(DEFAULT_PORT);
    *c = (struct choices){.engine = ENGINE_AUTO, .task_run = TASK_RUN_BEST, .wait_batch = "auto"};
    describe_options(model, c);
    parse_server_options(argc, argv, SUMMARY, common, model, MODEL_OPTIONS);

    if (!parse_wait_batch(c->wait_batch, &c->batching, &c->wait_batch_us))
        server_usage_error(SUMMARY, model, MODEL_OPTIONS, "--wait-batch: auto, off or microseconds from 1 to %d, "
                           "not '%s'", MAX_WAIT_BATCH_US, c->wait_batch);
    const char *conflict = NULL;
    bool uring_options = c->sqpoll || c->oneshot || c->oneshot_recv || c->task_run != TASK_RUN_BEST ||
                         c->registered_ring != ON || c->batching == BATCH_ALWAYS;
    if (c->engine == ENGINE_POSIX_AIO && uring_options)
        conflict = "--sqpoll, --oneshot, --oneshot-recv, --task-run, --registered-ring and --wait-batch apply to "
                   "the uring engine only";
    else if (c->sqpoll && c->batching == BATCH_ALWAYS)
        conflict = "--wait-batch does not apply with --sqpoll (the polling thread submits, we only wait)";
    else if (c->sqpoll && c->task_run != TASK_RUN_BEST)
        conflict = "--task-run does not apply with --sqpoll (the polling thread runs the task work)";
    if (conflict)
        server_usage_error(SUMMARY, model, MODEL_OPTIONS, "%s", conflict);
}

/* 0 allows everyone, 1 only members of kernel.io_uring_group, 2 no one. */
static long io_uring_disabled_setting(void)
{
    FILE *f = fopen("/proc/sys/kernel/io_uring_disabled", "r");
    if (!f)
        return 0; /* kernels before 6.6 have no such switch */
    long value = 0;
    if (fscanf(f, "%ld", &value) != 1)
        value = 0;
    fclose(f);
    return value;
}

/* Why io_uring_setup failed, in words a user can act on. */
static void explain_unavailable(int err, char *why, size_t len)
{
    long disabled = err == EPERM ? io_uring_disabled_setting() : 0;
    if (disabled > 0)
        snprintf(why, len, "kernel.io_uring_disabled is %ld", disabled);
    else if (err == EPERM)
        snprintf(why, len, "io_uring_setup: %s (a seccomp profile or security policy forbids it)", strerror(err));
    else if (err == ENOSYS)
        snprintf(why, len, "io_uring_setup: %s (this kernel has no io_uring)", strerror(err));
    else
        snprintf(why, len, "io_uring_setup: %s", strerror(err));
}

/* --sqpoll (before 5.11 it needed CAP_SYS_ADMIN and registered files) or a
 * task-run mode can be refused where io_uring itself is allowed: that is
 * the user's explicit request failing, so an error, not a fallback. */
static noreturn void request_refused(const struct uring_options *options, int err)
{
    if (options->sqpoll)
        die("--sqpoll is not permitted here: %s%s", strerror(err),
            err == EPERM || err == EOPNOTSUPP ? " (it needs Linux 5.11, or CAP_SYS_ADMIN before that)" : "");
    die("--task-run %s is refused by this kernel: %s", task_run_names[options->task_run], strerror(err));
}

/* NULL if io_uring is unusable here, with the reason in why. */
static struct uring_server *try_uring(const struct engine_setup *setup, const struct uring_options *options,
                                      char *why, size_t why_len)
{
    struct uring_server *srv = uring_server_create(setup, options);
    if (srv)
        return srv;
    int err = errno;
    if (options->sqpoll || options->task_run != TASK_RUN_BEST) {
        /* Is it what was asked for, or io_uring itself? */
        struct uring_options plain = {.task_run = TASK_RUN_BEST, .oneshot = options->oneshot};
        struct uring_server *probe = uring_server_create(setup, &plain);
        if (probe) {
            uring_server_destroy(probe);
            request_refused(options, err);
        }
        err = errno;
    }
    explain_unavailable(err, why, why_len);
    return NULL;
}

bool engine_refuses(int fd, const char *peer, long clients, long max_clients, long table_size)
{
    if (clients >= max_clients) {
        refuse_connection(fd, peer, "%ld clients already connected", clients);
        return true;
    }
    if (fd >= table_size) {
        refuse_connection(fd, peer, "descriptor beyond the connection table");
        return true;
    }
    return false;
}

int main(int argc, char **argv)
{
    struct server_options common;
    struct choices c;
    parse_options(argc, argv, &common, &c);
    install_stop_handlers();
    /* From here on the stop signals reach this thread only inside the
     * engine's wait, and every thread created later inherits the block. */
    sigset_t wait_mask;
    block_stop_signals(&wait_mask);

    long fd_limit = reserve_descriptors(common.max_clients);
    struct engine_setup setup = {
        .listen_fd = listen_on(common.host, common.port, false),
        .max_clients = common.max_clients,
        .fd_limit = fd_limit,
        .stats = stats_create(),
    };

    char why[256] = "";
    struct uring_server *uring = NULL;
    if (c.engine != ENGINE_POSIX_AIO) {
        struct uring_options options = {.task_run = (enum ring_task_run)c.task_run,
                                        .sqpoll = c.sqpoll,
                                        .oneshot = c.oneshot,
                                        .oneshot_recv = c.oneshot_recv,
                                        .registered_ring = c.registered_ring == ON,
                                        .batching = c.batching,
                                        .wait_batch_us = c.wait_batch_us};
        uring = try_uring(&setup, &options, why, sizeof why);
        if (!uring && c.engine == ENGINE_URING)
            die("io_uring is unavailable: %s", why);
    }
    if (uring) {
        char features[256];
        uring_server_describe(uring, features, sizeof features);
        log_event("async with io_uring: %s", features);
        announce_listening(setup.listen_fd);
        uring_server_run(uring, &wait_mask);
        uring_server_destroy(uring);
    } else {
        if (c.engine == ENGINE_AUTO)
            log_event("async with posix-aio, as io_uring is unavailable: %s", why);
        else
            log_event("async with posix-aio: aio_read and aio_write, each completion a real-time signal");
        announce_listening(setup.listen_fd);
        posix_aio_server_run(&setup);
    }

    if (close(setup.listen_fd) < 0)
        warn_errno("close the listening socket");
    stats_print_summary(setup.stats);
    return 0;
}
