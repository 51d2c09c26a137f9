/* svmload.c: W6 from C, kl_svmlight_load (what keras.data_utils.load_svmlight_file calls). */
#include "benchio.h"
#include "kl/svmlight.h"

int main(int argc, char **argv) {
  if (argc != 5) { fprintf(stderr, "usage: svmload WORKLOAD FILE N_FEATURES RUNS\n"); return 2; }
  int runs = atoi(argv[4]);
  kl_svmlight_opts o = kl_svmlight_opts_default();
  o.n_features = atoll(argv[3]);
  double *t = malloc((size_t)runs * sizeof *t);
  long long nnz = 0;
  for (int rep = -1; rep < runs; rep++) {
    kl_tensor *X = NULL, *y = NULL;
    double t0 = now_s();
    if (kl_svmlight_load(argv[2], &o, &X, &y, NULL) != KL_OK) die("kl_svmlight_load");
    double dt = now_s() - t0;
    nnz = X->nnz;
    kl_tensor_release(X);
    kl_tensor_release(y);
    if (rep >= 0) t[rep] = dt;
  }
  char note[64];
  snprintf(note, sizeof note, "nnz=%lld", nnz);
  result(argv[1], "keras-lua(C)", kl_num_threads(), median(t, runs), runs, note);
  free(t);
  return 0;
}
