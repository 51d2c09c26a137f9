/* alloc.c: the one allocation choke point: overflow checks, counters, the failure hook, and the per-plan pools of kl/pool.h. */
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif
#include "kl/kl.h"
#include "kl/pool.h"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KL_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define KL_ASAN 1
#endif
#ifdef KL_ASAN
#include <sanitizer/asan_interface.h>
/* Under ASan, block headers and free pooled blocks are poisoned, so a stray access to
 * either is reported just as one to freed or out-of-bounds system memory is. */
#define KL_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define KL_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define KL_POISON(p, n) ((void)(p), (void)(n))
#define KL_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* ------------------------------------------------------------ counters */

static atomic_long kl_ticks;     /* allocation attempts since the last kl_alloc_fail_at call */
static atomic_long kl_fail;      /* 1-based attempt number that fails; 0 = none */
static atomic_long kl_sys_made;  /* successful system allocations since start */
static atomic_size_t kl_sys_bytes; /* bytes in live system blocks (headers included) */

/* Counts one system allocation attempt; returns 1 when the test hook says it must fail. */
static int kl_alloc_tick(void) {
  long n = atomic_fetch_add(&kl_ticks, 1) + 1;
  long f = atomic_load(&kl_fail);
  return f > 0 && n == f;
}

static void *kl_oom(size_t bytes) {
  kl_seterr(KL_ENOMEM, "out of memory (%zu bytes)", bytes);
  return NULL;
}

/* The largest single block: the machine's physical memory, or KERAS_LUA_MAX_ALLOC bytes.
 * A larger request could only be met by overcommitted pages that the kernel's OOM killer
 * reclaims by killing the process when they are touched, so it is refused with a message. */
static size_t kl_max_block(void) {
  static atomic_size_t cached;
  size_t m = atomic_load(&cached);
  if (m) return m;
  const char *env = getenv("KERAS_LUA_MAX_ALLOC");
  char *end = NULL;
  unsigned long long e = env ? strtoull(env, &end, 10) : 0;
  if (env && end != env && *end == 0 && e > 0) {
    m = (size_t)e;
  } else {
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
    m = pages > 0 && psize > 0 && (size_t)pages <= SIZE_MAX / (size_t)psize
            ? (size_t)pages * (size_t)psize
            : SIZE_MAX;
  }
  atomic_store(&cached, m);
  return m;
}

static void *kl_too_big(size_t bytes) {
  kl_seterr(KL_ENOMEM,
            "out of memory (%zu bytes requested in one block; the limit is %zu bytes, this "
            "machine's memory, or KERAS_LUA_MAX_ALLOC)", bytes, kl_max_block());
  return NULL;
}

long kl_alloc_fail_at(long k) {
  long made = atomic_exchange(&kl_ticks, 0);
  atomic_store(&kl_fail, k > 0 ? k : 0);
  return made;
}

long kl_alloc_count(void) { return atomic_load(&kl_sys_made); }

size_t kl_alloc_live_bytes(void) {
  return atomic_load_explicit(&kl_sys_bytes, memory_order_relaxed);
}

/* -------------------------------------------------------------- blocks */

/* Every block starts with this header; the caller sees the bytes after it. Its size is a
 * multiple of 16, so the caller's pointer keeps malloc's alignment. */
typedef struct kl_blk {
  size_t cap;          /* usable bytes */
  size_t req;          /* bytes last asked for (<= cap): what a move copies */
  kl_pool *pool;       /* origin: NULL = the system allocator */
  struct kl_blk *next; /* link while in a pool's free list */
} kl_blk;
#define KL_HDR sizeof(kl_blk)
_Static_assert(sizeof(kl_blk) % 16 == 0, "block header must keep 16-byte alignment");

/* Requests above this bypass pools (and larger than this plus the header fail cleanly). */
#define KL_POOL_MAX ((size_t)1 << 40)
#define KL_NCLASS 256
#define KL_NWORDS (KL_NCLASS / 64)

