/* A small readiness loop in the manner of Redis' ae: one thread waits for
 * many sockets at once, then calls the handler of each one that is ready.
 *
 * Three backends implement the wait, one short file each: select.c, poll.c,
 * epoll.c. They differ only in how the interest set reaches the kernel and
 * how the ready set comes back; the echo server (server.c) and the FTP
 * server (../ftp) are written once against this interface.
 *
 * Which phase waits: the thread sleeps only in the wait (select / poll /
 * epoll_wait), for every socket at once (phase 1). By the time a handler
 * runs, its read or write finds the data already there and is held in the
 * call only while the kernel copies it (phase 2). */
#ifndef IOMODELS_LOOP_H
#define IOMODELS_LOOP_H

#include <stdbool.h>

enum loop_api { LOOP_SELECT, LOOP_POLL, LOOP_EPOLL };

/* The choices' names, in enum order, NULL-terminated: for --api. */
extern const char *const loop_api_names[];

enum loop_interest {
    LOOP_READABLE = 1,
    LOOP_WRITABLE = 2,
};

struct loop;

/* ready: the LOOP_READABLE / LOOP_WRITABLE bits the wait reported. An error
 * or hang-up on the socket is reported as readable (and writable, if that
 * was asked for), so the handler's next read or write sees the error. */
typedef void loop_handler(struct loop *loop, int fd, int ready, void *data);
typedef void loop_tick_handler(struct loop *loop, void *data);

/* capacity: the highest descriptor number the loop must be able to watch,
 * plus one. edge_triggered: epoll only (EPOLLET); the handlers must then
 * drain to EAGAIN. Returns NULL with errno set on failure. */
struct loop *loop_create(enum loop_api api, bool edge_triggered, int capacity);
void loop_destroy(struct loop *loop);

const char *loop_api_name(const struct loop *loop);
bool loop_is_edge_triggered(const struct loop *loop);

/* false when the backend cannot take this descriptor (select: fd >=
 * FD_SETSIZE, which FD_SET must never see; any backend: fd >= capacity). */
bool loop_can_watch(const struct loop *loop, int fd);

/* Starts watching fd, or changes what it is watched for. interest 0 keeps
 * the registration but asks for nothing (a paused listener). Returns 0, or
 * -1 with errno set. */
int loop_watch(struct loop *loop, int fd, int interest, loop_handler *handler, void *data);

/* Stops watching fd; call it before closing fd. */
void loop_unwatch(struct loop *loop, int fd);

/* Calls handler about every interval_ms while the loop runs (timeouts,
 * resuming a paused accept). One tick per loop; interval_ms 0 removes it. */
void loop_set_tick(struct loop *loop, int interval_ms, loop_tick_handler *handler, void *data);

/* Waits and dispatches until loop_stop() or a stop signal (signals.h). The
 * stop signals are blocked outside the wait and let in only during it
 * (pselect / ppoll / epoll_pwait), so none is lost. Returns 0, or -1 with
 * errno set if the wait itself failed. */
int loop_run(struct loop *loop);
/* The handlers left in the current batch still run; loop_run returns
 * before the next wait. */
void loop_stop(struct loop *loop);

#endif
