/* kl/registry.h: extras of the op registry beyond kl.h: warnings, dispatch introspection. */
#ifndef KL_REGISTRY_H
#define KL_REGISTRY_H
#include "kl/kl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Receives every backend warning (one line, no "keras-lua: warning: " prefix, no newline).
 * fn == NULL restores the default, which prints "keras-lua: warning: <msg>" on stderr.
 * The handler may be called from any thread that runs an op; it must not call back into
 * the registry. ud is passed through untouched. */
typedef void (*kl_warn_fn)(const char *msg, void *ud);
void kl_set_warn_handler(kl_warn_fn fn, void *ud);

/* Emits a printf-style warning through the current handler (used by the registry, and by
 * other backend modules that warn: data slicing, readers). */
void kl_warnf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

/* Forgets which (op, stype combination) fallbacks have already warned, so the next one
 * warns again (tests; a long-lived host starting a new session). */
void kl_fallback_reset_warned(void);

/* Which path kl_op_run would take for these inputs: the name of the sparse kernel entry
 * ("csr.dense", ...), "dense" when every input is dense, or "fallback". Returns NULL for
 * an op out of range. Does not validate the inputs. */
const char *kl_op_dispatch_name(kl_op op, kl_tensor *const *in, int nin, const kl_attrs *a);

#ifdef __cplusplus
}
#endif
#endif
