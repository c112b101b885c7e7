#include "ring.h"

#include "log.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* glibc has no wrappers for these three: they are called by number. */
static int io_uring_setup(unsigned entries, struct io_uring_params *params)
{
    return (int)syscall(__NR_io_uring_setup, entries, params);
}

/* The kernel's sigset is _NSIG bits, not glibc's larger sigset_t. */
enum { KERNEL_SIGSET_BYTES = _NSIG / 8 };

static int io_uring_enter(const struct ring *ring, unsigned to_submit, unsigned min_complete, unsigned flags,
                          const sigset_t *mask)
{
    /* syscall() reads every argument as a long: the last, passed on the
     * stack, must be one, or its upper half is whatever was there. */
    return (int)syscall(__NR_io_uring_enter, ring->enter_fd, to_submit, min_complete, flags | ring->enter_flags, mask,
                        (size_t)(mask ? KERNEL_SIGSET_BYTES : 0));
}

/* The argument of a wait with IORING_ENTER_EXT_ARG, laid out as the
 * kernel's struct io_uring_getevents_arg; headers before 6.12 call
 * min_wait_usec "pad". */
struct wait_arg {
    uint64_t sigmask;
    uint32_t sigmask_sz;
    uint32_t min_wait_usec;
    uint64_t ts;
};

/* With a minimum wait the kernel also needs an overall timeout, or it
 * returns when the minimum has passed even with nothing to report: an idle
 * server would wake every few microseconds. This one only bounds a sleep. */
enum { IDLE_WAIT_SECONDS = 60 };

static int io_uring_enter_batched(const struct ring *ring, unsigned to_submit, unsigned min_complete,
                                  unsigned flags, const sigset_t *mask)
{
    struct __kernel_timespec idle = {.tv_sec = IDLE_WAIT_SECONDS};
    struct wait_arg arg = {.sigmask = (uintptr_t)mask, .sigmask_sz = mask ? KERNEL_SIGSET_BYTES : 0,
                           .min_wait_usec = ring->min_wait_usec, .ts = (uintptr_t)&idle};
    int rc = (int)syscall(__NR_io_uring_enter, ring->enter_fd, to_submit, min_complete,
                          flags | ring->enter_flags | IORING_ENTER_EXT_ARG, &arg, sizeof arg);
    if (rc < 0 && errno == ETIME)
        return 0; /* the timeout ended the wait: not an error */
    return rc;
}

int ring_register(struct ring *ring, unsigned opcode, void *arg, unsigned nr_args)
{
    if (syscall(__NR_io_uring_register, ring->fd, opcode, arg, nr_args) < 0)
        return -errno;
    return 0;
}

int ring_register_fd(struct ring *ring)
{
    struct io_uring_rsrc_update update = {.offset = -1U, .data = (uint64_t)ring->fd};
    if (syscall(__NR_io_uring_register, ring->fd, IORING_REGISTER_RING_FDS, &update, 1) != 1)
        return errno ? -errno : -EINVAL;
    ring->enter_fd = (int)update.offset;
    ring->enter_flags = IORING_ENTER_REGISTERED_RING;
    return 0;
}

/* --- setting up ---------------------------------------------------------- */

/* How the kernel runs the last step of a completion ("task work") in our
 * thread. By default it interrupts the thread as soon as there is some,
 * like a signal; on a 2-core VM that cost two to three times the CPU per
 * message at 10 and 100 connections (docs/async.md). COOP_TASKRUN lets it
 * wait for our next system call; DEFER_TASKRUN (which needs SINGLE_ISSUER:
 * only this thread submits) waits until we ask for completions, so they
 * arrive in batches.
 * Newer modes first; an older kernel refuses a flag it does not know with
 * EINVAL, and the next is tried. */
static const struct task_run_mode {
    enum ring_task_run mode;
    unsigned flags;
    const char *name;
} task_run_modes[] = {
#if defined(IORING_SETUP_SINGLE_ISSUER) && defined(IORING_SETUP_DEFER_TASKRUN)
    {TASK_RUN_DEFERRED, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, "single issuer, deferred task running"},
#endif
#ifdef IORING_SETUP_COOP_TASKRUN
    {TASK_RUN_COOPERATIVE, IORING_SETUP_COOP_TASKRUN, "cooperative task running"},
#endif
    {TASK_RUN_INTERRUPTING, 0, "task running by interruption"},
};
enum { TASK_RUN_MODES = sizeof task_run_modes / sizeof task_run_modes[0] };

