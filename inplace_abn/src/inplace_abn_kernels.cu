// Port of OCNet.pytorch@679a45b inplace_abn/src/inplace_abn_cuda.cu + common.h (kernels only).
// License: BSD-3-Clause (original InPlace-ABN, Mapillary) / MIT (this reproduction).
// No torch headers here (see cuda_launch.h). One thread block per channel for the reductions
// (warp shuffles, then shared memory across warps), as in the original; float/double/half/
// bfloat16 storage, accumulation in float (double for double).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda_launch.h"

namespace {

constexpr int kMaxThreads = 512;

__device__ __forceinline__ float to_acc(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_acc(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_acc(float v) { return v; }
__device__ __forceinline__ double to_acc(double v) { return v; }

template <typename T>
__device__ __forceinline__ T from_acc(float v);
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) { return __float2half(v); }
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}
template <>
__device__ __forceinline__ float from_acc<float>(float v) { return v; }

template <typename T, typename A>
__device__ __forceinline__ T store(A v) { return from_acc<T>(v); }
template <>
__device__ __forceinline__ double store<double, double>(double v) { return v; }

// Threads per block: the smallest power of two >= the spatial size, between 32 and 512.
int num_threads(int64_t s) {
  int t = 32;
  while (t < kMaxThreads && t < s) t *= 2;
  return t;
}

template <typename A>
__device__ __forceinline__ A warp_sum(A v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// Sum over the block, returned to every thread.
template <typename A>
__device__ A block_sum(A v) {
  __shared__ A shared[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  v = warp_sum(v);
  __syncthreads();  // shared[] may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  const int warps = (blockDim.x + 31) / 32;
  v = (lane < warps) ? shared[lane] : A(0);
  v = warp_sum(v);
  return v;
}

template <typename A>
__device__ __forceinline__ void gamma_beta(const A* w, const A* b, int64_t c, A eps, A& gamma,
                                           A& beta) {
  gamma = w ? (w[c] < A(0) ? -w[c] : w[c]) + eps : A(1);
  beta = b ? b[c] : A(0);
}

template <typename T, typename A>
__global__ void mean_var_kernel(const T* x, A* mean, A* var, iabn::Shape d) {
  const int64_t c = blockIdx.x;
  A sum = 0;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t s = threadIdx.x; s < d.s; s += blockDim.x)
      sum += to_acc(x[(n * d.c + c) * d.s + s]);
  const A m = block_sum(sum) / A(d.n * d.s);
  A sq = 0;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t s = threadIdx.x; s < d.s; s += blockDim.x) {
      const A v = to_acc(x[(n * d.c + c) * d.s + s]) - m;
      sq += v * v;
    }
  sq = block_sum(sq);
  if (threadIdx.x == 0) {
    mean[c] = m;
    var[c] = sq / A(d.n * d.s);
  }
}

template <typename T, typename A>
__global__ void forward_kernel(T* x, const A* mean, const A* var, const A* w, const A* b, A eps,
                               iabn::Shape d) {
  const int64_t c = blockIdx.x;
  A gamma, beta;
  gamma_beta(w, b, c, eps, gamma, beta);
  const A scale = gamma / sqrt(var[c] + eps), m = mean[c];
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t s = threadIdx.x; s < d.s; s += blockDim.x) {
      T* p = x + (n * d.c + c) * d.s + s;
      *p = store<T, A>((to_acc(*p) - m) * scale + beta);
    }
}

template <typename T, typename A>
__global__ void edz_eydz_kernel(const T* z, const T* dz, const A* w, const A* b, A* edz, A* eydz,
                                A eps, iabn::Shape d) {
  const int64_t c = blockIdx.x;
  A gamma, beta;
  gamma_beta(w, b, c, eps, gamma, beta);
  A se = 0, sey = 0;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t s = threadIdx.x; s < d.s; s += blockDim.x) {
      const int64_t i = (n * d.c + c) * d.s + s;
      const A g = to_acc(dz[i]);
      se += g;
      sey += (to_acc(z[i]) - beta) / gamma * g;
    }
  se = block_sum(se);
  sey = block_sum(sey);
  if (threadIdx.x == 0) {
    edz[c] = se;
    eydz[c] = sey;
  }
}

template <typename T, typename A>
__global__ void backward_kernel(const T* z, const T* dz, const A* var, const A* w, const A* b,
                                const A* edz, const A* eydz, T* dx, A eps, iabn::Shape d) {
  const int64_t c = blockIdx.x;
  A gamma, beta;
  gamma_beta(w, b, c, eps, gamma, beta);
  const A mult = gamma / sqrt(var[c] + eps), count = A(d.n * d.s);
  const A me = edz[c] / count, mey = eydz[c] / count;
  for (int64_t n = 0; n < d.n; ++n)
    for (int64_t s = threadIdx.x; s < d.s; s += blockDim.x) {
      const int64_t i = (n * d.c + c) * d.s + s;
      const A y = (to_acc(z[i]) - beta) / gamma;
      dx[i] = store<T, A>((to_acc(dz[i]) - me - y * mey) * mult);
    }
}

__device__ __forceinline__ int64_t first_index() {
  return blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
}
__device__ __forceinline__ int64_t stride() { return int64_t(gridDim.x) * blockDim.x; }

template <typename T, typename A>
__global__ void leaky_relu_forward_kernel(T* x, A slope, int64_t numel) {
  for (int64_t i = first_index(); i < numel; i += stride()) {
    const A v = to_acc(x[i]);
    if (v < 0) x[i] = store<T, A>(v * slope);
  }
}

