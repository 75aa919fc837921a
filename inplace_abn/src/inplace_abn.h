// Port of OCNet.pytorch@679a45b inplace_abn/src/inplace_abn.h, updated for current ATen.
// License: BSD-3-Clause (original InPlace-ABN, Mapillary) / MIT (this reproduction).
// Device-specific implementations of the op API (see inplace_abn/_backend.pyi).
// Shapes: x, z, dz are contiguous (N, C, S); statistics/weight/bias are (C,) in the
// accumulation dtype (double for double inputs, float otherwise); weight/bias empty = no affine.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

std::tuple<at::Tensor, at::Tensor> mean_var_cpu(const at::Tensor& x);
at::Tensor forward_cpu(at::Tensor& x, const at::Tensor& mean, const at::Tensor& var,
                       const at::Tensor& weight, const at::Tensor& bias, bool affine, double eps);
std::tuple<at::Tensor, at::Tensor> edz_eydz_cpu(const at::Tensor& z, const at::Tensor& dz,
                                                const at::Tensor& weight, const at::Tensor& bias,
                                                bool affine, double eps);
at::Tensor backward_cpu(const at::Tensor& z, const at::Tensor& dz, const at::Tensor& var,
                        const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& edz,
                        const at::Tensor& eydz, bool affine, double eps);
void leaky_relu_forward_cpu(at::Tensor& x, double slope);
void leaky_relu_backward_cpu(at::Tensor& z, at::Tensor& dz, double slope);
void elu_forward_cpu(at::Tensor& x);
void elu_backward_cpu(at::Tensor& z, at::Tensor& dz);

#ifdef WITH_CUDA
std::tuple<at::Tensor, at::Tensor> mean_var_cuda(const at::Tensor& x);
at::Tensor forward_cuda(at::Tensor& x, const at::Tensor& mean, const at::Tensor& var,
                        const at::Tensor& weight, const at::Tensor& bias, bool affine, double eps);
std::tuple<at::Tensor, at::Tensor> edz_eydz_cuda(const at::Tensor& z, const at::Tensor& dz,
                                                 const at::Tensor& weight, const at::Tensor& bias,
                                                 bool affine, double eps);
at::Tensor backward_cuda(const at::Tensor& z, const at::Tensor& dz, const at::Tensor& var,
                         const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& edz,
                         const at::Tensor& eydz, bool affine, double eps);
void leaky_relu_forward_cuda(at::Tensor& x, double slope);
void leaky_relu_backward_cuda(at::Tensor& z, at::Tensor& dz, double slope);
void elu_forward_cuda(at::Tensor& x);
void elu_backward_cuda(at::Tensor& z, at::Tensor& dz);
#endif
