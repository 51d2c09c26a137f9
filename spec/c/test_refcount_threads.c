/* test_refcount_threads.c: tensors may be retained and released on any thread (kl/pool.h).
 * Two threads retain and release one shared tensor 200,000 times each while the main thread
 * does too: the count ends where it began and the tensor is freed once (a lost update of a
 * plain int count would free it early or never; ASan / TSan would see it). Then tensors made
 * in a plan-style pool on the main thread are released on another thread while the main
 * thread releases others of the same pool (they go back to the system there, into the pool
 * here). Run under TSan by tools/test-tsan. */
#include <pthread.h>
#include "kl/pool.h"
#include "kltest.h"

enum { ITERS = 200000, NPOOLED = 64 };

static kl_tensor *shared;

static void *churn(void *arg) {
  (void)arg;
  for (int i = 0; i < ITERS; i++) {
    kl_tensor_retain(shared);
    kl_tensor_retain(shared);
    kl_tensor_release(shared);
    kl_tensor_release(shared);
  }
  return NULL;
}

static kl_tensor *pooled[NPOOLED];

static void *release_half(void *arg) {
  (void)arg;
  for (int i = 0; i < NPOOLED; i += 2) kl_tensor_release(pooled[i]);
  return NULL;
}

int main(void) {
  int64_t shape[1] = {16};
  CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 1, shape, &shared));
  pthread_t a, b;
  CHECK(pthread_create(&a, NULL, churn, NULL) == 0);
  CHECK(pthread_create(&b, NULL, churn, NULL) == 0);
  churn(NULL);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  CHECK(__atomic_load_n(&shared->refcount, __ATOMIC_ACQUIRE) == 1);
  kl_tensor_release(shared);

  int was = kl_pool_set_enabled(1);
  kl_pool *pool = NULL;
  CHECK_OK(kl_pool_new(&pool));
  kl_pool *prev = kl_pool_enter(pool);
  for (int i = 0; i < NPOOLED; i++) CHECK_OK(kl_tensor_new_dense(KL_FLOAT32, 1, shape, &pooled[i]));
  kl_pool_leave(prev);
  CHECK(pthread_create(&a, NULL, release_half, NULL) == 0);
  for (int i = 1; i < NPOOLED; i += 2) kl_tensor_release(pooled[i]);
  pthread_join(a, NULL);
  kl_pool_close(pool);
  kl_pool_set_enabled(was);
  KLTEST_DONE();
}
