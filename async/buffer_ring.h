/* A provided-buffer ring: buffers handed to the kernel in advance, so a
 * receive needs no buffer of its own while it waits. The kernel picks one
 * only when data arrives and names it in the completion (its buffer id);
 * an idle connection therefore holds no memory at all.
 *
 * The ring is a third queue shared with the kernel, one-way like the
 * others: we add buffers at the tail (store-release), the kernel takes them
 * at the head. A buffer that went out comes back only when we give it
 * back, which the server does once the echo of its bytes has completed.
 * (Kernel 5.19+; older kernels refuse the registration with EINVAL.)
 *
 * The ring is only a window onto a larger pool: it holds at most `window`
 * buffers, refilled from a stack of free ones, most recently used first. So
 * the memory actually touched follows the load (a few hot buffers), while
 * the pool has room for every connection's 64 KiB (up to a cap), so
 * connections which stopped reading their echo cannot take every buffer
 * from the others. */
#ifndef IOMODELS_BUFFER_RING_H
#define IOMODELS_BUFFER_RING_H

#include "ring.h"

#include "list.h"

#include <stddef.h>
#include <stdint.h>

/* Per buffer while a connection holds it: its place in that connection's
 * queue and how many bytes it holds. */
struct buffer_link {
    int next; /* the next buffer id in the same queue, or -1 */
    unsigned length;
};

struct buffer_ring {
    struct io_uring_buf_ring *entries; /* window slots shared with the kernel, page-aligned */
    unsigned window;                   /* slots: a power of two */
    unsigned in_ring;                  /* published and not yet taken by the kernel */
    uint16_t tail;                     /* ours: advanced and published by refill */
    uint16_t group;                    /* the buffer group id receives name */
    unsigned char *memory;             /* count buffers of size bytes, untouched until used */
    unsigned count, size;
    uint16_t *free_ids; /* a stack: the most recently given back on top */
    unsigned free_count;
    struct buffer_link *links; /* indexed by buffer id */
    /* Receivers that found the ring empty (ENOBUFS), oldest first: they
     * wait here instead of retrying at once, which would only fail again. */
    struct list_node waiting;
};

/* Allocates count buffers of size bytes (count at most 65536), registers a
 * ring of window slots (a power of two, at most 32768) as group, and fills
 * it. Returns 0, or -errno (EINVAL: the kernel has no buffer rings). */
int buffer_ring_create(struct buffer_ring *br, struct ring *ring, uint16_t group, unsigned window, unsigned count,
                       unsigned size);
void buffer_ring_destroy(struct buffer_ring *br, struct ring *ring);

static inline unsigned char *buffer_ring_data(const struct buffer_ring *br, uint16_t id)
{
    return br->memory + (size_t)id * br->size;
}

/* A completion named buffer id: the kernel took it from the ring. */
void buffer_ring_taken(struct buffer_ring *br, uint16_t id);

/* Buffer id is ours to reuse: onto the free stack. */
void buffer_ring_give_back(struct buffer_ring *br, uint16_t id);

/* Tops the ring up from the free stack and publishes the new tail. Returns
 * how many buffers the ring now offers. */
unsigned buffer_ring_refill(struct buffer_ring *br);

/* The waiting list: a receiver joins it on ENOBUFS and leaves it when a
 * buffer is back (buffer_ring_next_waiter) or when it closes (list_del). */
void buffer_ring_wait(struct buffer_ring *br, struct list_node *waiter);
struct list_node *buffer_ring_next_waiter(struct buffer_ring *br); /* NULL if none */

/* One connection's received buffers, oldest first, each waiting for its
 * echo. A buffer goes back to the ring once all its bytes are sent. */
struct buffer_queue {
    int head, tail;     /* buffer ids, -1 when empty */
    unsigned count;
    size_t head_sent;   /* bytes of the oldest buffer already sent */
};

void buffer_queue_init(struct buffer_queue *q);
void buffer_queue_add(struct buffer_ring *br, struct buffer_queue *q, uint16_t id, unsigned length);

/* The oldest buffer's bytes not yet sent; the queue must not be empty. */
const unsigned char *buffer_queue_unsent(const struct buffer_ring *br, const struct buffer_queue *q, size_t *len);

/* n more bytes of the oldest buffer were sent: once all are, it goes back. */
void buffer_queue_sent(struct buffer_ring *br, struct buffer_queue *q, size_t n);

/* Gives every buffer of the queue back (the connection is closing). */
void buffer_queue_drop(struct buffer_ring *br, struct buffer_queue *q);

#endif
