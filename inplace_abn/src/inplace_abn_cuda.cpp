// Port of the ATen side of OCNet.pytorch@679a45b inplace_abn/src/inplace_abn_cuda.cu.
// License: BSD-3-Clause (original InPlace-ABN, Mapillary) / MIT (this reproduction).
// Allocates outputs, sets the device and stream, and calls the torch-free launchers of
// inplace_abn_kernels.cu. Compiled only in the CUDA build (WITH_CUDA).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAGuard.h>

#include "cuda_launch.h"
#include "inplace_abn.h"

using at::Tensor;

namespace {

iabn::DType dtype_of(const Tensor& x) {
  switch (x.scalar_type()) {
    case at::kFloat: return iabn::DType::kFloat;
    case at::kDouble: return iabn::DType::kDouble;
    case at::kHalf: return iabn::DType::kHalf;
    case at::kBFloat16: return iabn::DType::kBFloat16;
    default: TORCH_CHECK(false, "inplace_abn (CUDA): unsupported dtype ", x.scalar_type());
  }
}

iabn::Shape shape_of(const Tensor& x) {
  return {x.size(0), x.size(1), x.numel() / (x.size(0) * x.size(1))};
}

at::ScalarType acc_of(const Tensor& x) {
  return x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
}

const void* opt(const Tensor& t, bool affine) {
  return affine && t.numel() ? t.data_ptr() : nullptr;
}

void* stream_of() { return static_cast<void*>(c10::cuda::getCurrentCUDAStream().stream()); }

void check(int code, const char* op) {
  TORCH_CHECK(code == 0, "inplace_abn.", op, " (CUDA) failed: ", iabn::error_string(code));
}

}  // namespace

std::tuple<Tensor, Tensor> mean_var_cuda(const Tensor& x) {
  const c10::cuda::CUDAGuard guard(x.device());
  Tensor mean = at::empty({x.size(1)}, x.options().dtype(acc_of(x)));
  Tensor var = at::empty({x.size(1)}, x.options().dtype(acc_of(x)));
  check(iabn::mean_var_launch(dtype_of(x), x.data_ptr(), mean.data_ptr(), var.data_ptr(),
                              shape_of(x), stream_of()), "mean_var");
  return std::make_tuple(mean, var);
}

Tensor forward_cuda(Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                    const Tensor& bias, bool affine, double eps) {
  const c10::cuda::CUDAGuard guard(x.device());
  check(iabn::forward_launch(dtype_of(x), x.data_ptr(), mean.data_ptr(), var.data_ptr(),
                             opt(weight, affine), opt(bias, affine), eps, shape_of(x),
                             stream_of()), "forward");
  return x;
}

std::tuple<Tensor, Tensor> edz_eydz_cuda(const Tensor& z, const Tensor& dz, const Tensor& weight,
                                         const Tensor& bias, bool affine, double eps) {
  const c10::cuda::CUDAGuard guard(z.device());
  Tensor edz = at::empty({z.size(1)}, z.options().dtype(acc_of(z)));
  Tensor eydz = at::empty({z.size(1)}, z.options().dtype(acc_of(z)));
  check(iabn::edz_eydz_launch(dtype_of(z), z.data_ptr(), dz.data_ptr(), opt(weight, affine),
                              opt(bias, affine), edz.data_ptr(), eydz.data_ptr(), eps,
                              shape_of(z), stream_of()), "edz_eydz");
  return std::make_tuple(edz, eydz);
}

Tensor backward_cuda(const Tensor& z, const Tensor& dz, const Tensor& var, const Tensor& weight,
                     const Tensor& bias, const Tensor& edz, const Tensor& eydz, bool affine,
                     double eps) {
  const c10::cuda::CUDAGuard guard(z.device());
  Tensor dx = at::empty_like(z);
  check(iabn::backward_launch(dtype_of(z), z.data_ptr(), dz.data_ptr(), var.data_ptr(),
                              opt(weight, affine), opt(bias, affine), edz.data_ptr(),
                              eydz.data_ptr(), dx.data_ptr(), eps, shape_of(z), stream_of()),
        "backward");
  return dx;
}

void leaky_relu_forward_cuda(Tensor& x, double slope) {
  const c10::cuda::CUDAGuard guard(x.device());
  check(iabn::leaky_relu_forward_launch(dtype_of(x), x.data_ptr(), slope, x.numel(), stream_of()),
        "leaky_relu_forward");
}

void leaky_relu_backward_cuda(Tensor& z, Tensor& dz, double slope) {
  const c10::cuda::CUDAGuard guard(z.device());
  check(iabn::leaky_relu_backward_launch(dtype_of(z), z.data_ptr(), dz.data_ptr(), slope,
                                         z.numel(), stream_of()), "leaky_relu_backward");
}

void elu_forward_cuda(Tensor& x) {
  const c10::cuda::CUDAGuard guard(x.device());
  check(iabn::elu_forward_launch(dtype_of(x), x.data_ptr(), x.numel(), stream_of()), "elu_forward");
}

void elu_backward_cuda(Tensor& z, Tensor& dz) {
  const c10::cuda::CUDAGuard guard(z.device());
  check(iabn::elu_backward_launch(dtype_of(z), z.data_ptr(), dz.data_ptr(), z.numel(), stream_of()),
        "elu_backward");
}
