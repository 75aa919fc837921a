// New: the torch-free interface between the ATen wrappers (inplace_abn_cuda.cpp) and the CUDA
// kernels (inplace_abn_kernels.cu), so the .cu compiles without torch headers (much faster).
// License: MIT (this reproduction). Pointers are device pointers; x is contiguous (N, C, S).
// Statistics/weight/bias pointers have the accumulation type (double for kDouble, else float);
// weight/bias may be null (no affine). Every function returns a cudaError_t as int (0 = OK).
#pragma once

#include <cstdint>

namespace iabn {

enum class DType : int { kFloat = 0, kDouble = 1, kHalf = 2, kBFloat16 = 3 };

struct Shape {
  int64_t n, c, s;
};

int mean_var_launch(DType t, const void* x, void* mean, void* var, Shape d, void* stream);
int forward_launch(DType t, void* x, const void* mean, const void* var, const void* weight,
                   const void* bias, double eps, Shape d, void* stream);
int edz_eydz_launch(DType t, const void* z, const void* dz, const void* weight, const void* bias,
                    void* edz, void* eydz, double eps, Shape d, void* stream);
int backward_launch(DType t, const void* z, const void* dz, const void* var, const void* weight,
                    const void* bias, const void* edz, const void* eydz, void* dx, double eps,
                    Shape d, void* stream);
int leaky_relu_forward_launch(DType t, void* x, double slope, int64_t numel, void* stream);
int leaky_relu_backward_launch(DType t, void* z, void* dz, double slope, int64_t numel,
                               void* stream);
int elu_forward_launch(DType t, void* x, int64_t numel, void* stream);
int elu_backward_launch(DType t, void* z, void* dz, int64_t numel, void* stream);
const char* error_string(int code);

}  // namespace iabn
