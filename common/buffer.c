#include "buffer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void buffer_pool_init(struct buffer_pool *pool, size_t keep_at_most)
{
    *pool = (struct buffer_pool){.keep_at_most = keep_at_most};
}

void buffer_pool_destroy(struct buffer_pool *pool)
{
    while (pool->free_list) {
        struct buffer *next = pool->free_list->next_free;
        free(pool->free_list);
        pool->free_list = next;
    }
    pool->free_count = 0;
}

struct buffer *buffer_get(struct buffer_pool *pool)
{
    struct buffer *buf = pool->free_list;
    if (buf) {
        pool->free_list = buf->next_free;
        pool->free_count--;
    } else {
        buf = malloc(sizeof *buf);
        if (!buf) {
            errno = ENOMEM;
            return NULL;
        }
    }
    buf->next_free = NULL;
    buf->start = buf->end = 0;
    pool->in_use++;
    return buf;
}

void buffer_put(struct buffer_pool *pool, struct buffer *buf)
{
    pool->in_use--;
    if (pool->free_count >= pool->keep_at_most) {
        free(buf);
        return;
    }
    buf->next_free = pool->free_list;
    pool->free_list = buf;
    pool->free_count++;
}

void buffer_consume(struct buffer *buf, size_t n)
{
    buf->start += n;
    if (buf->start == buf->end)
        buf->start = buf->end = 0;
}

void buffer_compact(struct buffer *buf)
{
    if (buf->start == 0)
        return;
    memmove(buf->data, buf->data + buf->start, buffer_pending(buf));
    buf->end -= buf->start;
    buf->start = 0;
}
