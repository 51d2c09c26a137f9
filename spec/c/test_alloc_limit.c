/* test_alloc_limit.c: one block larger than the machine's memory (or KERAS_LUA_MAX_ALLOC) is
 * refused with a message instead of being left to the kernel's OOM killer. */
#include <stdlib.h>
#include "kltest.h"

int main(void) {
  /* The limit is read once, at the first allocation: set it before anything allocates. */
  setenv("KERAS_LUA_MAX_ALLOC", "65536", 1);
  void *p = kl_malloc(1000);
  CHECK(p != NULL);
  CHECK(kl_malloc(65537) == NULL);
  CHECK(strstr(kl_errmsg(), "65537 bytes requested in one block; the limit is 65536 bytes"));
  CHECK(kl_calloc(1000, 1000) == NULL);
  void *q = kl_realloc(p, 1 << 20);
  CHECK(q == NULL); /* p is still ours */
  CHECK(strstr(kl_errmsg(), "the limit is 65536 bytes") != NULL);
  kl_free(p);
  kl_tensor *t = NULL;
  int64_t shape[2] = {1000, 1000};
  CHECK_ERR(kl_tensor_new_dense(KL_FLOAT32, 2, shape, &t), KL_ENOMEM, "requested in one block");
  CHECK(t == NULL);
  shape[0] = 10;
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 2, shape, &t));
  kl_tensor_release(t);
  KLTEST_DONE();
}
