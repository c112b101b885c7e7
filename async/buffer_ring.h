/* A provided-buffer ring: buffers handed to the kernel in advance, so a
 * receive needs no buffer of its own while it waits. The kernel picks one
 * only when data arrives and names it in the completion (its buffer id);
 * an idle connection therefore holds no memory at all.
 *
 * The ring is a third queue shared with the kernel, one-way like the
 * others: we add buffers at the tail (store-release), the kernel takes them
 * at the head. A buffer that went out comes back only when we give it
 * back, which the server does once the echo of its bytes has completed.
 * (Kernel 5.19+; older kernels refuse the registration with EINVAL.) */
#ifndef IOMODELS_BUFFER_RING_H
#define IOMODELS_BUFFER_RING_H

#include "ring.h"

#include <stdint.h>

struct buffer_ring {
    struct io_uring_buf_ring *entries; /* shared with the kernel, page-aligned */
    unsigned char *memory;             /* count buffers of size bytes */
    unsigned count, size;
    uint16_t group;     /* the buffer group id receives name */
    uint16_t tail;      /* ours: advanced by give, published by publish */
    unsigned given_out; /* buffers the kernel has filled and we hold */
};

/* Allocates count buffers of size bytes (count a power of two, at most
 * 32768), puts them all in the ring and registers it as group. Returns 0,
 * or -errno (EINVAL: the kernel has no buffer rings). */
int buffer_ring_create(struct buffer_ring *br, struct ring *ring, uint16_t group, unsigned count, unsigned size);
void buffer_ring_destroy(struct buffer_ring *br, struct ring *ring);

static inline unsigned char *buffer_ring_data(const struct buffer_ring *br, uint16_t id)
{
    return br->memory + (size_t)id * br->size;
}

/* A completion named buffer id: we hold it now. */
void buffer_ring_taken(struct buffer_ring *br, uint16_t id);

/* Gives buffer id back; the kernel sees it after the next publish. */
void buffer_ring_give_back(struct buffer_ring *br, uint16_t id);
void buffer_ring_publish(struct buffer_ring *br);

static inline unsigned buffer_ring_available(const struct buffer_ring *br)
{
    return br->count - br->given_out;
}

#endif
