#include "signals.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/socket.h>
#include <unistd.h>

/* A handler may only touch variables of this type (and call the few
 * async-signal-safe functions, such as shutdown and getpid). */
static volatile sig_atomic_t stop_flag;
static volatile sig_atomic_t listener_to_wake = -1;
static volatile sig_atomic_t listener_owner;

static void on_stop_signal(int signo)
{
    (void)signo;
    int saved = errno; /* the interrupted code may be about to read it */
    stop_flag = 1;
    if (listener_to_wake >= 0 && getpid() == listener_owner)
        (void)shutdown(listener_to_wake, SHUT_RD);
    errno = saved;
}

void install_stop_handlers(void)
{
    struct sigaction sa = {.sa_handler = on_stop_signal}; /* no SA_RESTART, on purpose */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
        die_errno("sigaction");

    struct sigaction ignore = {.sa_handler = SIG_IGN};
    sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGPIPE, &ignore, NULL) < 0)
        die_errno("sigaction SIGPIPE");
}

bool stop_requested(void)
{
    return stop_flag != 0;
}

void stop_wakes_listener(int listen_fd)
{
    listener_owner = getpid();
    listener_to_wake = listen_fd;
}

void stop_signal_set(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

void block_stop_signals(sigset_t *wait_mask)
{
    sigset_t stop_signals;
    stop_signal_set(&stop_signals);
    int rc = pthread_sigmask(SIG_BLOCK, &stop_signals, wait_mask);
    if (rc != 0) {
        errno = rc;
        die_errno("pthread_sigmask");
    }
    if (wait_mask) {
        sigdelset(wait_mask, SIGINT);
        sigdelset(wait_mask, SIGTERM);
    }
}