static int try_setup(struct ring *ring, const struct ring_config *config, const struct task_run_mode *mode,
                     struct io_uring_params *p)
{
    memset(p, 0, sizeof *p);
    p->flags = IORING_SETUP_CQSIZE | mode->flags;
    p->cq_entries = config->cq_entries;
    if (config->sqpoll) {
        p->flags |= IORING_SETUP_SQPOLL;
        p->sq_thread_idle = config->sqpoll_idle_ms;
    }
    int fd = io_uring_setup(config->sq_entries, p);
    if (fd < 0)
        return -errno;
    ring->fd = ring->enter_fd = fd;
    ring->setup_flags = p->flags;
    ring->task_run = config->sqpoll ? "task running by the polling thread" : mode->name;
    return 0;
}

static int setup_with_task_run(struct ring *ring, const struct ring_config *config, struct io_uring_params *p)
{
    /* With SQPOLL the kernel's polling thread runs the task work, and the
     * kernel refuses the task-run flags: only the last mode applies. */
    enum ring_task_run wanted = config->sqpoll ? TASK_RUN_INTERRUPTING : config->task_run;
    int rc = -EINVAL;
    for (size_t i = 0; i < TASK_RUN_MODES; i++) {
        if (wanted != TASK_RUN_BEST && task_run_modes[i].mode != wanted)
            continue;
        rc = try_setup(ring, config, &task_run_modes[i], p);
        if (rc != -EINVAL || wanted != TASK_RUN_BEST)
            return rc;
    }
    return rc; /* -EINVAL also when these headers lack the mode asked for */
}

static void *map_ring_memory(int fd, size_t len, off_t what)
{
    return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, what);
}

/* The kernel says where each field lives (p->sq_off, p->cq_off): offsets
 * into the two mappings, so the layout can change without breaking us. */
static int map_rings(struct ring *ring, const struct io_uring_params *p)
{
    ring->sq_map_len = p->sq_off.array + p->sq_entries * sizeof(uint32_t);
    ring->cq_map_len = p->cq_off.cqes + p->cq_entries * sizeof(struct io_uring_cqe);
    /* Since 5.4 both rings live in one mapping. */
    bool single_mmap = p->features & IORING_FEAT_SINGLE_MMAP;
    if (single_mmap && ring->cq_map_len > ring->sq_map_len)
        ring->sq_map_len = ring->cq_map_len;

    ring->sq_map = map_ring_memory(ring->fd, ring->sq_map_len, IORING_OFF_SQ_RING);
    if (ring->sq_map == MAP_FAILED)
        return -errno;
    if (single_mmap) {
        ring->cq_map = ring->sq_map;
    } else {
        ring->cq_map = map_ring_memory(ring->fd, ring->cq_map_len, IORING_OFF_CQ_RING);
        if (ring->cq_map == MAP_FAILED)
            return -errno;
    }
    ring->sqes_len = p->sq_entries * sizeof(struct io_uring_sqe);
    ring->sqes = map_ring_memory(ring->fd, ring->sqes_len, IORING_OFF_SQES);
    if (ring->sqes == MAP_FAILED)
        return -errno;

    char *sq = ring->sq_map, *cq = ring->cq_map;
    ring->sq_head = (_Atomic uint32_t *)(sq + p->sq_off.head);
    ring->sq_tail = (_Atomic uint32_t *)(sq + p->sq_off.tail);
    ring->sq_flags = (_Atomic uint32_t *)(sq + p->sq_off.flags);
    ring->sq_mask = *(uint32_t *)(sq + p->sq_off.ring_mask);
    ring->sq_entries = *(uint32_t *)(sq + p->sq_off.ring_entries);
    uint32_t *sq_array = (uint32_t *)(sq + p->sq_off.array);
    for (uint32_t i = 0; i < ring->sq_entries; i++)
        sq_array[i] = i;

    ring->cq_head = (_Atomic uint32_t *)(cq + p->cq_off.head);
    ring->cq_tail = (_Atomic uint32_t *)(cq + p->cq_off.tail);
    ring->cq_dropped = (_Atomic uint32_t *)(cq + p->cq_off.overflow);
    ring->cq_mask = *(uint32_t *)(cq + p->cq_off.ring_mask);
    ring->cq_entries = *(uint32_t *)(cq + p->cq_off.ring_entries);
    ring->cqes = (struct io_uring_cqe *)(cq + p->cq_off.cqes);
    ring->sqe_tail = atomic_load_explicit(ring->sq_tail, memory_order_relaxed);
    return 0;
}

