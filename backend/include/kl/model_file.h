/* model_file.h: model files: safetensors layout (8-byte little-endian header length, JSON
 * header, raw little-endian tensor bytes) with CRC32s and stypes in __metadata__. */
#ifndef KL_MODEL_FILE_H
#define KL_MODEL_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "kl/kl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The file's layout, as written and as checked on load:
 *   bytes 0..7      header length H (uint64, little-endian), H % 8 == 0 when written
 *   bytes 8..8+H-1  JSON object: "name": {"dtype": "F32"|"F64"|"I64", "shape": [...],
 *                   "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}; padded
 *                   with spaces
 *   the rest        tensor bytes, offsets relative to 8+H, contiguous, in header order.
 * Dense tensors are stored as one entry. A CSR tensor "w" is stored as "w.data", "w.indices"
 * (I64) and "w.indptr" (I64), a row_sparse one as "w.data" and "w.indices"; its stype and
 * logical shape go in __metadata__ as "kl.sparse:w" = {"stype":"csr","shape":[r,c]}.
 * __metadata__ also holds "kl.crc32:<entry>" (8 lowercase hex digits, zlib crc32 of the
 * entry's bytes) for every entry, and "kl.header_crc32": the crc32 of the header bytes
 * with its own 8 digits read as "00000000". Keys starting with "kl." are reserved.
 * Alignment, as safetensors' own writer: the header is padded so that the data area starts
 * at a multiple of 8, and the entries are laid out by descending element size (8-byte
 * dtypes first, then F32), each group in the caller's order, so every entry's offset is a
 * multiple of its element size (of 8 for F64 and I64). The header lists the entries in
 * the caller's order; the offsets say where each lies (safetensors reads them so). */

/* A loaded file: n tensors (names[i], tensors[i], in file order, sparse tensors rebuilt),
 * and the caller's metadata (keys[i] -> values[i], NUL-terminated, reserved keys left out). */
typedef struct kl_model_file {
  int n;
  char **names;
  kl_tensor **tensors;
  int nmeta;
  char **keys;
  char **values;
  /* KL_MF_FOREIGN only: the entries of dtypes keras-lua does not hold (I32, U8, BOOL, ...),
   * checked for their layout but not loaded: skipped[i] is the name, skipped_dtypes[i] the
   * file's dtype tag; and whether the file carried keras-lua's checksums. */
  int nskipped;
  char **skipped;
  char **skipped_dtypes;
  int has_crc;
} kl_model_file;

/* Flags of kl_model_file_load_ex / kl_model_file_parse_ex. */
enum {
  /* A safetensors file written elsewhere (Python's safetensors, torch, numpy): __metadata__
   * and keras-lua's checksums are optional (when "kl.header_crc32" is present every CRC is
   * required and checked, as in a keras-lua file; else the entry CRCs present are checked);
   * F16 and BF16 entries are converted to float32; entries of the other safetensors dtypes
   * are checked and listed in skipped. */
  KL_MF_FOREIGN = 1
};

/* Writes tensors[0..n-1] (any stype and dtype) under names[0..n-1] and the string pairs
 * keys[i] -> values[i] (i < nmeta) to path atomically: a temp file in the same folder,
 * fsync, rename over path, fsync of the folder. On failure the temp file is removed and
 * an existing file at path is untouched. Messages: "save_model: path: ...". */
kl_status kl_model_file_save(const char *path, int n, const char *const *names,
                             const kl_tensor *const *tensors, int nmeta,
                             const char *const *keys, const char *const *values);

/* Reads and fully validates path (lengths, JSON, dtypes, shapes, offsets, CRCs, sparse
 * invariants) before building anything. *out is new, owned by the caller
 * (kl_model_file_free). Errors: KL_EIO (open/read), KL_EFORMAT with
 * "load_model: path: message", KL_ENOMEM. */
kl_status kl_model_file_load(const char *path, kl_model_file **out);

/* Same as kl_model_file_load on a buffer already in memory (len bytes); label stands for
 * the path in messages. buf is only read. */
kl_status kl_model_file_parse(const char *label, const unsigned char *buf, size_t len,
                              kl_model_file **out);

/* kl_model_file_load / _parse with flags (0 or KL_MF_FOREIGN); messages start with fn
 * ("load_weights") instead of "load_model" (NULL: "load_model"). */
kl_status kl_model_file_load_ex(const char *path, int flags, const char *fn,
                                kl_model_file **out);
kl_status kl_model_file_parse_ex(const char *label, const unsigned char *buf, size_t len,
                                 int flags, const char *fn, kl_model_file **out);

/* Frees f and releases its tensors; NULL-safe. */
void kl_model_file_free(kl_model_file *f);

/* zlib's crc32 of len bytes (the checksum the file stores). */
uint32_t kl_crc32(const void *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* KL_MODEL_FILE_H */
