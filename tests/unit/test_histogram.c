/* Unit tests of client/histogram: the layout of the buckets, and the
 * percentiles every benchmark figure is read from. */
#include "../../client/histogram.h"
#include "unit.h"

#include <stdint.h>

/* |reported - truth| <= truth / 2048: the promised relative error. */
static bool close_to(uint64_t reported, uint64_t truth)
{
    uint64_t diff = reported > truth ? reported - truth : truth - reported;
    return diff * 2048 <= truth;
}

UNIT_TEST(histogram_buckets_tile_the_range)
{
    size_t count = histogram_bucket_count();
    REQUIRE(histogram_bucket_lowest(0) == 0);
    for (size_t b = 0; b < count; b++) {
        uint64_t lo = histogram_bucket_lowest(b), hi = histogram_bucket_highest(b);
        REQUIRE(lo <= hi);
        REQUIRE(histogram_bucket_of(lo) == b);
        REQUIRE(histogram_bucket_of(hi) == b);
        if (b > 0)
            REQUIRE(lo == histogram_bucket_highest(b - 1) + 1);
    }
    CHECK(histogram_bucket_highest(count - 1) == ((uint64_t)1 << HISTOGRAM_RANGE_BITS) - 1);
    CHECK(histogram_bucket_of(UINT64_MAX) == count - 1);
}

UNIT_TEST(histogram_exact_below_4us)
{
    for (uint64_t v = 0; v < 4096; v++) {
        size_t b = histogram_bucket_of(v);
        REQUIRE(histogram_bucket_lowest(b) == v && histogram_bucket_highest(b) == v);
    }
    CHECK(histogram_bucket_highest(histogram_bucket_of(4096)) > 4096);
}

UNIT_TEST(histogram_relative_width_bounded)
{
    for (size_t b = histogram_bucket_of(4096); b < histogram_bucket_count(); b++) {
        uint64_t lo = histogram_bucket_lowest(b), width = histogram_bucket_highest(b) - lo + 1;
        REQUIRE(width * 2048 <= lo);
    }
}

UNIT_TEST(histogram_percentiles_exact_small_values)
{
    struct histogram h;
    REQUIRE(histogram_init(&h));
    for (uint64_t v = 100; v <= 400; v += 100)
        histogram_record(&h, v);
    CHECK(histogram_percentile(&h, 0) == 100);
    CHECK(histogram_percentile(&h, 25) == 100);
    CHECK(histogram_percentile(&h, 25.1) == 200);
    CHECK(histogram_percentile(&h, 50) == 200);
    CHECK(histogram_percentile(&h, 75) == 300);
    CHECK(histogram_percentile(&h, 100) == 400);
    CHECK(h.min == 100 && h.max == 400 && h.total == 4);
    CHECK(histogram_mean(&h) == 250.0);
    histogram_destroy(&h);
}

UNIT_TEST(histogram_percentiles_uniform)
{
    struct histogram h;
    REQUIRE(histogram_init(&h));
    /* 1 us .. 1 s in 1000 steps of 1 ms + 1 us, in shuffled order */
    for (uint64_t i = 0; i < 1000; i++)
        histogram_record(&h, 1000 + ((i * 7919) % 1000) * 1000000);
    CHECK(h.total == 1000);
    CHECK(histogram_percentile(&h, 0.1) == 1000);
    CHECK(close_to(histogram_percentile(&h, 50), 1000 + 499 * 1000000ull));
    CHECK(close_to(histogram_percentile(&h, 90), 1000 + 899 * 1000000ull));
    CHECK(close_to(histogram_percentile(&h, 99), 1000 + 989 * 1000000ull));
    /* 99.9 % of 1000 is rank 999 exactly, not 1000 */
    CHECK(close_to(histogram_percentile(&h, 99.9), 1000 + 998 * 1000000ull));
    CHECK(histogram_percentile(&h, 100) == 1000 + 999 * 1000000ull);
    histogram_destroy(&h);
}

UNIT_TEST(histogram_tail_shows_one_outlier)
{
    struct histogram h;
    REQUIRE(histogram_init(&h));
    for (int i = 0; i < 9999; i++)
        histogram_record(&h, 30000); /* 30 us */
    histogram_record(&h, 200000000); /* one 200 ms stall */
    CHECK(close_to(histogram_percentile(&h, 50), 30000));
    CHECK(close_to(histogram_percentile(&h, 99.99), 30000));
    CHECK(histogram_percentile(&h, 99.999) == 200000000);
    CHECK(h.max == 200000000);
    histogram_destroy(&h);
}

UNIT_TEST(histogram_empty_and_reset)
{
    struct histogram h;
    REQUIRE(histogram_init(&h));
    CHECK(histogram_percentile(&h, 50) == 0);
    CHECK(histogram_mean(&h) == 0.0);
    histogram_record(&h, 5);
    histogram_reset(&h);
    CHECK(h.total == 0 && h.max == 0 && histogram_percentile(&h, 99) == 0);
    histogram_record(&h, 7);
    CHECK(h.min == 7 && histogram_percentile(&h, 50) == 7);
    histogram_destroy(&h);
}

UNIT_TEST(histogram_beyond_range_keeps_max)
{
    struct histogram h;
    REQUIRE(histogram_init(&h));
    uint64_t huge = (uint64_t)1 << 50;
    histogram_record(&h, 10);
    histogram_record(&h, huge);
    CHECK(h.max == huge);
    CHECK(histogram_percentile(&h, 100) == huge);
    CHECK(histogram_percentile(&h, 50) == 10);
    histogram_destroy(&h);
}

UNIT_TEST(histogram_merge_equals_recording_all)
{
    struct histogram a, b, all;
    REQUIRE(histogram_init(&a) && histogram_init(&b) && histogram_init(&all));
    for (uint64_t i = 1; i <= 5000; i++) {
        uint64_t v = i * i * 37;
        histogram_record(i % 3 ? &a : &b, v);
        histogram_record(&all, v);
    }
    histogram_merge(&a, &b);
    CHECK(a.total == all.total && a.sum == all.sum && a.min == all.min && a.max == all.max);
    const double percents[] = {1, 50, 90, 99, 99.9, 100};
    for (size_t i = 0; i < sizeof percents / sizeof percents[0]; i++)
        CHECK(histogram_percentile(&a, percents[i]) == histogram_percentile(&all, percents[i]));
    histogram_destroy(&a);
    histogram_destroy(&b);
    histogram_destroy(&all);
}

/* The load generator keeps each connection's latencies as the buckets
 * taken 512 at a time: record must say which bucket it counted, and a run
 * of 512 must never straddle a power of two above the exact range, so
 * that a group is 4 to a power of two. */
UNIT_TEST(histogram_record_names_its_bucket_and_groups_of_512_are_4_per_octave)
{
    struct histogram h;
    REQUIRE(histogram_init(&h));
    for (uint64_t v = 1; v < ((uint64_t)1 << 45); v = v * 3 + 1)
        REQUIRE(histogram_record(&h, v) == histogram_bucket_of(v));
    CHECK(histogram_bucket_count() == HISTOGRAM_BUCKETS && HISTOGRAM_BUCKETS % 512 == 0);
    for (uint64_t octave = 12; octave < HISTOGRAM_RANGE_BITS; octave++) {
        size_t first = histogram_bucket_of((uint64_t)1 << octave);
        size_t last = histogram_bucket_of(((uint64_t)1 << (octave + 1)) - 1);
        REQUIRE(first % 512 == 0 && last - first + 1 == 4 * 512);
    }
    histogram_destroy(&h);
}