struct kl_pool {
  atomic_long refs;   /* 1 while open, plus one per block handed out */
  atomic_int closed;
  const void *owner;  /* &kl_tls_token of the thread that made the pool */
  kl_blk *free[KL_NCLASS];
  uint64_t bits[KL_NWORDS]; /* bit c set: free[c] non-empty */
  long hits, misses, nfree;
  size_t free_bytes;
  kl_blk *kept[KL_POOL_NKEPT]; /* kl_pool_kept_zeroed buffers (system blocks), by slot */
};

static _Thread_local char kl_tls_token;   /* its address names the thread */
static _Thread_local kl_pool *kl_current; /* this thread's installed pool */
static atomic_int kl_pool_mode = -1;      /* 1 on, 0 off, -1 read KL_NO_POOL first */

static int kl_ctz64(uint64_t m) {
#if defined(__GNUC__)
  return __builtin_ctzll(m);
#else
  int i = 0;
  while (!(m & 1)) m >>= 1, i++;
  return i;
#endif
}

static int kl_msb64(uint64_t m) { /* index of the highest set bit, m != 0 */
#if defined(__GNUC__)
  return 63 - __builtin_clzll(m);
#else
  int i = 0;
  while (m >>= 1) i++;
  return i;
#endif
}

/* Size class of n bytes (n <= KL_POOL_MAX) and its capacity in *size: multiples of 16 up
 * to 64, then four classes per power of two (so at most 25% slack). */
static int kl_class(size_t n, size_t *size) {
  if (n <= 64) {
    int c = n ? (int)((n + 15) / 16) - 1 : 0;
    *size = (size_t)(c + 1) * 16;
    return c;
  }
  int e = kl_msb64((uint64_t)(n - 1)); /* 2^e < n <= 2^(e+1), e >= 6 */
  size_t step = (size_t)1 << (e - 2);
  size_t j = (n - 1 - ((size_t)1 << e)) / step + 1; /* 1..4 */
  *size = ((size_t)1 << e) + j * step;
  return 4 + (e - 6) * 4 + (int)(j - 1);
}

/* The header of a caller's pointer, made readable. */
static kl_blk *kl_hdr(void *u) {
  kl_blk *b = (kl_blk *)u - 1;
  KL_UNPOISON(b, KL_HDR);
  return b;
}

/* Hands block b out for bytes: the caller's pointer. */
static void *kl_hand_out(kl_blk *b, size_t bytes) {
  b->req = bytes;
  b->next = NULL;
  KL_UNPOISON(b + 1, bytes);
  if (b->cap > bytes) KL_POISON((char *)(b + 1) + bytes, b->cap - bytes);
  KL_POISON(b, KL_HDR);
  return b + 1;
}

/* Blocks of at least this many bytes ask for transparent huge pages. */
#define KL_HUGE_MIN ((size_t)8 << 20)
#define KL_HUGE_PAGE ((size_t)2 << 20)

/* Asks the kernel to back the 2 MiB-aligned interior of a large block with huge pages
 * (Linux's transparent huge pages in "madvise" mode, Debian's default). An embedding or
 * optimizer state of gigabytes is then read at random rows without a TLB miss (and a page
 * walk from DRAM) per row, and first touches fault 2 MiB at a time. Only advice: where the
 * kernel has none to give, nothing changes. KERAS_LUA_HUGEPAGES=0 turns it off. */
