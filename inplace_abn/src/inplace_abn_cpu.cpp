// Port of OCNet.pytorch@679a45b inplace_abn/src/inplace_abn_cpu.cpp, for current ATen.
// License: BSD-3-Clause (original InPlace-ABN, Mapillary) / MIT (this reproduction).
// CPU kernels: float, double, half and bfloat16 inputs; sums accumulate in double (through
// vectorisable blocked partial sums, see blocked_sum); statistics are returned in the
// accumulation dtype (double for double inputs, float otherwise).
// Channels are processed in parallel (at::parallel_for); x is a contiguous (N, C, S) block.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

#include "inplace_abn.h"

using at::Tensor;

namespace {

struct Dims {
  int64_t n, c, s;
};

Dims dims_of(const Tensor& x) {
  return {x.size(0), x.size(1), x.numel() / (x.size(0) * x.size(1))};
}

// gamma = |w| + eps, beta = b (1 and 0 without affine)
template <typename acc_t>
inline void affine_of(const acc_t* w, const acc_t* b, int64_t c, double eps, double& gamma,
                      double& beta) {
  gamma = w ? std::abs(static_cast<double>(w[c])) + eps : 1.0;
  beta = b ? static_cast<double>(b[c]) : 0.0;
}

template <typename acc_t>
const acc_t* ptr_or_null(const Tensor& t) {
  return t.numel() ? t.data_ptr<acc_t>() : nullptr;
}

// sum_{i < len} term(i), returned in double. Throughput-bound, not latency-bound: kLanes
// independent partial sums in the op-math type (float for float/half/bfloat16 inputs, double for
// double) that the compiler keeps in vector registers, folded into a double every kBlock terms, so
// each float partial sum adds at most kBlock / kLanes terms before it is widened.
constexpr int kLanes = 8;
constexpr int64_t kBlock = 512;

template <typename acc_t, typename Term>
inline double blocked_sum(int64_t len, const Term& term) {
  double total = 0;
  for (int64_t start = 0; start < len; start += kBlock) {
    const int64_t end = std::min(len, start + kBlock);
    acc_t acc[kLanes] = {};
    int64_t i = start;
    for (; i + kLanes <= end; i += kLanes)
      for (int j = 0; j < kLanes; ++j) acc[j] += term(i + j);
    double block = 0;
    for (; i < end; ++i) block += static_cast<double>(term(i));
    for (int j = 0; j < kLanes; ++j) block += static_cast<double>(acc[j]);
    total += block;
  }
  return total;
}

}  // namespace

std::tuple<Tensor, Tensor> mean_var_cpu(const Tensor& x) {
  const Dims d = dims_of(x);
  auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  Tensor mean = at::empty({d.c}, x.options().dtype(acc));
  Tensor var = at::empty({d.c}, x.options().dtype(acc));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "mean_var_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* px = x.data_ptr<scalar_t>();
    acc_t* pm = mean.data_ptr<acc_t>();
    acc_t* pv = var.data_ptr<acc_t>();
    at::parallel_for(0, d.c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        double sum = 0, sq = 0;
        for (int64_t n = 0; n < d.n; ++n) {
          const scalar_t* p = px + (n * d.c + c) * d.s;
          sum += blocked_sum<acc_t>(d.s, [p](int64_t s) { return static_cast<acc_t>(p[s]); });
        }
        const double m = sum / static_cast<double>(d.n * d.s);
        const acc_t ma = static_cast<acc_t>(m);
        for (int64_t n = 0; n < d.n; ++n) {  // second pass: sum of squared deviations
          const scalar_t* p = px + (n * d.c + c) * d.s;
          sq += blocked_sum<acc_t>(d.s, [p, ma](int64_t s) {
            const acc_t v = static_cast<acc_t>(p[s]) - ma;
            return v * v;
          });
        }
        pm[c] = static_cast<acc_t>(m);
        pv[c] = static_cast<acc_t>(sq / static_cast<double>(d.n * d.s));
      }
    });
  });
  return std::make_tuple(mean, var);
}

Tensor forward_cpu(Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                   const Tensor& bias, bool affine, double eps) {
  const Dims d = dims_of(x);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    scalar_t* px = x.data_ptr<scalar_t>();
    const acc_t *pm = mean.data_ptr<acc_t>(), *pv = var.data_ptr<acc_t>();
    const acc_t *pw = affine ? ptr_or_null<acc_t>(weight) : nullptr;
    const acc_t *pb = affine ? ptr_or_null<acc_t>(bias) : nullptr;
    at::parallel_for(0, d.c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        double gamma, beta;
        affine_of(pw, pb, c, eps, gamma, beta);
        const acc_t scale = static_cast<acc_t>(gamma / std::sqrt(static_cast<double>(pv[c]) + eps));
        const acc_t m = pm[c], b = static_cast<acc_t>(beta);
        for (int64_t n = 0; n < d.n; ++n) {
          scalar_t* p = px + (n * d.c + c) * d.s;
          for (int64_t s = 0; s < d.s; ++s)
            p[s] = static_cast<scalar_t>((static_cast<acc_t>(p[s]) - m) * scale + b);
        }
      }
    });
  });
  return x;
}

