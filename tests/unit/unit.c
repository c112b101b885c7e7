#include "unit.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_TESTS = 256 };

static struct {
    const char *name;
    unit_test_fn *fn;
} registry[MAX_TESTS];
static int registered;

void unit_register(const char *name, unit_test_fn *fn)
{
    if (registered == MAX_TESTS) {
        fprintf(stderr, "unit: more than %d tests\n", MAX_TESTS);
        exit(2);
    }
    registry[registered].name = name;
    registry[registered].fn = fn;
    registered++;
}

void unit_fail(bool *failed, const char *file, int line, const char *expr)
{
    *failed = true;
    printf("    %s:%d: check failed: %s\n", file, line, expr);
}

/* Usage: unit-tests [SUBSTRING]: runs the tests whose name contains it. */
int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    log_init("unit-tests", LOG_QUIET);
    for (int i = 0; i < registered; i++) {
        if (argc > 1 && !strstr(registry[i].name, argv[1]))
            continue;
        bool test_failed = false;
        registry[i].fn(&test_failed);
        printf("%-7s unit.%s\n", test_failed ? "FAIL" : "ok", registry[i].name);
        if (test_failed)
            failed++;
        else
            passed++;
    }
    printf("unit: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