int ring_open(struct ring *ring, const struct ring_config *config)
{
    *ring = (struct ring){.fd = -1, .sq_map = MAP_FAILED, .cq_map = MAP_FAILED, .sqes = MAP_FAILED};
    struct io_uring_params p;
    int rc = setup_with_task_run(ring, config, &p);
    if (rc < 0)
        return rc;
    ring->features = p.features;
    rc = map_rings(ring, &p);
    if (rc < 0) {
        ring_close(ring);
        return rc;
    }
    return 0;
}

void ring_close(struct ring *ring)
{
    /* A registered ring descriptor holds a reference to the ring: drop it,
     * or closing fd would not free the ring before the process exits. */
    if (ring->enter_flags & IORING_ENTER_REGISTERED_RING) {
        struct io_uring_rsrc_update update = {.offset = (uint32_t)ring->enter_fd};
        if (syscall(__NR_io_uring_register, ring->fd, IORING_UNREGISTER_RING_FDS, &update, 1) != 1)
            warn_errno("unregister the io_uring descriptor");
    }
    if (ring->sqes != MAP_FAILED)
        munmap(ring->sqes, ring->sqes_len);
    if (ring->cq_map != MAP_FAILED && ring->cq_map != ring->sq_map)
        munmap(ring->cq_map, ring->cq_map_len);
    if (ring->sq_map != MAP_FAILED)
        munmap(ring->sq_map, ring->sq_map_len);
    /* Closing the ring cancels whatever it still had in flight. */
    if (ring->fd >= 0 && close(ring->fd) < 0)
        warn_errno("close the io_uring");
    free(ring->set_aside);
    *ring = (struct ring){.fd = -1, .sq_map = MAP_FAILED, .cq_map = MAP_FAILED, .sqes = MAP_FAILED};
}

/* --- submitting ---------------------------------------------------------- */

static bool uses_sqpoll(const struct ring *ring)
{
    return ring->setup_flags & IORING_SETUP_SQPOLL;
}

/* Store-release: the kernel that sees the new tail sees the SQEs too. */
static void publish_sq_tail(struct ring *ring)
{
    atomic_store_explicit(ring->sq_tail, ring->sqe_tail, memory_order_release);
}

/* Entries published but not yet taken by the kernel. The load-acquire
 * pairs with the kernel moving the head: once it has, the SQE was read and
 * its slot may be reused. */
static uint32_t sq_unconsumed(const struct ring *ring)
{
    return ring->sqe_tail - atomic_load_explicit(ring->sq_head, memory_order_acquire);
}

/* The polling thread goes to sleep after sqpoll_idle_ms without work and
 * sets NEED_WAKEUP. The full fence orders our tail store before reading the
 * flag, so the thread cannot fall asleep unseen between the two. */
static bool sq_thread_needs_wakeup(struct ring *ring)
{
    atomic_thread_fence(memory_order_seq_cst);
    return atomic_load_explicit(ring->sq_flags, memory_order_relaxed) & IORING_SQ_NEED_WAKEUP;
}

static uint32_t cq_ready(const struct ring *ring)
{
    return atomic_load_explicit(ring->cq_tail, memory_order_acquire) -
           atomic_load_explicit(ring->cq_head, memory_order_relaxed);
}

/* The kernel answers -EBUSY when it holds overflowed completions and the
 * CQ has no room to post them. Move what is in the CQ aside (reaped, not
 * lost: ring_next_completion hands these out first) so it has room. */
static void set_aside_completions(struct ring *ring)
{
    uint32_t ready = cq_ready(ring);
    if (ring->set_aside_count + ready > ring->set_aside_cap) {
        size_t cap = (ring->set_aside_count + ready) * 2;
        struct io_uring_cqe *grown = realloc(ring->set_aside, cap * sizeof *grown);
        if (!grown)
            die("no memory to set completions aside");
        ring->set_aside = grown;
        ring->set_aside_cap = cap;
    }
    uint32_t head = atomic_load_explicit(ring->cq_head, memory_order_relaxed);
    for (uint32_t i = 0; i < ready; i++)
        ring->set_aside[ring->set_aside_count++] = ring->cqes[(head + i) & ring->cq_mask];
    atomic_store_explicit(ring->cq_head, head + ready, memory_order_release);
}