static void kl_advise_huge(void *p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  static atomic_int mode = -1;
  int m = atomic_load(&mode);
  if (m < 0) {
    const char *e = getenv("KERAS_LUA_HUGEPAGES");
    m = !(e && strcmp(e, "0") == 0);
    atomic_store(&mode, m);
  }
  if (!m || bytes < KL_HUGE_MIN) return;
  uintptr_t a = ((uintptr_t)p + KL_HUGE_PAGE - 1) & ~(uintptr_t)(KL_HUGE_PAGE - 1);
  uintptr_t e = ((uintptr_t)p + bytes) & ~(uintptr_t)(KL_HUGE_PAGE - 1);
  if (e > a) (void)madvise((void *)a, e - a, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

void kl_prefault_zeroed(void *p, size_t bytes) {
  if (!p || bytes < KL_HUGE_MIN) return;
  const size_t pg = 4096;
  uintptr_t a = ((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1);
  uintptr_t e = ((uintptr_t)p + bytes) & ~(uintptr_t)(pg - 1);
  if (e <= a) return;
#if defined(__linux__) && defined(MADV_POPULATE_WRITE)
  if (madvise((void *)a, e - a, MADV_POPULATE_WRITE) == 0) return;
#endif
  /* Older kernels: write the zero that is already there, a page at a time. */
  for (uintptr_t q = a; q < e; q += pg) *(volatile char *)q = 0;
}

/* One system allocation of a block with cap usable bytes (zeroed when zero); NULL on
 * failure (no message). */
static kl_blk *kl_sys_new(size_t cap, int zero) {
  if (kl_alloc_tick()) return NULL;
  kl_blk *b = zero ? calloc(1, KL_HDR + cap) : malloc(KL_HDR + cap);
  if (!b) return NULL;
  kl_advise_huge(b, KL_HDR + cap);
  atomic_fetch_add(&kl_sys_made, 1);
  atomic_fetch_add_explicit(&kl_sys_bytes, KL_HDR + cap, memory_order_relaxed);
  b->cap = cap;
  b->req = cap;
  b->pool = NULL;
  b->next = NULL;
  return b;
}

static void kl_sys_free(kl_blk *b) {
  KL_UNPOISON(b, KL_HDR + b->cap);
  atomic_fetch_sub_explicit(&kl_sys_bytes, KL_HDR + b->cap, memory_order_relaxed);
  free(b);
}

/* --------------------------------------------------------------- pools */

static void kl_pool_unref(kl_pool *p) {
  if (atomic_fetch_sub(&p->refs, 1) == 1) free(p);
}

static void kl_pool_push(kl_pool *p, kl_blk *b) {
  size_t size;
  int c = kl_class(b->cap, &size); /* cap is a class size: its own class */
  b->next = p->free[c];
  p->free[c] = b;
  p->bits[c >> 6] |= (uint64_t)1 << (c & 63);
  p->nfree++;
  p->free_bytes += b->cap;
  KL_POISON(b + 1, b->cap);
}

static kl_blk *kl_pool_pop(kl_pool *p, int c) {
  kl_blk *b = p->free[c];
  p->free[c] = b->next;
  if (!b->next) p->bits[c >> 6] &= ~((uint64_t)1 << (c & 63));
  p->nfree--;
  p->free_bytes -= b->cap;
  return b;
}

/* First non-empty class >= c, or -1. */
static int kl_first_from(const kl_pool *p, int c) {
  for (int w = c >> 6; w < KL_NWORDS; w++) {
    uint64_t m = p->bits[w];
    if (w == c >> 6) m &= ~(uint64_t)0 << (c & 63);
    if (m) return w * 64 + kl_ctz64(m);
  }
  return -1;
}

/* Last non-empty class < c, or -1. */
static int kl_last_below(const kl_pool *p, int c) {
  for (int w = c >> 6; w >= 0; w--) {
    uint64_t m = p->bits[w];
    if (w == c >> 6) m &= ((uint64_t)1 << (c & 63)) - 1;
    if (m) return w * 64 + kl_msb64(m);
  }
  return -1;
}

/* A block of at least bytes from pool p: the smallest free one that fits (a hit), else a
 * new system block of the class size, first giving the largest free block (all of them too
 * small) back to the system. Every miss thus raises the total capacity held while the block
 * count stays at the most ever live, so a repeating workload stops missing. *hit tells. */
static kl_blk *kl_pool_take(kl_pool *p, size_t bytes, int zero, int *hit) {
  size_t size;
  int c = kl_class(bytes, &size);
  int f = kl_first_from(p, c);
  kl_blk *b;
  if (f >= 0) {
    b = kl_pool_pop(p, f);
    p->hits++;
    *hit = 1;
  } else {
    b = kl_sys_new(size, zero);
    if (!b) return NULL;
    int s = kl_last_below(p, c);
    if (s >= 0) kl_sys_free(kl_pool_pop(p, s));
    b->pool = p;
    p->misses++;
    *hit = 0;
  }
  atomic_fetch_add(&p->refs, 1);
  return b;
}

static int kl_pools_enabled(void) {
  int m = atomic_load(&kl_pool_mode);
  if (m < 0) {
    const char *e = getenv("KL_NO_POOL");
    int want = !(e && e[0] && strcmp(e, "0") != 0);
    int expect = -1;
    atomic_compare_exchange_strong(&kl_pool_mode, &expect, want);
    m = atomic_load(&kl_pool_mode);
  }
  return m;
}

int kl_pool_set_enabled(int on) {
  int prev = kl_pools_enabled();
  atomic_store(&kl_pool_mode, on ? 1 : 0);
  return prev;
}

kl_status kl_pool_new(kl_pool **out) {
  *out = NULL;
  if (!kl_pools_enabled()) return KL_OK;
  if (kl_alloc_tick()) return kl_seterr(KL_ENOMEM, "out of memory (%zu bytes)", sizeof(kl_pool));
  kl_pool *p = calloc(1, sizeof *p);
  if (!p) return kl_seterr(KL_ENOMEM, "out of memory (%zu bytes)", sizeof(kl_pool));
  atomic_fetch_add(&kl_sys_made, 1);
  atomic_init(&p->refs, 1);
  atomic_init(&p->closed, 0);
  p->owner = &kl_tls_token;
  *out = p;
  return KL_OK;
}

void kl_pool_close(kl_pool *p) {
  if (!p) return;
  if (kl_current == p) kl_current = NULL;
  atomic_store(&p->closed, 1);
  for (int c = 0; c < KL_NCLASS; c++)
    while (p->free[c]) {
      kl_blk *b = p->free[c];
      p->free[c] = b->next;
      kl_sys_free(b);
    }
  memset(p->bits, 0, sizeof p->bits);
  p->nfree = 0;
  p->free_bytes = 0;
  for (int k = 0; k < KL_POOL_NKEPT; k++) {
    if (p->kept[k]) kl_sys_free(p->kept[k]);
    p->kept[k] = NULL;
  }
  kl_pool_unref(p);
}

/* Whether blocks of p may go back into its free list from this thread now. */
static int kl_pool_usable(const kl_pool *p) {
  return p->owner == &kl_tls_token && !atomic_load_explicit(&p->closed, memory_order_relaxed);
}

kl_pool *kl_pool_enter(kl_pool *p) {
  kl_pool *prev = kl_current;
  kl_current = p && kl_pool_usable(p) ? p : NULL;
  return prev;
}

void kl_pool_leave(kl_pool *prev) { kl_current = prev; }

kl_pool *kl_pool_current(void) { return kl_current; }

void *kl_pool_kept_zeroed(int slot, size_t bytes) {
  kl_pool *p = kl_current;
  if (!p || slot < 0 || slot >= KL_POOL_NKEPT || bytes > kl_max_block()) return NULL;
  kl_blk *b = p->kept[slot];
  if (b && b->cap >= bytes) return b + 1;
  /* Grow: the old block is all zero by the contract, so nothing is copied. calloc of a
   * large block maps zero pages lazily: only the pages a kernel touches become resident. */
  kl_blk *nb = kl_sys_new(bytes, 1);
  if (!nb) return NULL;
  if (b) kl_sys_free(b);
  p->kept[slot] = nb;
  KL_UNPOISON(nb + 1, bytes);
  return nb + 1;
}

void kl_pool_get_stats(const kl_pool *p, kl_pool_stats *out) {
  memset(out, 0, sizeof *out);
  if (!p) return;
  out->hits = p->hits;
  out->misses = p->misses;
  out->free_blocks = p->nfree;
  out->free_bytes = p->free_bytes;
  out->out_blocks = atomic_load(&p->refs) - (atomic_load(&p->closed) ? 0 : 1);
}

/* ----------------------------------------------------------- allocator */

/* bytes (zeroed when zero) from this thread's pool if one is installed, else the system. */
static void *kl_alloc(size_t bytes, int zero) {
  if (bytes > SIZE_MAX - 2 * KL_HDR) return kl_oom(bytes);
  if (bytes > kl_max_block()) return kl_too_big(bytes);
  kl_pool *p = kl_current;
  int hit = 0;
  kl_blk *b = p && bytes <= KL_POOL_MAX ? kl_pool_take(p, bytes, zero, &hit)
                                         : kl_sys_new(bytes, zero);
  if (!b) return kl_oom(bytes);
  void *u = kl_hand_out(b, bytes);
  if (zero && hit) memset(u, 0, bytes);
  return u;
}

void *kl_malloc(size_t bytes) { return kl_alloc(bytes, 0); }

void *kl_calloc(size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return kl_oom(SIZE_MAX);
  return kl_alloc(count * size, 1);
}

void *kl_realloc(void *u, size_t bytes) {
  if (!u) return kl_malloc(bytes);
  if (bytes > SIZE_MAX - 2 * KL_HDR) return kl_oom(bytes);
  if (bytes > kl_max_block()) return kl_too_big(bytes);
  kl_blk *b = kl_hdr(u);
  if (bytes <= b->cap) return kl_hand_out(b, bytes); /* fits: same block */
  if (b->pool || kl_current) { /* move: into the current pool, or out of the old one */
    size_t keep = b->req;
    KL_POISON(b, KL_HDR);
    void *n = kl_malloc(bytes);
    if (!n) return NULL; /* u untouched, still the caller's */
    memcpy(n, u, keep);
    kl_free(u);
    return n;
  }
  if (kl_alloc_tick()) {
    KL_POISON(b, KL_HDR);
    return kl_oom(bytes);
  }
  size_t old = b->cap;
  KL_UNPOISON(b + 1, old);
  /* No huge-page advice here: a block that grows by realloc (a csr being built) then
   * peaked at old + new size (W1's data: 167 MiB instead of 123), the advised range
   * apparently keeping glibc's mremap from growing it in place. */
  kl_blk *nb = realloc(b, KL_HDR + bytes);
  if (!nb) { /* b untouched and still the caller's */
    kl_hand_out(b, b->req);
    return kl_oom(bytes);
  }
  atomic_fetch_add(&kl_sys_made, 1);
  atomic_fetch_add_explicit(&kl_sys_bytes, bytes, memory_order_relaxed);
  atomic_fetch_sub_explicit(&kl_sys_bytes, old, memory_order_relaxed);
  nb->cap = bytes;
  return kl_hand_out(nb, bytes);
}

void *kl_malloc_n(size_t count, size_t size) {
  if (size && count > SIZE_MAX / size) return kl_oom(SIZE_MAX);
  return kl_malloc(count * size);
}

void kl_free(void *u) {
  if (!u) return;
  kl_blk *b = kl_hdr(u);
  kl_pool *p = b->pool;
  if (p && kl_pool_usable(p)) {
    kl_pool_push(p, b);
    atomic_fetch_sub(&p->refs, 1); /* open: the pool's own reference keeps it above 0 */
    return;
  }
  kl_sys_free(b);
  if (p) kl_pool_unref(p);
}
