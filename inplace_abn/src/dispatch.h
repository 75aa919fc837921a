// New (after mapillary/inplace_abn include/dispatch.h): route an op to its _cpu or _cuda version.
// License: MIT (this reproduction). Without WITH_CUDA only the CPU kernels exist and a CUDA tensor
// raises a clear error, so the same sources build CPU-only or with CUDA.
#pragma once

#include <ATen/ATen.h>

namespace iabn {
inline void check_cpu_build(const at::Tensor& ref, const char* op) {
  TORCH_CHECK(!ref.is_cuda(), "inplace_abn.", op,
              ": CUDA support was not enabled at compile time (this is the CPU-only build "
              "ocnet_iabn_cpu); use IABN_BACKEND=cuda or IABN_BACKEND=torch for CUDA tensors");
}
}  // namespace iabn

#ifdef WITH_CUDA
#define IABN_DISPATCH(REF, METHOD, ...) \
  ((REF).is_cuda() ? METHOD##_cuda(__VA_ARGS__) : METHOD##_cpu(__VA_ARGS__))
#else
#define IABN_DISPATCH(REF, METHOD, ...) \
  (iabn::check_cpu_build(REF, #METHOD), METHOD##_cpu(__VA_ARGS__))
#endif
