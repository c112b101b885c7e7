/* How a server stops: SIGINT or SIGTERM sets a flag that every loop checks.
 *
 * The handlers are installed without SA_RESTART, so a call blocked in the
 * kernel (accept, read, select, epoll_wait, io_uring_enter...) returns
 * EINTR and the loop gets to look at the flag. SIGPIPE is ignored: writing
 * to a peer that has gone must be an EPIPE for one connection, never the
 * death of the server. */
#ifndef IOMODELS_SIGNALS_H
#define IOMODELS_SIGNALS_H

#include <signal.h>
#include <stdbool.h>

void install_stop_handlers(void);
bool stop_requested(void);

/* For a server that blocks in accept(): a stop signal also shuts listen_fd
 * down, so accept() returns (EINVAL) even when the signal landed after the
 * flag check and before the call, where it could only set the flag. Only
 * this process does it, never a forked child. Pass -1 before closing the
 * listener. */
void stop_wakes_listener(int listen_fd);

/* Blocks SIGINT and SIGTERM in the calling thread and stores in *wait_mask
 * the mask to use *inside* the wait (pselect, ppoll, epoll_pwait,
 * sigsuspend, io_uring_enter): a stop signal can then arrive only while the
 * loop waits, never in the gap between checking the flag and waiting.
 * Threads created afterwards inherit the block, so only the caller is
 * woken. wait_mask may be NULL in a program that never lets them in, but
 * reads them from a signalfd made with stop_signal_set(). */
void block_stop_signals(sigset_t *wait_mask);

/* The stop signals as a set: SIGINT and SIGTERM. */
void stop_signal_set(sigset_t *set);

#endif
