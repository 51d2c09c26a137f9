/* status.c: per-thread error messages and the names of status codes. */
#include <stdarg.h>
#include <stdio.h>
#include "kl/kl.h"

static _Thread_local char kl_msg[1024];

const char *kl_errmsg(void) { return kl_msg; }

kl_status kl_seterr(kl_status code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(kl_msg, sizeof kl_msg, fmt, ap);
  va_end(ap);
  return code;
}

void kl_clearerr(void) { kl_msg[0] = '\0'; }

const char *kl_status_name(kl_status s) {
  switch (s) {
    case KL_OK: return "KL_OK";
    case KL_ENOMEM: return "KL_ENOMEM";
    case KL_EINVAL: return "KL_EINVAL";
    case KL_ESHAPE: return "KL_ESHAPE";
    case KL_EINDEX: return "KL_EINDEX";
    case KL_EDTYPE: return "KL_EDTYPE";
    case KL_ESTYPE: return "KL_ESTYPE";
    case KL_EIO: return "KL_EIO";
    case KL_EFORMAT: return "KL_EFORMAT";
    case KL_EUNSUPPORTED: return "KL_EUNSUPPORTED";
    case KL_ENODEV: return "KL_ENODEV";
    case KL_EDEVICE: return "KL_EDEVICE";
  }
  return "KL_UNKNOWN";
}
