#include "buffer_ring.h"

#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int buffer_ring_create(struct buffer_ring *br, struct ring *ring, uint16_t group, unsigned count, unsigned size)
{
    *br = (struct buffer_ring){.count = count, .size = size, .group = group};
    size_t ring_bytes = count * sizeof(struct io_uring_buf);
    long page = sysconf(_SC_PAGESIZE);
    void *entries = NULL;
    if (page <= 0 || posix_memalign(&entries, (size_t)page, ring_bytes) != 0)
        return -ENOMEM;
    memset(entries, 0, ring_bytes);
    br->entries = entries;
    br->memory = malloc((size_t)count * size);
    if (!br->memory) {
        free(entries);
        return -ENOMEM;
    }

    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)entries, .ring_entries = count, .bgid = group};
    int rc = ring_register(ring, IORING_REGISTER_PBUF_RING, &reg, 1);
    if (rc < 0) {
        free(br->memory);
        free(entries);
        *br = (struct buffer_ring){0};
        return rc;
    }
    br->given_out = count;
    for (unsigned id = 0; id < count; id++)
        buffer_ring_give_back(br, (uint16_t)id);
    buffer_ring_publish(br);
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
    free(br->memory);
    free(br->entries);
    *br = (struct buffer_ring){0};
}

void buffer_ring_taken(struct buffer_ring *br, uint16_t id)
{
    (void)id;
    br->given_out++;
}

/* Slot 0's last bytes double as the ring's tail, so only the fields that
 * describe the buffer are written, never the whole slot. */
void buffer_ring_give_back(struct buffer_ring *br, uint16_t id)
{
    struct io_uring_buf *slot = &br->entries->bufs[br->tail & (br->count - 1)];
    slot->addr = (uintptr_t)buffer_ring_data(br, id);
    slot->len = br->size;
    slot->bid = id;
    br->tail++;
    br->given_out--;
}

/* Store-release: the kernel that sees the new tail sees the slots too. */
void buffer_ring_publish(struct buffer_ring *br)
{
    atomic_store_explicit((_Atomic uint16_t *)&br->entries->tail, br->tail, memory_order_release);
}
