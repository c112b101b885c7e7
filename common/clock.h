/* The one clock every program reads: CLOCK_MONOTONIC, which never jumps
 * when the wall clock is set, so timeouts and latencies stay true. */
#ifndef IOMODELS_CLOCK_H
#define IOMODELS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Nanoseconds since an arbitrary start. clock_gettime cannot fail with a
 * valid clock id and a valid pointer (clock_gettime(2)). */
static inline int64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t monotonic_ms(void)
{
    return monotonic_ns() / 1000000;
}

#endif