/* The SQ is full: give the kernel what it holds, and retry until it has
 * taken some. With SQPOLL the polling thread takes them; we wait for it. */
static void make_room_in_sq(struct ring *ring)
{
    publish_sq_tail(ring);
    int rc;
    if (uses_sqpoll(ring)) {
        unsigned flags = IORING_ENTER_SQ_WAIT | (sq_thread_needs_wakeup(ring) ? IORING_ENTER_SQ_WAKEUP : 0);
        rc = io_uring_enter(ring, 0, 0, flags, NULL);
    } else {
        rc = io_uring_enter(ring, sq_unconsumed(ring), 0, 0, NULL);
    }
    if (rc >= 0 || errno == EINTR)
        return;
    if (errno == EBUSY)
        set_aside_completions(ring);
    else if (errno == EAGAIN) /* the kernel is short of memory for requests */
        sched_yield();
    else
        die_errno("io_uring_enter (submit)");
}

struct io_uring_sqe *ring_get_sqe(struct ring *ring)
{
    while (ring->sqe_tail - atomic_load_explicit(ring->sq_head, memory_order_acquire) >= ring->sq_entries)
        make_room_in_sq(ring);
    struct io_uring_sqe *sqe = &ring->sqes[ring->sqe_tail & ring->sq_mask];
    ring->sqe_tail++;
    memset(sqe, 0, sizeof *sqe);
    return sqe;
}

int ring_submit_and_wait(struct ring *ring, unsigned wait_for, const sigset_t *wait_mask)
{
    publish_sq_tail(ring);
    unsigned to_submit = 0, flags = 0;
    if (uses_sqpoll(ring)) {
        /* The polling thread submits; we call the kernel only to wake it,
         * or to wait when no completion is there yet. */
        if (sq_thread_needs_wakeup(ring))
            flags |= IORING_ENTER_SQ_WAKEUP;
    } else {
        to_submit = sq_unconsumed(ring);
    }
    bool enough_ready = cq_ready(ring) >= wait_for && !ring_cq_overflowed(ring);
    if (to_submit == 0 && !(flags & IORING_ENTER_SQ_WAKEUP) && enough_ready)
        return 0; /* nothing to tell the kernel, nothing to wait for */
    if (!enough_ready)
        flags |= IORING_ENTER_GETEVENTS; /* also flushes overflowed completions into the CQ */
    int rc;
    if (!enough_ready && ring->min_wait_usec > 0)
        rc = io_uring_enter_batched(ring, to_submit, wait_for, flags, wait_mask);
    else
        rc = io_uring_enter(ring, to_submit, enough_ready ? 0 : wait_for, flags, wait_mask);
    return rc < 0 ? -errno : 0;
}

/* --- completing ---------------------------------------------------------- */

bool ring_next_completion(struct ring *ring, struct io_uring_cqe *cqe)
{
    if (ring->set_aside_next < ring->set_aside_count) {
        *cqe = ring->set_aside[ring->set_aside_next++];
        if (ring->set_aside_next == ring->set_aside_count)
            ring->set_aside_next = ring->set_aside_count = 0;
        return true;
    }
    uint32_t head = atomic_load_explicit(ring->cq_head, memory_order_relaxed);
    /* Load-acquire: the CQE is read only after the tail that published it. */
    if (head == atomic_load_explicit(ring->cq_tail, memory_order_acquire))
        return false;
    *cqe = ring->cqes[head & ring->cq_mask];
    /* Store-release: the kernel reuses the slot only after we read it. */
    atomic_store_explicit(ring->cq_head, head + 1, memory_order_release);
    return true;
}

bool ring_cq_overflowed(const struct ring *ring)
{
    return atomic_load_explicit(ring->sq_flags, memory_order_relaxed) & IORING_SQ_CQ_OVERFLOW;
}

unsigned ring_cq_dropped(const struct ring *ring)
{
    return atomic_load_explicit(ring->cq_dropped, memory_order_relaxed);
}
