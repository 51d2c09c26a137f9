/* kltest.h: a tiny unit-test harness for the C tests (no dependencies). */
#ifndef KLTEST_H
#define KLTEST_H
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "kl/kl.h"

static int kltest_failures = 0, kltest_checks = 0;

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    kltest_checks++;                                                                    \
    if (!(cond)) {                                                                      \
      kltest_failures++;                                                                \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);          \
    }                                                                                   \
  } while (0)
/* A call that must succeed. */
#define CHECK_OK(expr)                                                                  \
  do {                                                                                  \
    kl_status s_ = (expr);                                                              \
    kltest_checks++;                                                                    \
    if (s_ != KL_OK) {                                                                  \
      kltest_failures++;                                                                \
      fprintf(stderr, "%s:%d: %s returned %s: %s\n", __FILE__, __LINE__, #expr,          \
              kl_status_name(s_), kl_errmsg());                                         \
    }                                                                                   \
  } while (0)
/* A call that must fail with code and a message containing substr. */
#define CHECK_ERR(expr, code, substr)                                                   \
  do {                                                                                  \
    kl_status s_ = (expr);                                                              \
    kltest_checks++;                                                                    \
    if (s_ != (code) || !strstr(kl_errmsg(), (substr))) {                               \
      kltest_failures++;                                                                \
      fprintf(stderr, "%s:%d: %s gave %s \"%s\", wanted %s containing \"%s\"\n",         \
              __FILE__, __LINE__, #expr, kl_status_name(s_), kl_errmsg(),               \
              kl_status_name(code), (substr));                                          \
    }                                                                                   \
  } while (0)
#define CHECK_NEAR(a, b, tol)                                                           \
  do {                                                                                  \
    double a_ = (a), b_ = (b);                                                          \
    kltest_checks++;                                                                    \
    if (!(fabs(a_ - b_) <= (tol) * (1.0 + fabs(b_)))) {                                 \
      kltest_failures++;                                                                \
      fprintf(stderr, "%s:%d: %s = %.17g, wanted %.17g (tol %g)\n", __FILE__, __LINE__, \
              #a, a_, b_, (double)(tol));                                               \
    }                                                                                   \
  } while (0)
#define KLTEST_DONE()                                                                   \
  do {                                                                                  \
    printf("%d checks, %d failures\n", kltest_checks, kltest_failures);                 \
    return kltest_failures ? 1 : 0;                                                     \
  } while (0)
#endif
