// What the C library accepts from torch: CPU dense tensors of terse's dtypes, terse's ops.
#pragma once

#include <terse/terse.h>

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/Types.hpp>

#include <string>

namespace terse_c10d {

inline void check_cpu(const at::Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu(), "ProcessGroup terse ", what, ": ", t.device().str(),
              " tensors are not supported (terse works on host memory); use CPU tensors");
  TORCH_CHECK(t.layout() == at::kStrided, "ProcessGroup terse ", what,
              ": sparse tensors are not supported");
}

inline terse_dtype_t dtype_of(const at::Tensor& t, const char* what) {
  switch (t.scalar_type()) {
  case at::kFloat: return TERSE_DTYPE_FLOAT32;
  case at::kDouble: return TERSE_DTYPE_FLOAT64;
  case at::kHalf: return TERSE_DTYPE_FLOAT16;
  case at::kBFloat16: return TERSE_DTYPE_BFLOAT16;
  case at::kChar: return TERSE_DTYPE_INT8;
  case at::kShort: return TERSE_DTYPE_INT16;
  case at::kInt: return TERSE_DTYPE_INT32;
  case at::kLong: return TERSE_DTYPE_INT64;
  case at::kByte: return TERSE_DTYPE_UINT8;
  // bool and complex have no terse dtype: a byte-wise copy would be right for broadcast
  // but wrong for reductions, so all are refused alike
  default:
    TORCH_CHECK(false, "ProcessGroup terse ", what, ": dtype ", t.scalar_type(),
                " is not supported");
  }
}

inline terse_op_t op_of(const c10d::ReduceOp& op, const char* what) {
  switch (op.op_) {
  case c10d::ReduceOp::SUM: return TERSE_OP_SUM;
  case c10d::ReduceOp::AVG: return TERSE_OP_AVG;
  case c10d::ReduceOp::MIN: return TERSE_OP_MIN;
  case c10d::ReduceOp::MAX: return TERSE_OP_MAX;
  case c10d::ReduceOp::PRODUCT: return TERSE_OP_PROD;
  default:
    TORCH_CHECK(false, "ProcessGroup terse ", what, ": ReduceOp ", (int)op.op_,
                " is not supported (SUM, AVG, MIN, MAX, PRODUCT are)");
  }
}

} // namespace terse_c10d
