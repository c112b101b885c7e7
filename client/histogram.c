#include "histogram.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Buckets per power of two above the exact range. A value v is bucketed by
 * its top HISTOGRAM_SIGNIFICANT_BITS bits: shift = how many low bits are
 * dropped, and bucket = shift * HALF + (v >> shift). Shift 0 gives the
 * exact buckets [0, 2 * HALF); each further shift adds HALF buckets, whose
 * top bit is always set, so the numbering is contiguous. */
enum {
    HALF = 1 << (HISTOGRAM_SIGNIFICANT_BITS - 1),
    BUCKET_COUNT = HISTOGRAM_BUCKETS,
};

static const uint64_t LARGEST_KEPT = ((uint64_t)1 << HISTOGRAM_RANGE_BITS) - 1;

size_t histogram_bucket_count(void)
{
    return BUCKET_COUNT;
}

size_t histogram_bucket_of(uint64_t ns)
{
    if (ns > LARGEST_KEPT)
        ns = LARGEST_KEPT;
    unsigned bits = ns ? 64u - (unsigned)__builtin_clzll(ns) : 0u;
    unsigned shift = bits > HISTOGRAM_SIGNIFICANT_BITS ? bits - HISTOGRAM_SIGNIFICANT_BITS : 0u;
    return (size_t)shift * HALF + (size_t)(ns >> shift);
}

static unsigned bucket_shift(size_t bucket)
{
    return bucket < 2 * HALF ? 0u : (unsigned)(bucket / HALF - 1);
}

uint64_t histogram_bucket_lowest(size_t bucket)
{
    unsigned shift = bucket_shift(bucket);
    return (uint64_t)(bucket - (size_t)shift * HALF) << shift;
}

uint64_t histogram_bucket_highest(size_t bucket)
{
    return histogram_bucket_lowest(bucket) + ((uint64_t)1 << bucket_shift(bucket)) - 1;
}

bool histogram_init(struct histogram *h)
{
    h->counts = calloc(BUCKET_COUNT, sizeof *h->counts);
    if (!h->counts) {
        errno = ENOMEM;
        return false;
    }
    h->total = h->sum = h->max = 0;
    h->min = UINT64_MAX;
    return true;
}

void histogram_destroy(struct histogram *h)
{
    free(h->counts);
    h->counts = NULL;
}

void histogram_reset(struct histogram *h)
{
    memset(h->counts, 0, BUCKET_COUNT * sizeof *h->counts);
    h->total = h->sum = h->max = 0;
    h->min = UINT64_MAX;
}

size_t histogram_record(struct histogram *h, uint64_t ns)
{
    size_t bucket = histogram_bucket_of(ns);
    h->counts[bucket]++;
    h->total++;
    h->sum += ns;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
    return bucket;
}

void histogram_merge(struct histogram *into, const struct histogram *from)
{
    for (size_t b = 0; b < BUCKET_COUNT; b++)
        into->counts[b] += from->counts[b];
    into->total += from->total;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

/* ceil(percent% of total), at least 1. The tolerance keeps a product that
 * floating point lands a hair above a whole number (99.9% of 1000) from
 * being rounded up to the next rank. */
static uint64_t nearest_rank(double percent, uint64_t total)
{
    double exact = percent * (double)total / 100.0;
    double rank = ceil(exact - 1e-9);
    if (rank < 1)
        return 1;
    if (rank > (double)total)
        return total;
    return (uint64_t)rank;
}

uint64_t histogram_percentile(const struct histogram *h, double percent)
{
    if (h->total == 0)
        return 0;
    uint64_t rank = nearest_rank(percent, h->total), seen = 0;
    if (rank == h->total)
        return h->max; /* the largest sample is known exactly */
    size_t b = 0;
    for (; b < BUCKET_COUNT - 1; b++) {
        seen += h->counts[b];
        if (seen >= rank)
            break;
    }
    if (b == BUCKET_COUNT - 1)
        return h->max; /* the last bucket also holds every larger value */
    uint64_t lowest = histogram_bucket_lowest(b);
    uint64_t middle = lowest + (histogram_bucket_highest(b) - lowest) / 2;
    if (middle < h->min)
        return h->min;
    if (middle > h->max)
        return h->max;
    return middle;
}

double histogram_mean(const struct histogram *h)
{
    return h->total ? (double)h->sum / (double)h->total : 0.0;
}
