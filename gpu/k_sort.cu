/* k_sort.cu: an exclusive scan of int64 and a stable radix sort of (int64 key, int64 value)
 * pairs, as own kernels without __shared__ memory, so that they run host-emulated too.
 *
 * Both split the items into contiguous chunks, one thread a chunk, walked in order:
 *   scan  chunk sums; one thread scans the chunk sums; each chunk writes its prefixes.
 *   sort  per 8-bit digit pass: each tile counts its digits; the counts, laid out digit-major
 *         (digit d of tile t at d * ntiles + t), are scanned into each tile's first slot per
 *         digit; each tile scatters its items in order. Equal keys keep their order (stable),
 *         as backend's kl_lu_radix_sort, so the sums that follow run in position order.
 * Work O(n) per pass with n / 256 threads; CUB's block-level primitives (shared memory) are
 * faster on a GPU and can replace these where the result is the same (gpu/README.md). */
#include "kl_cuda_rt.h"

#define SCAN_MIN_CHUNK 64
#define SORT_TILE 256
#define SORT_ALIGN 256

static int64_t scan_chunk(int64_t n) {
  int64_t c = SCAN_MIN_CHUNK;
  while (c * c < n) c *= 2; /* about sqrt(n): as many chunks as items per chunk */
  return c;
}

static size_t align_up(size_t b) { return (b + SORT_ALIGN - 1) / SORT_ALIGN * SORT_ALIGN; }

__global__ void k_scan_chunk_sums(const int64_t *in, int64_t n, int64_t chunk, int64_t nch,
                                  int64_t *csum) {
  KL_GRID_LOOP(c, nch) {
    const int64_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
    int64_t s = 0;
    for (int64_t i = lo; i < hi; i++) s += in[i];
    csum[c] = s;
  }
}

/* One thread: csum[c] becomes the sum of the chunks before c; csum[nch] the total. */
__global__ void k_scan_serial(int64_t *csum, int64_t nch) {
  if (blockIdx.x != 0 || threadIdx.x != 0) return;
  int64_t run = 0;
  for (int64_t c = 0; c < nch; c++) {
    const int64_t v = csum[c];
    csum[c] = run;
    run += v;
  }
  csum[nch] = run;
}

__global__ void k_scan_chunk_write(const int64_t *in, int64_t n, int64_t chunk, int64_t nch,
                                   const int64_t *csum, int64_t *out) {
  KL_GRID_LOOP(c, nch) {
    const int64_t lo = c * chunk, hi = lo + chunk < n ? lo + chunk : n;
    int64_t run = csum[c];
    for (int64_t i = lo; i < hi; i++) {
      out[i] = run;
      run += in[i];
    }
    if (c == nch - 1) out[n] = csum[nch];
  }
}

static __global__ void k_set_i64(int64_t *p, int64_t v) {
  if (blockIdx.x == 0 && threadIdx.x == 0) *p = v;
}

extern "C" size_t kl_cuda_scan_scratch(int64_t n) {
  const int64_t nch = n > 0 ? (n + scan_chunk(n) - 1) / scan_chunk(n) : 0;
  return (size_t)(nch + 1) * sizeof(int64_t);
}

extern "C" kl_status kl_cuda_scan_i64(const int64_t *in, int64_t *out, int64_t n,
                                      void *scratch, kl_cuda_stream s) {
  if (n < 0) return kl_cuda_seterr(KL_ESHAPE, "cuda scan: n=%lld", (long long)n);
  if (n == 0) {
    KL_LAUNCH(k_set_i64, 1, 1, s, out, (int64_t)0);
    return kl_cuda_launched("cuda scan");
  }
  const int64_t chunk = scan_chunk(n), nch = (n + chunk - 1) / chunk;
  int64_t *csum = (int64_t *)scratch;
  KL_LAUNCH(k_scan_chunk_sums, kl_cuda_blocks(nch), KL_CUDA_BLOCK, s, in, n, chunk, nch, csum);
  kl_status st = kl_cuda_launched("cuda scan");
  if (st != KL_OK) return st;
  KL_LAUNCH(k_scan_serial, 1, 1, s, csum, nch);
  if ((st = kl_cuda_launched("cuda scan")) != KL_OK) return st;
  KL_LAUNCH(k_scan_chunk_write, kl_cuda_blocks(nch), KL_CUDA_BLOCK, s, in, n, chunk, nch, csum,
            out);
  return kl_cuda_launched("cuda scan");
}

/* ------------------------------------------------------------------ radix sort */

