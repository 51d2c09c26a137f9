/* model_file_crc.c: kl_crc32, zlib's checksum of stored tensor bytes and headers. */
#include <zlib.h>

#include "mf_internal.h"

uint32_t kl_crc32(const void *buf, size_t len) {
  uLong c = crc32(0L, Z_NULL, 0);
  const Bytef *p = (const Bytef *)buf;
  while (len > 0) { /* zlib takes uInt lengths: feed large buffers in chunks */
    uInt k = len > (size_t)1 << 30 ? (uInt)1 << 30 : (uInt)len;
    c = crc32(c, p, k);
    p += k;
    len -= k;
  }
  return (uint32_t)c;
}
