/* kltest_warn.h: a warning handler for the C tests (kl_set_warn_handler(kltest_on_warn, NULL)):
 * counts kl_warnf's warnings in kltest_nwarn and keeps the last one in kltest_lastwarn, so a
 * test can assert that a warning came, once, with its text. */
#ifndef KLTEST_WARN_H
#define KLTEST_WARN_H
#include <stdio.h>

static int kltest_nwarn = 0;
static char kltest_lastwarn[512];

static void kltest_on_warn(const char *msg, void *ud) {
  (void)ud;
  kltest_nwarn++;
  snprintf(kltest_lastwarn, sizeof kltest_lastwarn, "%s", msg);
}
#endif
