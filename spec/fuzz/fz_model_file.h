/* fz_model_file.h: fuzz entry point: bytes -> kl_model_file_parse (the model-file loader). */
#ifndef KL_FZ_MODEL_FILE_H
#define KL_FZ_MODEL_FILE_H
#include <stdlib.h>
#include "fuzz_common.h"
#include "kl/model_file.h"

/* The whole input is the file, parsed as a keras-lua file (flags 0) or as a safetensors file
 * written elsewhere (KL_MF_FOREIGN: load_weights' mode, __metadata__ and CRCs optional,
 * F16/BF16 widened, other dtypes skipped). A parsed file must hold named, valid tensors and
 * metadata; in foreign mode every loaded tensor is F32/F64/I64 (F16/BF16 arrive as F32) and
 * every skipped entry has a name and a dtype tag. */
static int fz_parse_one(const uint8_t *data, size_t size, int flags) {
  kl_model_file *f = NULL;
  kl_status s = flags ? kl_model_file_parse_ex("fuzz.safetensors", data, size, flags, "load_weights", &f)
                      : kl_model_file_parse("fuzz.safetensors", data, size, &f);
  int bad = 0;
  if (s != KL_OK) {
    bad |= fz_clean_error(s, "model_file_parse");
    if (f) bad |= FZ_BUG("parse failed but returned a file");
    if (s != KL_EFORMAT && s != KL_ENOMEM && s != KL_EIO)
      bad |= FZ_BUG("parse: unexpected status %s: %s", kl_status_name(s), kl_errmsg());
    return bad;
  }
  if (!f) return FZ_BUG("parse succeeded without a file");
  for (int i = 0; i < f->n && !bad; i++) {
    if (!f->names[i] || !f->tensors[i]) bad |= FZ_BUG("entry %d has no name or tensor", i);
    else if (kl_tensor_check_format(f->tensors[i], "fuzz", 0) != KL_OK)
      bad |= FZ_BUG("entry %s is invalid: %s", f->names[i], kl_errmsg());
    else {
      /* every stored value readable (ASan checks the buffers' extent) */
      const kl_tensor *t = f->tensors[i];
      int64_t nv = t->stype == KL_STYPE_DEFAULT ? kl_tensor_numel(t)
                   : t->stype == KL_STYPE_CSR ? t->nnz : t->nnz * kl_row_width(t);
      double acc = 0;
      for (int64_t k = 0; k < nv && k < 100000; k++) acc += kl_tensor_data_at(t, k);
      (void)acc;
    }
  }
  for (int i = 0; i < f->nmeta && !bad; i++)
    if (!f->keys[i] || !f->values[i]) bad |= FZ_BUG("metadata %d missing key or value", i);
  if (flags & KL_MF_FOREIGN) {
    for (int i = 0; i < f->n && !bad; i++)
      if (f->tensors[i]->dtype != KL_FLOAT32 && f->tensors[i]->dtype != KL_FLOAT64 &&
          f->tensors[i]->dtype != KL_INT64)
        bad |= FZ_BUG("foreign entry %s has dtype %d", f->names[i], (int)f->tensors[i]->dtype);
    if (f->nskipped < 0 || (f->nskipped > 0 && (!f->skipped || !f->skipped_dtypes)))
      bad |= FZ_BUG("foreign: %d skipped entries without their lists", f->nskipped);
    for (int i = 0; i < f->nskipped && !bad; i++)
      if (!f->skipped[i] || !f->skipped_dtypes[i]) bad |= FZ_BUG("skipped entry %d has no name or dtype", i);
  } else if (f->nskipped != 0) {
    bad |= FZ_BUG("a keras-lua file parse skipped %d entries", f->nskipped);
  }
  kl_model_file_free(f);
  return bad;
}

/* Mutated headers nearly always fail their checksum; a second parse with the header's
 * "kl.header_crc32" recomputed lets the fuzzer reach entries, layout and metadata. */
static int fz_run_model_file(const uint8_t *data, size_t size) {
  int bad = fz_parse_one(data, size, 0) | fz_parse_one(data, size, KL_MF_FOREIGN);
  if (bad || size < 8) return bad;
  uint64_t h = 0;
  for (int k = 0; k < 8; k++) h |= (uint64_t)data[k] << (8 * k);
  if (h > size - 8) return 0;
  static const char key[] = "\"kl.header_crc32\"";
  uint8_t *copy = malloc(size);
  if (!copy) return 0;
  memcpy(copy, data, size);
  char *hdr = (char *)copy + 8, *at = NULL;
  for (uint64_t i = 0; i + sizeof key - 1 < h; i++)
    if (memcmp(hdr + i, key, sizeof key - 1) == 0) { at = hdr + i + sizeof key - 1; break; }
  /* skip spaces and ':' to the opening quote of the value */
  while (at && at < hdr + h && (*at == ' ' || *at == ':')) at++;
  if (at && at + 9 < hdr + h && *at == '"') {
    memset(at + 1, '0', 8);
    char hex[9];
    snprintf(hex, sizeof hex, "%08lx", (unsigned long)kl_crc32(hdr, (size_t)h));
    memcpy(at + 1, hex, 8);
    bad = fz_parse_one(copy, size, 0) | fz_parse_one(copy, size, KL_MF_FOREIGN);
  }
  free(copy);
  return bad;
}

#endif
