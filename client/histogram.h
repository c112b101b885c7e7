/* A log-linear latency histogram: constant memory and constant time per
 * sample, however many samples a run records, with percentiles good to a
 * fixed relative error.
 *
 * Values are nanoseconds. Below 2^HISTOGRAM_SIGNIFICANT_BITS ns (4.096 us)
 * every value has a bucket of its own, so it is kept exactly. Above, each
 * power of two is cut into 2^(HISTOGRAM_SIGNIFICANT_BITS - 1) equal
 * buckets, so a bucket is never wider than 1/2048 of the values it holds:
 * a reported percentile is within 0.05 % of the true sample, which is
 * plenty for p99.9 at microsecond resolution.
 *
 * Recording is an increment in an array: no allocation, no search. Memory
 * is allocated once by histogram_init(); only the buckets a run touches
 * are ever paged in. One histogram belongs to one thread. */
#ifndef IOMODELS_HISTOGRAM_H
#define IOMODELS_HISTOGRAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum {
    HISTOGRAM_SIGNIFICANT_BITS = 12,
    /* Values at or above 2^HISTOGRAM_RANGE_BITS ns (about 18 minutes) share
     * the last bucket; max still records them exactly. */
    HISTOGRAM_RANGE_BITS = 40,
    /* The exact range, then 2^(HISTOGRAM_SIGNIFICANT_BITS - 1) buckets for
     * each further power of two. */
    HISTOGRAM_BUCKETS = (HISTOGRAM_RANGE_BITS - HISTOGRAM_SIGNIFICANT_BITS + 2) << (HISTOGRAM_SIGNIFICANT_BITS - 1),
};

struct histogram {
    uint64_t *counts; /* histogram_bucket_count() buckets */
    uint64_t total;   /* samples recorded */
    uint64_t sum;     /* of all samples, for the mean */
    uint64_t min, max;
};

/* Returns false (errno ENOMEM) if the buckets cannot be allocated. */
bool histogram_init(struct histogram *h);
void histogram_destroy(struct histogram *h);
void histogram_reset(struct histogram *h);

/* Returns the bucket the value was counted in, for a caller that keeps a
 * coarser copy of its own (buckets in order, a run of them at a time). */
size_t histogram_record(struct histogram *h, uint64_t ns);

/* Adds every sample of from into into. */
void histogram_merge(struct histogram *into, const struct histogram *from);

/* The value at or below which percent % of the samples lie (nearest rank:
 * the smallest recorded value v with at least percent % of samples <= v),
 * reported as the middle of its bucket and kept within [min, max]. 0 when
 * nothing was recorded; percent 100 gives max. */
uint64_t histogram_percentile(const struct histogram *h, double percent);
double histogram_mean(const struct histogram *h);

/* The bucket layout, public so that the tests can check it and a coarser
 * copy can name its values. */
size_t histogram_bucket_count(void);
size_t histogram_bucket_of(uint64_t ns);
uint64_t histogram_bucket_lowest(size_t bucket);  /* smallest value in it */
uint64_t histogram_bucket_highest(size_t bucket); /* largest value in it */

#endif
