// Port of OCNet.pytorch@679a45b inplace_abn/src/common.h input checks (AT_CHECK -> TORCH_CHECK).
// License: MIT (this reproduction). Every op validates its inputs here before dispatching.
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace iabn {

// "[2, 3, 4]": formatted by hand (streaming IntArrayRef into TORCH_CHECK crashed under torch 2.11)
inline std::string shape_str(const at::Tensor& t) {
  std::string out = "[";
  for (int64_t d = 0; d < t.dim(); ++d) out += (d ? ", " : "") + std::to_string(t.size(d));
  return out + "]";
}

// Accumulation dtype of an input dtype: double stays double, everything else uses float.
inline at::ScalarType acc_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_input(const at::Tensor& x, const char* op, const char* name) {
  TORCH_CHECK(x.defined(), "inplace_abn.", op, ": ", name, " is undefined");
  TORCH_CHECK(x.dim() >= 2, "inplace_abn.", op, ": ", name, " must have shape (N, C, *), got ",
              shape_str(x));
  TORCH_CHECK(x.is_contiguous(), "inplace_abn.", op, ": ", name, " must be contiguous");
  auto t = x.scalar_type();
  TORCH_CHECK(t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16,
              "inplace_abn.", op, ": ", name, " must be float, double, half or bfloat16, got ", t);
}

inline void check_same(const at::Tensor& x, const at::Tensor& y, const char* op,
                       const char* name) {
  TORCH_CHECK(y.sizes() == x.sizes(), "inplace_abn.", op, ": ", name, " has shape ", shape_str(y),
              ", expected ", shape_str(x));
  TORCH_CHECK(y.scalar_type() == x.scalar_type() && y.device() == x.device(), "inplace_abn.", op,
              ": ", name, " must have the dtype and device of z");
  TORCH_CHECK(y.is_contiguous(), "inplace_abn.", op, ": ", name, " must be contiguous");
}

// A (C,) vector in the accumulation dtype on x's device; optional ones may be empty.
inline void check_vector(const at::Tensor& x, const at::Tensor& v, const char* op,
                         const char* name, bool optional) {
  if (optional && v.numel() == 0) return;
  if (!(v.dim() == 1 && v.size(0) == x.size(1))) {
    const std::string msg = std::string("inplace_abn.") + op + ": " + name + " must have shape (" +
                            std::to_string(x.size(1)) + ",), got " + shape_str(v);
    TORCH_CHECK(false, msg);
  }
  TORCH_CHECK(v.scalar_type() == acc_type(x.scalar_type()), "inplace_abn.", op, ": ", name,
              " must be ", acc_type(x.scalar_type()), " for a ", x.scalar_type(), " input, got ",
              v.scalar_type());
  TORCH_CHECK(v.device() == x.device(), "inplace_abn.", op, ": ", name, " is on ", v.device(),
              ", the input on ", x.device());
  TORCH_CHECK(v.is_contiguous(), "inplace_abn.", op, ": ", name, " must be contiguous");
}

inline void check_affine(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                         bool affine, const char* op) {
  if (affine) {
    check_vector(x, weight, op, "weight", false);
    check_vector(x, bias, op, "bias", false);
  } else {
    TORCH_CHECK(weight.numel() == 0 && bias.numel() == 0, "inplace_abn.", op,
                ": affine=False needs empty weight and bias");
  }
}

}  // namespace iabn
