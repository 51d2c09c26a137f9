/* dev_ops.c: the CUDA table of the op registry: for each op, the device's kernels and backward
 * (kl/device.h), registered with the device backend (dev_backend.c).
 *
 * Each op family's file (gpu/dev_ops_*.c) defines `kl_cuda_opdef_<op>` for the ops it
 * covers; the references below are weak, so an op no file defines reads NULL here and runs
 * on the host (a counted device fallback, kl/device.h). This table is the one place that
 * says which ops the GPU claims: tests assert the fallback counter stays zero for each op
 * whose entry is non-NULL (kl_cuda_op_claimed). */
#include "kl_cuda_dev.h"

#define KL_CUDA_WEAK __attribute__((weak))
extern const kl_device_opdef kl_cuda_opdef_dot KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_sum KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_mean KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_concat KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_add KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_sub KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_mul KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_div KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_add_scalar KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_mul_scalar KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_div_scalar KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_rsub_scalar KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_rdiv_scalar KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_neg KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_square KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_sqrt KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_abs KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_relu KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_exp KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_log KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_sigmoid KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_tanh KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_softmax KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_transpose KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_retain KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_minimum KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_maximum KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_minimum_scalar KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_maximum_scalar KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_pow_scalar KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_argmax KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_one_hot KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_bias_add KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_embedding KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_masked_mean KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_global_max_pool KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_reg_terms KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_loss_mse KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_loss_mae KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_loss_bce KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_loss_cce KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_loss_scce KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_loss_hinge KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_loss_squared_hinge KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_loss_poisson KL_CUDA_WEAK;
extern const kl_device_opdef kl_cuda_opdef_loss_huber KL_CUDA_WEAK;

static const kl_device_opdef *const kl_cuda_op_table[KL_OP_COUNT] = {
    [KL_OP_DOT] = &kl_cuda_opdef_dot,
    [KL_OP_SUM] = &kl_cuda_opdef_sum,
    [KL_OP_MEAN] = &kl_cuda_opdef_mean,
    [KL_OP_CONCAT] = &kl_cuda_opdef_concat,
    [KL_OP_ADD] = &kl_cuda_opdef_add,
    [KL_OP_SUB] = &kl_cuda_opdef_sub,
    [KL_OP_MUL] = &kl_cuda_opdef_mul,
    [KL_OP_DIV] = &kl_cuda_opdef_div,
    [KL_OP_ADD_SCALAR] = &kl_cuda_opdef_add_scalar,
    [KL_OP_MUL_SCALAR] = &kl_cuda_opdef_mul_scalar,
    [KL_OP_DIV_SCALAR] = &kl_cuda_opdef_div_scalar,
    [KL_OP_RSUB_SCALAR] = &kl_cuda_opdef_rsub_scalar,
    [KL_OP_RDIV_SCALAR] = &kl_cuda_opdef_rdiv_scalar,
    [KL_OP_NEG] = &kl_cuda_opdef_neg,
    [KL_OP_SQUARE] = &kl_cuda_opdef_square,
    [KL_OP_SQRT] = &kl_cuda_opdef_sqrt,
    [KL_OP_ABS] = &kl_cuda_opdef_abs,
    [KL_OP_RELU] = &kl_cuda_opdef_relu,
    [KL_OP_EXP] = &kl_cuda_opdef_exp,
    [KL_OP_LOG] = &kl_cuda_opdef_log,
    [KL_OP_SIGMOID] = &kl_cuda_opdef_sigmoid,
    [KL_OP_TANH] = &kl_cuda_opdef_tanh,
    [KL_OP_SOFTMAX] = &kl_cuda_opdef_softmax,
    [KL_OP_TRANSPOSE] = &kl_cuda_opdef_transpose,
    [KL_OP_RETAIN] = &kl_cuda_opdef_retain,
    [KL_OP_MINIMUM] = &kl_cuda_opdef_minimum,
    [KL_OP_MAXIMUM] = &kl_cuda_opdef_maximum,
    [KL_OP_MINIMUM_SCALAR] = &kl_cuda_opdef_minimum_scalar,
    [KL_OP_MAXIMUM_SCALAR] = &kl_cuda_opdef_maximum_scalar,
    [KL_OP_POW_SCALAR] = &kl_cuda_opdef_pow_scalar,
    [KL_OP_ARGMAX] = &kl_cuda_opdef_argmax,
    [KL_OP_ONE_HOT] = &kl_cuda_opdef_one_hot,
    [KL_OP_BIAS_ADD] = &kl_cuda_opdef_bias_add,
    [KL_OP_EMBEDDING] = &kl_cuda_opdef_embedding,
    [KL_OP_MASKED_MEAN] = &kl_cuda_opdef_masked_mean,
    [KL_OP_GLOBAL_MAX_POOL] = &kl_cuda_opdef_global_max_pool,
    [KL_OP_REG_TERMS] = &kl_cuda_opdef_reg_terms,
    [KL_OP_LOSS_MSE] = &kl_cuda_opdef_loss_mse,
    [KL_OP_LOSS_MAE] = &kl_cuda_opdef_loss_mae,
    [KL_OP_LOSS_BCE] = &kl_cuda_opdef_loss_bce,
    [KL_OP_LOSS_CCE] = &kl_cuda_opdef_loss_cce,
    [KL_OP_LOSS_SCCE] = &kl_cuda_opdef_loss_scce,
    [KL_OP_LOSS_HINGE] = &kl_cuda_opdef_loss_hinge,
    [KL_OP_LOSS_SQUARED_HINGE] = &kl_cuda_opdef_loss_squared_hinge,
    [KL_OP_LOSS_POISSON] = &kl_cuda_opdef_loss_poisson,
    [KL_OP_LOSS_HUBER] = &kl_cuda_opdef_loss_huber,
};

const kl_device_opdef *const *kl_cuda_ops(int *nops) {
  *nops = KL_OP_COUNT;
  return kl_cuda_op_table;
}

int kl_cuda_op_claimed(kl_op op) {
  return (int)op >= 0 && op < KL_OP_COUNT && kl_cuda_op_table[op] != NULL;
}
