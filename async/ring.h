/* io_uring on raw system calls: two queues in memory the process shares
 * with the kernel.
 *
 *   submission queue (SQ)   we fill an entry (SQE) and move the tail;
 *                           the kernel takes entries and moves the head.
 *   completion queue (CQ)   the kernel writes an entry (CQE) and moves the
 *                           tail; we read entries and move the head.
 *
 * Each side only ever writes its own index, so no lock is needed: only the
 * order of memory accesses matters. Publishing an index is a store-release
 * (the entries written before it are visible before the index is), and
 * reading the other side's index is a load-acquire (the entries are read
 * only after the index that announced them).
 *
 * io_uring_setup(2) creates the rings, mmap(2) maps them, io_uring_enter(2)
 * tells the kernel how many entries were added and, if asked, waits for
 * completions. That wait is the only call in which the server blocks. The
 * data is in our memory before its completion is posted, but the copy is
 * mostly done on this thread's own time: inline at submit when the data is
 * already there, otherwise as task work that runs when we enter the kernel
 * (docs/async.md says when, and what a trace cannot show). */
#ifndef IOMODELS_RING_H
#define IOMODELS_RING_H

#include <linux/io_uring.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How the kernel runs the last step of a completion in our thread (ring.c
 * explains). BEST tries them in this order and takes the first accepted. */
enum ring_task_run { TASK_RUN_BEST, TASK_RUN_DEFERRED, TASK_RUN_COOPERATIVE, TASK_RUN_INTERRUPTING };

struct ring_config {
    enum ring_task_run task_run;
    unsigned sq_entries; /* a power of two */
    unsigned cq_entries; /* several times sq_entries: one request may complete many times */
    bool sqpoll;         /* a kernel thread takes the submissions: no system call to submit */
    unsigned sqpoll_idle_ms;
};

struct ring {
    int fd;
    /* What io_uring_enter is given: fd, or its index in the ring's table of
     * registered ring descriptors with IORING_ENTER_REGISTERED_RING. */
    int enter_fd;
    unsigned enter_flags;
    /* Batched waits: with a kernel that has IORING_FEAT_MIN_TIMEOUT (6.12),
     * a wait for several completions returns after this many microseconds
     * with what has come. 0: off. */
    unsigned min_wait_usec;
    unsigned features;    /* IORING_FEAT_* the kernel offers */
    unsigned setup_flags; /* IORING_SETUP_* the kernel accepted */
    const char *task_run; /* which task-run mode was accepted, for the log */

    /* Submission queue. The array of indices is filled once with 0..n-1,
     * so slot i of the ring always names SQE i. */
    void *sq_map;
    size_t sq_map_len;
    _Atomic uint32_t *sq_head;  /* the kernel's */
    _Atomic uint32_t *sq_tail;  /* ours */
    _Atomic uint32_t *sq_flags; /* the kernel's: NEED_WAKEUP, CQ_OVERFLOW, TASKRUN */
    uint32_t sq_mask, sq_entries;
    struct io_uring_sqe *sqes;
    size_t sqes_len;
    uint32_t sqe_tail; /* entries filled in, published to the kernel or not */

    /* Completion queue. */
    void *cq_map;
    size_t cq_map_len;
    _Atomic uint32_t *cq_head;    /* ours */
    _Atomic uint32_t *cq_tail;    /* the kernel's */
    _Atomic uint32_t *cq_dropped; /* completions the kernel had to throw away */
    uint32_t cq_mask, cq_entries;
    struct io_uring_cqe *cqes;

    /* Completions moved out of the CQ to make room when the kernel
     * answered -EBUSY in the middle of a batch; handed out first. */
    struct io_uring_cqe *set_aside;
    size_t set_aside_count, set_aside_next, set_aside_cap;
};

/* Creates and maps the rings. With TASK_RUN_BEST the task-run flags are
 * tried from the best down (SINGLE_ISSUER + DEFER_TASKRUN, COOP_TASKRUN,
 * none) as long as the kernel answers EINVAL; any other mode is tried
 * alone. Returns 0, or -errno from io_uring_setup or mmap (ENOSYS: no
 * io_uring; EPERM: forbidden; EINVAL: a flag this kernel does not know). */
int ring_open(struct ring *ring, const struct ring_config *config);
void ring_close(struct ring *ring);

/* An empty SQE to fill in; it goes to the kernel at the next submit. When
 * the SQ is full, what it holds is submitted first: never NULL. */
struct io_uring_sqe *ring_get_sqe(struct ring *ring);

/* Hands the filled SQEs to the kernel and waits until at least wait_for
 * completions are there (0: do not wait), or, with min_wait_usec set, until
 * that long has passed and at least one is there. wait_mask is the signal mask
 * during the wait, so a stop signal blocked elsewhere can interrupt it.
 * Returns 0, -EINTR (a signal came), -EBUSY (reap completions, then call
 * again), or another -errno from io_uring_enter. */
int ring_submit_and_wait(struct ring *ring, unsigned wait_for, const sigset_t *wait_mask);

/* Copies the oldest completion into *cqe and frees its slot at once (the
 * CQ head moves), so handling it may submit more. false if there is none. */
bool ring_next_completion(struct ring *ring, struct io_uring_cqe *cqe);

/* The kernel holds completions that did not fit in the CQ: it posts them
 * as the CQ empties, on the next io_uring_enter that asks for events. */
bool ring_cq_overflowed(const struct ring *ring);
unsigned ring_cq_dropped(const struct ring *ring);

/* io_uring_register(2): returns 0 or -errno. */
int ring_register(struct ring *ring, unsigned opcode, void *arg, unsigned nr_args);

/* Registers the ring's own descriptor (IORING_REGISTER_RING_FDS, 5.18), so
 * each io_uring_enter skips looking the descriptor up. Returns 0, or
 * -errno (EINVAL: this kernel cannot), and the ring is used as before. */
int ring_register_fd(struct ring *ring);

#endif
