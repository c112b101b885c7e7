/* The connection buffer: bytes read from a peer and not yet written back.
 *
 * Its size bounds what one connection can hold: when it is full the server
 * stops reading that peer until the echo drains (backpressure), so a client
 * that sends without reading costs at most one buffer.
 *
 * Buffers come from a pool and go back as soon as they are empty, so an idle
 * connection holds none: 10,000 idle clients cost 10,000 small structs, not
 * 640 MB. The pool keeps a few free buffers so the busy path never calls
 * malloc. A pool belongs to one thread. */
#ifndef IOMODELS_BUFFER_H
#define IOMODELS_BUFFER_H

#include <stddef.h>

enum { CONN_BUFFER_SIZE = 64 * 1024 };

/* The free buffers a server's pool keeps for reuse (its keep_at_most), so
 * the busy path never calls malloc; beyond that, an emptied buffer is freed. */
enum { POOLED_BUFFERS = 32 };

struct buffer {
    struct buffer *next_free;
    size_t start; /* first byte not yet written back */
    size_t end;   /* one past the last byte read */
    unsigned char data[CONN_BUFFER_SIZE];
};

struct buffer_pool {
    struct buffer *free_list;
    size_t free_count;
    size_t keep_at_most; /* free buffers kept for reuse; the rest are freed */
    size_t in_use;
};

void buffer_pool_init(struct buffer_pool *pool, size_t keep_at_most);
void buffer_pool_destroy(struct buffer_pool *pool);

/* An empty buffer, or NULL (errno ENOMEM) when memory is exhausted. */
struct buffer *buffer_get(struct buffer_pool *pool);
void buffer_put(struct buffer_pool *pool, struct buffer *buf);

static inline size_t buffer_pending(const struct buffer *buf)
{
    return buf->end - buf->start;
}

static inline size_t buffer_room(const struct buffer *buf)
{
    return CONN_BUFFER_SIZE - buf->end;
}

/* Marks n pending bytes as written; an emptied buffer starts over at 0. */
void buffer_consume(struct buffer *buf, size_t n);

/* Moves the pending bytes to the front so the room is all at the end. */
void buffer_compact(struct buffer *buf);

#endif
