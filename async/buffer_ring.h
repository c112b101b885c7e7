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

#include <stdint.h>

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

#endif