std::tuple<Tensor, Tensor> edz_eydz_cpu(const Tensor& z, const Tensor& dz, const Tensor& weight,
                                        const Tensor& bias, bool affine, double eps) {
  const Dims d = dims_of(z);
  auto acc = z.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  Tensor edz = at::empty({d.c}, z.options().dtype(acc));
  Tensor eydz = at::empty({d.c}, z.options().dtype(acc));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "edz_eydz_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t *pz = z.data_ptr<scalar_t>(), *pdz = dz.data_ptr<scalar_t>();
    const acc_t *pw = affine ? ptr_or_null<acc_t>(weight) : nullptr;
    const acc_t *pb = affine ? ptr_or_null<acc_t>(bias) : nullptr;
    acc_t *pe = edz.data_ptr<acc_t>(), *pey = eydz.data_ptr<acc_t>();
    at::parallel_for(0, d.c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        double gamma, beta, se = 0, sey = 0;
        affine_of(pw, pb, c, eps, gamma, beta);
        const acc_t b = static_cast<acc_t>(beta), inv_gamma = static_cast<acc_t>(1.0 / gamma);
        for (int64_t n = 0; n < d.n; ++n) {
          const scalar_t* z = pz + (n * d.c + c) * d.s;
          const scalar_t* g = pdz + (n * d.c + c) * d.s;
          se += blocked_sum<acc_t>(d.s, [g](int64_t s) { return static_cast<acc_t>(g[s]); });
          sey += blocked_sum<acc_t>(d.s, [z, g, b, inv_gamma](int64_t s) {  // y_hat * dz
            return (static_cast<acc_t>(z[s]) - b) * inv_gamma * static_cast<acc_t>(g[s]);
          });
        }
        pe[c] = static_cast<acc_t>(se);
        pey[c] = static_cast<acc_t>(sey);
      }
    });
  });
  return std::make_tuple(edz, eydz);
}

Tensor backward_cpu(const Tensor& z, const Tensor& dz, const Tensor& var, const Tensor& weight,
                    const Tensor& bias, const Tensor& edz, const Tensor& eydz, bool affine,
                    double eps) {
  const Dims d = dims_of(z);
  Tensor dx = at::empty_like(z);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, z.scalar_type(), "backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t *pz = z.data_ptr<scalar_t>(), *pdz = dz.data_ptr<scalar_t>();
    scalar_t* pdx = dx.data_ptr<scalar_t>();
    const acc_t* pv = var.data_ptr<acc_t>();
    const acc_t *pe = edz.data_ptr<acc_t>(), *pey = eydz.data_ptr<acc_t>();
    const acc_t *pw = affine ? ptr_or_null<acc_t>(weight) : nullptr;
    const acc_t *pb = affine ? ptr_or_null<acc_t>(bias) : nullptr;
    const double count = static_cast<double>(d.n * d.s);
    at::parallel_for(0, d.c, 1, [&](int64_t begin, int64_t end) {
      for (int64_t c = begin; c < end; ++c) {
        double gamma, beta;
        affine_of(pw, pb, c, eps, gamma, beta);
        const double inv_std = 1.0 / std::sqrt(static_cast<double>(pv[c]) + eps);
        const acc_t mult = static_cast<acc_t>(gamma * inv_std);
        const acc_t me = static_cast<acc_t>(pe[c] / count);
        const acc_t mey = static_cast<acc_t>(pey[c] / count);
        const acc_t inv_gamma = static_cast<acc_t>(1.0 / gamma), b = static_cast<acc_t>(beta);
        for (int64_t n = 0; n < d.n; ++n) {
          const int64_t off = (n * d.c + c) * d.s;
          for (int64_t s = 0; s < d.s; ++s) {
            const acc_t y = (static_cast<acc_t>(pz[off + s]) - b) * inv_gamma;
            const acc_t g = static_cast<acc_t>(pdz[off + s]);
            pdx[off + s] = static_cast<scalar_t>((g - me - y * mey) * mult);
          }
        }
      }
    });
  });
  return dx;
}

// Element-wise activation kernels (in place), parallel over the flat index.
template <typename F>
static void elementwise(const Tensor& x, F body) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "activation_cpu", [&] {
    body(scalar_t(0));
  });
}

void leaky_relu_forward_cpu(Tensor& x, double slope) {
  elementwise(x, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = at::opmath_type<scalar_t>;
    scalar_t* p = x.data_ptr<scalar_t>();
    at::parallel_for(0, x.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const acc_t v = static_cast<acc_t>(p[i]);
        if (v < 0) p[i] = static_cast<scalar_t>(v * static_cast<acc_t>(slope));
      }
    });
  });
}

void leaky_relu_backward_cpu(Tensor& z, Tensor& dz, double slope) {
  elementwise(z, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = at::opmath_type<scalar_t>;
    scalar_t *pz = z.data_ptr<scalar_t>(), *pdz = dz.data_ptr<scalar_t>();
    const acc_t sl = static_cast<acc_t>(slope);
    at::parallel_for(0, z.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const acc_t v = static_cast<acc_t>(pz[i]);
        if (v < 0) {
          pz[i] = static_cast<scalar_t>(v / sl);
          pdz[i] = static_cast<scalar_t>(static_cast<acc_t>(pdz[i]) * sl);
        }
      }
    });
  });
}

void elu_forward_cpu(Tensor& x) {
  elementwise(x, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = at::opmath_type<scalar_t>;
    scalar_t* p = x.data_ptr<scalar_t>();
    at::parallel_for(0, x.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const acc_t v = static_cast<acc_t>(p[i]);
        if (v < 0) p[i] = static_cast<scalar_t>(std::expm1(v));
      }
    });
  });
}

// Uses the activation output z (not the already-inverted value: the original's CPU bug).
void elu_backward_cpu(Tensor& z, Tensor& dz) {
  elementwise(z, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = at::opmath_type<scalar_t>;
    scalar_t *pz = z.data_ptr<scalar_t>(), *pdz = dz.data_ptr<scalar_t>();
    at::parallel_for(0, z.numel(), 4096, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const acc_t v = static_cast<acc_t>(pz[i]);
        if (v < 0) {
          pdz[i] = static_cast<scalar_t>(static_cast<acc_t>(pdz[i]) * (v + 1));
          pz[i] = static_cast<scalar_t>(std::log1p(v));
        }
      }
    });
  });
}
