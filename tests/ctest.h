/* ctest.h: a minimal harness for the C tests. Each check prints "ok - name" or "not ok - name: why";
 * tests/run.sh counts those lines. A test binary exits non-zero when any check failed. */
#ifndef BL_CTEST_H
#define BL_CTEST_H
#include <math.h>
#include <stdio.h>

static int ct_failed_ = 0;

#define CHECK(cond, ...)                                                                  \
    do {                                                                                  \
        if (cond) { printf("ok - "); printf(__VA_ARGS__); printf("\n"); }                 \
        else {                                                                            \
            ct_failed_++;                                                                 \
            printf("not ok - "); printf(__VA_ARGS__);                                     \
            printf("  [%s:%d: %s]\n", __FILE__, __LINE__, #cond);                         \
        }                                                                                 \
        fflush(stdout);                                                                   \
    } while (0)

/* |a-b| <= tol, printing both values */
#define CHECK_NEAR(a, b, tol, ...)                                                        \
    do {                                                                                  \
        double a_ = (a), b_ = (b);                                                        \
        CHECK(fabs(a_ - b_) <= (tol), __VA_ARGS__);                                       \
        if (!(fabs(a_ - b_) <= (tol))) printf("#   got %.9g expected %.9g\n", a_, b_);    \
    } while (0)

#define SKIP(...) do { printf("skip - "); printf(__VA_ARGS__); printf("\n"); } while (0)
#define CT_DONE() return ct_failed_ ? 1 : 0

#endif
