#include "buffer_ring.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void free_memory(struct buffer_ring *br)
{
    free(br->entries);
    free(br->memory);
    free(br->free_ids);
    free(br->links);
    *br = (struct buffer_ring){0};
}

int buffer_ring_create(struct buffer_ring *br, struct ring *ring, uint16_t group, unsigned window, unsigned count,
                       unsigned size)
{
    *br = (struct buffer_ring){.window = window, .group = group, .count = count, .size = size};
    long page = sysconf(_SC_PAGESIZE);
    void *entries = NULL;
    if (page <= 0 || posix_memalign(&entries, (size_t)page, window * sizeof(struct io_uring_buf)) != 0)
        return -ENOMEM;
    memset(entries, 0, window * sizeof(struct io_uring_buf));
    br->entries = entries;
    /* Untouched pages cost nothing: the pool is sized for the worst case,
     * the resident set follows what is used. */
    br->memory = malloc((size_t)count * size);
    br->free_ids = malloc(count * sizeof *br->free_ids);
    br->links = calloc(count, sizeof *br->links);
    list_init(&br->waiting);
    if (!br->memory || !br->free_ids || !br->links) {
        free_memory(br);
        return -ENOMEM;
    }

    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)entries, .ring_entries = window, .bgid = group};
    int rc = ring_register(ring, IORING_REGISTER_PBUF_RING, &reg, 1);
    if (rc < 0) {
        free_memory(br);
        return rc;
    }
    /* Highest id at the bottom, so buffer 0 goes out first. */
    for (unsigned i = 0; i < count; i++)
        br->free_ids[i] = (uint16_t)(count - 1 - i);
    br->free_count = count;
    buffer_ring_refill(br);
    return 0;
}

void buffer_ring_destroy(struct buffer_ring *br, struct ring *ring)
{
    if (!br->entries)
        return;
    struct io_uring_buf_reg reg = {.bgid = br->group};
    int rc = ring_register(ring, IORING_UNREGISTER_PBUF_RING, &reg, 1);
    if (rc < 0)
        warn("unregister the buffer ring: %s", strerror(-rc));
    free_memory(br);
}

void buffer_ring_taken(struct buffer_ring *br, uint16_t id)
{
    (void)id;
    br->in_ring--;
}

void buffer_ring_give_back(struct buffer_ring *br, uint16_t id)
{
    br->free_ids[br->free_count++] = id;
}

/* Slot 0's last bytes double as the ring's tail, so only the fields that
 * describe a buffer are written, never a whole slot. */
unsigned buffer_ring_refill(struct buffer_ring *br)
{
    while (br->in_ring < br->window && br->free_count > 0) {
        uint16_t id = br->free_ids[--br->free_count];
        struct io_uring_buf *slot = &br->entries->bufs[br->tail & (br->window - 1)];
        slot->addr = (uintptr_t)buffer_ring_data(br, id);
        slot->len = br->size;
        slot->bid = id;
        br->tail++;
        br->in_ring++;
    }
    /* Store-release: the kernel that sees the new tail sees the slots too. */
    atomic_store_explicit((_Atomic uint16_t *)&br->entries->tail, br->tail, memory_order_release);
    return br->in_ring;
}

void buffer_ring_wait(struct buffer_ring *br, struct list_node *waiter)
{
    list_add_tail(&br->waiting, waiter);
}

struct list_node *buffer_ring_next_waiter(struct buffer_ring *br)
{
    if (list_empty(&br->waiting))
        return NULL;
    struct list_node *first = br->waiting.next;
    list_del(first);
    return first;
}

/* --- a connection's queue of received buffers ---------------------------- */

void buffer_queue_init(struct buffer_queue *q)
{
    *q = (struct buffer_queue){.head = -1, .tail = -1};
}

void buffer_queue_add(struct buffer_ring *br, struct buffer_queue *q, uint16_t id, unsigned length)
{
    br->links[id] = (struct buffer_link){.next = -1, .length = length};
    if (q->tail >= 0)
        br->links[q->tail].next = id;
    else
        q->head = id;
    q->tail = id;
    q->count++;
}

const unsigned char *buffer_queue_unsent(const struct buffer_ring *br, const struct buffer_queue *q, size_t *len)
{
    uint16_t id = (uint16_t)q->head;
    *len = br->links[id].length - q->head_sent;
    return buffer_ring_data(br, id) + q->head_sent;
}

static void release_oldest(struct buffer_ring *br, struct buffer_queue *q)
{
    int id = q->head;
    q->head = br->links[id].next;
    if (q->head < 0)
        q->tail = -1;
    q->count--;
    q->head_sent = 0;
    buffer_ring_give_back(br, (uint16_t)id);
}

void buffer_queue_sent(struct buffer_ring *br, struct buffer_queue *q, size_t n)
{
    q->head_sent += n;
    if (q->head_sent == br->links[q->head].length)
        release_oldest(br, q);
}

void buffer_queue_drop(struct buffer_ring *br, struct buffer_queue *q)
{
    while (q->count > 0)
        release_oldest(br, q);
}
