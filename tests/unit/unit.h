/* A minimal unit-test harness: each test file defines UNIT_TEST(name) { ... }
 * blocks, which register themselves before main() runs, so adding a test
 * file needs no edit anywhere else. CHECK() records a failure and goes on;
 * REQUIRE() ends the test. The binary ends with "N passed, N failed". */
#ifndef IOMODELS_UNIT_H
#define IOMODELS_UNIT_H

#include <stdbool.h>

typedef void unit_test_fn(bool *failed);
void unit_register(const char *name, unit_test_fn *fn);
void unit_fail(bool *failed, const char *file, int line, const char *expr);

#define UNIT_TEST(name)                                                      \
    static void unit_##name(bool *unit_failed);                             \
    __attribute__((constructor)) static void unit_register_##name(void)     \
    {                                                                        \
        unit_register(#name, unit_##name);                                   \
    }                                                                        \
    static void unit_##name(bool *unit_failed)

#define CHECK(expr)                                                          \
    do {                                                                     \
        if (!(expr))                                                         \
            unit_fail(unit_failed, __FILE__, __LINE__, #expr);               \
    } while (0)

#define REQUIRE(expr)                                                        \
    do {                                                                     \
        if (!(expr)) {                                                       \
            unit_fail(unit_failed, __FILE__, __LINE__, #expr);               \
            return;                                                          \
        }                                                                    \
    } while (0)

#endif
