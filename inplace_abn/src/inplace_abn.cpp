// Port of OCNet.pytorch@679a45b inplace_abn/src/inplace_abn.cpp (bindings), for current ATen.
// License: BSD-3-Clause (original InPlace-ABN, Mapillary) / MIT (this reproduction).
// Validates every input, then dispatches to the CPU or (WITH_CUDA) CUDA implementation.
#include <ATen/ATen.h>
#include <torch/csrc/utils/pybind.h>  // lighter than torch/extension.h (faster JIT build)

#include "checks.h"
#include "dispatch.h"
#include "inplace_abn.h"

using at::Tensor;

static std::tuple<Tensor, Tensor> mean_var(const Tensor& x) {
  iabn::check_input(x, "mean_var", "x");
  TORCH_CHECK(x.numel() > 0, "inplace_abn.mean_var: x is empty");
  return IABN_DISPATCH(x, mean_var, x);
}

static Tensor forward(Tensor x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                      const Tensor& bias, bool affine, double eps) {
  iabn::check_input(x, "forward", "x");
  iabn::check_vector(x, mean, "forward", "mean", false);
  iabn::check_vector(x, var, "forward", "var", false);
  iabn::check_affine(x, weight, bias, affine, "forward");
  return IABN_DISPATCH(x, forward, x, mean, var, weight, bias, affine, eps);
}

static std::tuple<Tensor, Tensor> edz_eydz(const Tensor& z, const Tensor& dz,
                                           const Tensor& weight, const Tensor& bias, bool affine,
                                           double eps) {
  iabn::check_input(z, "edz_eydz", "z");
  iabn::check_same(z, dz, "edz_eydz", "dz");
  iabn::check_affine(z, weight, bias, affine, "edz_eydz");
  return IABN_DISPATCH(z, edz_eydz, z, dz, weight, bias, affine, eps);
}

static std::tuple<Tensor, Tensor, Tensor> backward(const Tensor& z, const Tensor& dz,
                                                   const Tensor& var, const Tensor& weight,
                                                   const Tensor& bias, const Tensor& edz,
                                                   const Tensor& eydz, bool affine, double eps) {
  iabn::check_input(z, "backward", "z");
  iabn::check_same(z, dz, "backward", "dz");
  iabn::check_vector(z, var, "backward", "var", false);
  iabn::check_vector(z, edz, "backward", "edz", false);
  iabn::check_vector(z, eydz, "backward", "eydz", false);
  iabn::check_affine(z, weight, bias, affine, "backward");
  Tensor dx = IABN_DISPATCH(z, backward, z, dz, var, weight, bias, edz, eydz, affine, eps);
  Tensor dweight = affine ? eydz * weight.sign() : at::empty({0}, edz.options());
  Tensor dbias = affine ? edz.clone() : at::empty({0}, edz.options());
  return std::make_tuple(dx, dweight, dbias);
}

static void leaky_relu_forward(Tensor x, double slope) {
  iabn::check_input(x, "leaky_relu_forward", "x");
  IABN_DISPATCH(x, leaky_relu_forward, x, slope);
}

static void leaky_relu_backward(Tensor z, Tensor dz, double slope) {
  iabn::check_input(z, "leaky_relu_backward", "z");
  iabn::check_same(z, dz, "leaky_relu_backward", "dz");
  TORCH_CHECK(slope > 0, "inplace_abn.leaky_relu_backward: slope must be > 0 to invert, got ",
              slope);
  IABN_DISPATCH(z, leaky_relu_backward, z, dz, slope);
}

static void elu_forward(Tensor x) {
  iabn::check_input(x, "elu_forward", "x");
  IABN_DISPATCH(x, elu_forward, x);
}

static void elu_backward(Tensor z, Tensor dz) {
  iabn::check_input(z, "elu_backward", "z");
  iabn::check_same(z, dz, "elu_backward", "dz");
  IABN_DISPATCH(z, elu_backward, z, dz);
}

static bool has_cuda() {
#ifdef WITH_CUDA
  return true;
#else
  return false;
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "InPlace-ABN kernels (op API: inplace_abn/_backend.pyi)";
  m.def("has_cuda", &has_cuda, "True when built with the CUDA kernels");
  m.def("mean_var", &mean_var, "per-channel mean and biased variance");
  m.def("forward", &forward, "in-place normalisation x <- (x-mean)*rsqrt(var+eps)*(|w|+eps)+b");
  m.def("edz_eydz", &edz_eydz, "per-channel sum(dz) and sum(y*dz), y = (z-b)/(|w|+eps)");
  m.def("backward", &backward, "(dx, dweight, dbias) from the BN output z");
  m.def("leaky_relu_forward", &leaky_relu_forward, "in-place leaky ReLU");
  m.def("leaky_relu_backward", &leaky_relu_backward, "in-place leaky ReLU inversion");
  m.def("elu_forward", &elu_forward, "in-place ELU");
  m.def("elu_backward", &elu_backward, "in-place ELU inversion");
}