__global__ void k_sort_hist(const int64_t *key, int64_t n, int64_t ntiles, int shift,
                            int64_t *cnt) {
  KL_GRID_LOOP(t, ntiles) {
    int64_t c[256];
    for (int d = 0; d < 256; d++) c[d] = 0;
    const int64_t lo = t * SORT_TILE, hi = lo + SORT_TILE < n ? lo + SORT_TILE : n;
    for (int64_t i = lo; i < hi; i++) c[(key[i] >> shift) & 255]++;
    for (int d = 0; d < 256; d++) cnt[d * ntiles + t] = c[d];
  }
}

__global__ void k_sort_scatter(const int64_t *key, const int64_t *val, int64_t n,
                               int64_t ntiles, int shift, const int64_t *off, int64_t *okey,
                               int64_t *oval) {
  KL_GRID_LOOP(t, ntiles) {
    int64_t o[256];
    for (int d = 0; d < 256; d++) o[d] = off[d * ntiles + t];
    const int64_t lo = t * SORT_TILE, hi = lo + SORT_TILE < n ? lo + SORT_TILE : n;
    for (int64_t i = lo; i < hi; i++) {
      const int64_t at = o[(key[i] >> shift) & 255]++;
      okey[at] = key[i];
      oval[at] = val[i];
    }
  }
}

__global__ void k_copy_pairs(const int64_t *ka, const int64_t *va, int64_t n, int64_t *kb,
                             int64_t *vb) {
  KL_GRID_LOOP(i, n) {
    kb[i] = ka[i];
    vb[i] = va[i];
  }
}

/* Scratch: keys, values (n each), digit counts and their offsets (256 * ntiles + 1 each),
 * the scan's scratch. */
extern "C" size_t kl_cuda_sort_scratch(int64_t n) {
  if (n <= 0) return 0;
  const int64_t ntiles = (n + SORT_TILE - 1) / SORT_TILE, nc = 256 * ntiles;
  return 2 * align_up((size_t)n * sizeof(int64_t)) +
         2 * align_up((size_t)(nc + 1) * sizeof(int64_t)) + align_up(kl_cuda_scan_scratch(nc));
}

extern "C" kl_status kl_cuda_sort_pairs(int64_t *key, int64_t *val, int64_t n, int64_t maxkey,
                                        void *scratch, kl_cuda_stream s) {
  if (n < 0 || maxkey < 0)
    return kl_cuda_seterr(KL_EINVAL, "cuda sort_pairs: n=%lld maxkey=%lld", (long long)n,
                          (long long)maxkey);
  if (n == 0) return KL_OK;
  const int64_t ntiles = (n + SORT_TILE - 1) / SORT_TILE, nc = 256 * ntiles;
  char *p = (char *)scratch;
  int64_t *tk = (int64_t *)p;
  p += align_up((size_t)n * sizeof(int64_t));
  int64_t *tv = (int64_t *)p;
  p += align_up((size_t)n * sizeof(int64_t));
  int64_t *cnt = (int64_t *)p;
  p += align_up((size_t)(nc + 1) * sizeof(int64_t));
  int64_t *off = (int64_t *)p;
  p += align_up((size_t)(nc + 1) * sizeof(int64_t));
  int64_t *ka = key, *va = val, *kb = tk, *vb = tv;
  kl_status st = KL_OK;
  for (int shift = 0; shift < 64 && (maxkey >> shift) > 0; shift += 8) {
    KL_LAUNCH(k_sort_hist, kl_cuda_blocks(ntiles), KL_CUDA_BLOCK, s, ka, n, ntiles, shift, cnt);
    if ((st = kl_cuda_launched("cuda sort_pairs")) != KL_OK) return st;
    if ((st = kl_cuda_scan_i64(cnt, off, nc, p, s)) != KL_OK) return st;
    KL_LAUNCH(k_sort_scatter, kl_cuda_blocks(ntiles), KL_CUDA_BLOCK, s, ka, va, n, ntiles, shift,
              off, kb, vb);
    if ((st = kl_cuda_launched("cuda sort_pairs")) != KL_OK) return st;
    int64_t *x = ka; ka = kb; kb = x;
    x = va; va = vb; vb = x;
  }
  if (ka != key) {
    KL_LAUNCH(k_copy_pairs, kl_cuda_blocks(n), KL_CUDA_BLOCK, s, ka, va, n, key, val);
    st = kl_cuda_launched("cuda sort_pairs");
  }
  return st;
}
