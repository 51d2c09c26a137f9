/* l_capi.c: core._capi, the table of C entry points companion modules call (kl_capi.h). */
#include "kl_capi.h"
#include "kl/registry.h"
#include "l_graph.h"
#include "lbind.h"

static const kl_capi kl_capi_table = {
    KL_CAPI_VERSION,
    sizeof(kl_capi),
    kl_seterr,
    kl_errmsg,
    kl_malloc,
    kl_realloc,
    kl_free,
    kl_pool_enter,
    kl_pool_leave,
    kl_tensor_new_dense,
    kl_tensor_new_rsp,
    kl_tensor_new_csr,
    kl_tensor_copy,
    kl_tensor_retain,
    kl_tensor_release,
    kl_tensor_numel,
    kl_row_width,
    kl_dtype_name,
    kl_stype_name,
    kl_plan_set_grad_hook,
    kl_plan_grad_hook_ud,
    kl_plan_weight,
    kl_plan_num_states,
    kl_plan_state,
    kl_plan_batch_rows,
    kl_lua_checktensor,
    kl_lua_push_tensor,
    kl_lua_checkplan,
    kl_lua_raise,
    kl_plan_set_node_ext,
    kl_plan_node_ext_ud,
    kl_device_register,
    kl_tensor_new_dense_on,
    kl_tensor_new_csr_on,
    kl_tensor_new_rsp_on,
    kl_tensor_to,
    kl_tensor_reserve,
    kl_op_run,
    kl_op_backward,
    kl_device_fallback_count,
    kl_device_str,
    kl_warnf,
    kl_op_infer,
};

void kl_lua_open_capi(lua_State *L) {
  lua_pushlightuserdata(L, (void *)&kl_capi_table);
  lua_setfield(L, -2, "_capi");
}