template <typename T, typename A>
__global__ void leaky_relu_backward_kernel(T* z, T* dz, A slope, int64_t numel) {
  for (int64_t i = first_index(); i < numel; i += stride()) {
    const A v = to_acc(z[i]);
    if (v < 0) {
      z[i] = store<T, A>(v / slope);
      dz[i] = store<T, A>(to_acc(dz[i]) * slope);
    }
  }
}

template <typename T, typename A>
__global__ void elu_forward_kernel(T* x, int64_t numel) {
  for (int64_t i = first_index(); i < numel; i += stride()) {
    const A v = to_acc(x[i]);
    if (v < 0) x[i] = store<T, A>(expm1(v));
  }
}

template <typename T, typename A>
__global__ void elu_backward_kernel(T* z, T* dz, int64_t numel) {
  for (int64_t i = first_index(); i < numel; i += stride()) {
    const A v = to_acc(z[i]);
    if (v < 0) {
      dz[i] = store<T, A>(to_acc(dz[i]) * (v + A(1)));
      z[i] = store<T, A>(log1p(v));
    }
  }
}

// Call F.template operator()<T, A>() for the storage type T and accumulation type A of `t`.
template <typename F>
int dispatch(iabn::DType t, F&& f) {
  switch (t) {
    case iabn::DType::kFloat: f(float(0), float(0)); break;
    case iabn::DType::kDouble: f(double(0), double(0)); break;
    case iabn::DType::kHalf: f(__half(), float(0)); break;
    case iabn::DType::kBFloat16: f(__nv_bfloat16(), float(0)); break;
    default: return int(cudaErrorInvalidValue);
  }
  return int(cudaGetLastError());
}

dim3 flat_grid(int64_t numel) {
  const int64_t blocks = (numel + 255) / 256;
  return dim3(static_cast<unsigned>(blocks < 65535 ? (blocks > 0 ? blocks : 1) : 65535));
}

}  // namespace

namespace iabn {

#define IABN_TYPES using T = decltype(t_); using A = decltype(a_)
#define IABN_STREAM static_cast<cudaStream_t>(stream)

int mean_var_launch(DType t, const void* x, void* mean, void* var, Shape d, void* stream) {
  return dispatch(t, [&](auto t_, auto a_) {
    IABN_TYPES;
    mean_var_kernel<T, A><<<d.c, num_threads(d.s), 0, IABN_STREAM>>>(
        static_cast<const T*>(x), static_cast<A*>(mean), static_cast<A*>(var), d);
  });
}

int forward_launch(DType t, void* x, const void* mean, const void* var, const void* w,
                   const void* b, double eps, Shape d, void* stream) {
  return dispatch(t, [&](auto t_, auto a_) {
    IABN_TYPES;
    forward_kernel<T, A><<<d.c, num_threads(d.s), 0, IABN_STREAM>>>(
        static_cast<T*>(x), static_cast<const A*>(mean), static_cast<const A*>(var),
        static_cast<const A*>(w), static_cast<const A*>(b), A(eps), d);
  });
}

int edz_eydz_launch(DType t, const void* z, const void* dz, const void* w, const void* b,
                    void* edz, void* eydz, double eps, Shape d, void* stream) {
  return dispatch(t, [&](auto t_, auto a_) {
    IABN_TYPES;
    edz_eydz_kernel<T, A><<<d.c, num_threads(d.s), 0, IABN_STREAM>>>(
        static_cast<const T*>(z), static_cast<const T*>(dz), static_cast<const A*>(w),
        static_cast<const A*>(b), static_cast<A*>(edz), static_cast<A*>(eydz), A(eps), d);
  });
}

int backward_launch(DType t, const void* z, const void* dz, const void* var, const void* w,
                    const void* b, const void* edz, const void* eydz, void* dx, double eps,
                    Shape d, void* stream) {
  return dispatch(t, [&](auto t_, auto a_) {
    IABN_TYPES;
    backward_kernel<T, A><<<d.c, num_threads(d.s), 0, IABN_STREAM>>>(
        static_cast<const T*>(z), static_cast<const T*>(dz), static_cast<const A*>(var),
        static_cast<const A*>(w), static_cast<const A*>(b), static_cast<const A*>(edz),
        static_cast<const A*>(eydz), static_cast<T*>(dx), A(eps), d);
  });
}

int leaky_relu_forward_launch(DType t, void* x, double slope, int64_t numel, void* stream) {
  return dispatch(t, [&](auto t_, auto a_) {
    IABN_TYPES;
    leaky_relu_forward_kernel<T, A><<<flat_grid(numel), 256, 0, IABN_STREAM>>>(
        static_cast<T*>(x), A(slope), numel);
  });
}

int leaky_relu_backward_launch(DType t, void* z, void* dz, double slope, int64_t numel,
                               void* stream) {
  return dispatch(t, [&](auto t_, auto a_) {
    IABN_TYPES;
    leaky_relu_backward_kernel<T, A><<<flat_grid(numel), 256, 0, IABN_STREAM>>>(
        static_cast<T*>(z), static_cast<T*>(dz), A(slope), numel);
  });
}

int elu_forward_launch(DType t, void* x, int64_t numel, void* stream) {
  return dispatch(t, [&](auto t_, auto a_) {
    IABN_TYPES;
    elu_forward_kernel<T, A><<<flat_grid(numel), 256, 0, IABN_STREAM>>>(static_cast<T*>(x), numel);
  });
}

int elu_backward_launch(DType t, void* z, void* dz, int64_t numel, void* stream) {
  return dispatch(t, [&](auto t_, auto a_) {
    IABN_TYPES;
    elu_backward_kernel<T, A><<<flat_grid(numel), 256, 0, IABN_STREAM>>>(
        static_cast<T*>(z), static_cast<T*>(dz), numel);
  });
}

const char* error_string(int code) { return cudaGetErrorString(static_cast<cudaError_t>(code)); }

}  // namespace iabn
