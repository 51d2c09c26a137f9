/* gen.c: deterministic (seeded) synthetic data for the benchmarks: CSR binaries and LibSVM files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "kl/kl.h"

/* Binary CSR layout shared with the Python peers (bench/peers/common.py, read with numpy):
 * int64 rows, cols, nnz; int64 indptr[rows+1]; int64 indices[nnz]; float32 data[nnz];
 * float32 y[rows] (a label per row). All little-endian. */

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* k distinct sorted columns in [0, cols) into col[0..k-1] (rejection; k << cols). */
static void draw_row(kl_rng *r, int64_t cols, int64_t k, int64_t *col) {
  for (int64_t i = 0; i < k;) {
    int64_t c = (int64_t)kl_rng_below(r, (uint64_t)cols);
    int dup = 0;
    for (int64_t j = 0; j < i; j++)
      if (col[j] == c) { dup = 1; break; }
    if (!dup) col[i++] = c;
  }
  qsort(col, (size_t)k, sizeof *col, cmp_i64);
}

/* label: "logistic" draws y in {0,1} from a hidden weight vector (w_c = normal, seeded),
 * P(y = 1) = sigmoid(3 x . w / sqrt(k)), values on the 1/1024 grid; "logit" (W7, issue 18):
 * every value is 1/sqrt(k) (as a float: the text form prints it with 10 digits, which reads
 * back as the same float) and P(y = 1) = sigmoid(x . w) with w ~ N(0, 1), so x . w ~ N(0, 1);
 * "none" writes 0. gen() writes `rows` rows drawn from r (shared by the calls of one run, so
 * a held-out file continues the training file's stream with the same w) and adds to *floor
 * the generating model's log-loss summed over its rows (logistic / logit only). */
static int gen(const char *kind, int64_t rows, int64_t cols, int64_t k, kl_rng *rp,
               const float *w, const char *label, const char *path, double *floor) {
  kl_rng r = *rp;
  int logistic = strcmp(label, "logistic") == 0, logit = strcmp(label, "logit") == 0;
  int64_t *col = malloc((size_t)k * sizeof *col);
  float *val = malloc((size_t)k * sizeof *val);
  FILE *f = fopen(path, "wb");
  if (!f || !col || !val) { fprintf(stderr, "gen: cannot write %s\n", path); return 1; }
  const float v_logit = (float)(1.0 / sqrt((double)k));
  *floor = 0;
  static char buf[1 << 20];
  setvbuf(f, buf, _IOFBF, sizeof buf);
  int bin = strcmp(kind, "csr") == 0;
  int64_t nnz = rows * k;
  int64_t *indices = NULL;
  float *data = NULL, *y = NULL;
  if (bin) {
    indices = malloc((size_t)nnz * sizeof *indices);
    data = malloc((size_t)nnz * sizeof *data);
    y = malloc((size_t)rows * sizeof *y);
    if (!indices || !data || !y) { fprintf(stderr, "gen: out of memory\n"); return 1; }
  }
  for (int64_t i = 0; i < rows; i++) {
    draw_row(&r, cols, k, col);
    double z = 0;
    for (int64_t j = 0; j < k; j++) {
      /* values on a 1/1024 grid so that text and binary agree exactly */
      if (logit) val[j] = v_logit;
      else val[j] = (float)(1 + kl_rng_below(&r, 1024)) / 1024.0f;
      if (logistic || logit) z += (double)val[j] * w[col[j]];
    }
    float lab = 0;
    if (logistic || logit) {
      double p = 1.0 / (1.0 + exp(logit ? -z : -z / sqrt((double)k) * 3));
      lab = kl_rng_uniform(&r) < p ? 1 : 0;
      *floor -= lab ? log(p) : log1p(-p);
    }
    if (bin) {
      memcpy(indices + i * k, col, (size_t)k * sizeof *col);
      memcpy(data + i * k, val, (size_t)k * sizeof *val);
      y[i] = lab;
    } else {
      fprintf(f, "%g", lab);
      for (int64_t j = 0; j < k; j++) fprintf(f, " %lld:%.10g", (long long)col[j] + 1, val[j]);
      fputc('\n', f);
    }
  }
  if (bin) {
    int64_t hdr[3] = {rows, cols, nnz};
    fwrite(hdr, sizeof hdr, 1, f);
    for (int64_t i = 0; i <= rows; i++) {
      int64_t p = i * k;
      fwrite(&p, sizeof p, 1, f);
    }
    fwrite(indices, sizeof *indices, (size_t)nnz, f);
    fwrite(data, sizeof *data, (size_t)nnz, f);
    fwrite(y, sizeof *y, (size_t)rows, f);
  }
  int bad = ferror(f) != 0;
  if (fclose(f) != 0) bad = 1;
  free(indices); free(data); free(y); free(col); free(val);
  *rp = r;
  if (bad) { fprintf(stderr, "gen: write error on %s\n", path); return 1; }
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 8 && argc != 10) {
    fprintf(stderr, "usage: gen csr|svm ROWS COLS NNZ_PER_ROW SEED none|logistic|logit PATH "
                    "[HELDOUT_ROWS HELDOUT_PATH]\n");
    return 2;
  }
  int64_t rows = atoll(argv[2]), cols = atoll(argv[3]), k = atoll(argv[4]);
  int64_t hrows = argc == 10 ? atoll(argv[8]) : 0;
  if (rows <= 0 || cols <= 0 || k <= 0 || k > cols || hrows < 0) { fprintf(stderr, "gen: bad sizes\n"); return 2; }
  uint64_t seed = (uint64_t)atoll(argv[5]);
  const char *label = argv[6];
  kl_rng r, rw;
  kl_rng_seed(&r, seed);
  kl_rng_seed(&rw, seed ^ 0x9e3779b97f4a7c15ULL);
  float *w = NULL;
  int labelled = strcmp(label, "logistic") == 0 || strcmp(label, "logit") == 0;
  if (labelled) {
    w = malloc((size_t)cols * sizeof *w);
    if (!w) return 1;
    for (int64_t c = 0; c < cols; c++) w[c] = (float)kl_rng_normal(&rw);
  }
  double f1 = 0, f2 = 0;
  int rc = gen(argv[1], rows, cols, k, &r, w, label, argv[7], &f1);
  if (rc == 0 && hrows > 0) rc = gen(argv[1], hrows, cols, k, &r, w, label, argv[9], &f2);
  /* the generating model's mean log-loss on each file: the floor a fitted model approaches */
  if (rc == 0 && labelled)
    printf("FLOOR %.6f %.6f\n", f1 / (double)rows, hrows > 0 ? f2 / (double)hrows : 0.0);
  free(w);
  return rc;
}
