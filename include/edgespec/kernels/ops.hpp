// Element-wise and normalisation kernels of a Llama block. Each takes a compile-time extent where a model
// knows its sizes (rmsnorm<4096>(...)); the size argument is checked against it.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

// GCC 12 reports a false -Wmaybe-uninitialized inside Eigen 3.4's AVX-512 exp (an _mm512_undefined operand).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <Eigen/Core>

#include "edgespec/core/error.hpp"
#include "edgespec/core/extent.hpp"

namespace edgespec {

enum class RopeStyle {
  Normal,  // Llama (GGML mode 0): rotate pairs (2i, 2i+1)
  NeoX,    // GPT-NeoX / Qwen (GGML mode 2): rotate pairs (i, i + head_dim/2)
};

namespace detail {
// Eigen vectorizes a dynamic-size unaligned map after peeling scalar elements up to the first aligned address,
// so which elements take the vector path (and, for exp, round differently) would depend on where a buffer
// happens to lie. These kernels instead apply Eigen to fixed 16-float chunks (unrolled, never peeled) and
// a scalar tail chosen by index: every row rounds identically in any buffer, batch shape or thread count.
inline constexpr int kChunk = 16;
using Chunk = Eigen::Array<float, kChunk, 1>;
using ChunkMap = Eigen::Map<Chunk, Eigen::Unaligned>;
using ConstChunkMap = Eigen::Map<const Chunk, Eigen::Unaligned>;
[[nodiscard]] constexpr std::int64_t chunked_end(std::int64_t n) noexcept { return n - n % kChunk; }
}  // namespace detail

// out (n,) = x (n,) / sqrt(mean(x^2) + eps) * w (n,)      (out may alias x)
// The sum of squares is accumulated in double, as GGML does.
template <int kN = dynamic_extent>
void rmsnorm(float* out, const float* x, const float* w, std::int64_t n, float eps) {
  const Extent<kN> len(n);
  const std::int64_t m = detail::chunked_end(len.value());
  Eigen::Array<double, detail::kChunk, 1> acc = Eigen::Array<double, detail::kChunk, 1>::Zero();
  for (std::int64_t i = 0; i < m; i += detail::kChunk) {
    const detail::ConstChunkMap c(x + i);
    acc += (c * c).cast<double>();
  }
  double sum_sq = acc.sum();
  for (std::int64_t i = m; i < len.value(); ++i) sum_sq += static_cast<double>(x[i] * x[i]);
  const float scale = 1.0f / std::sqrt(static_cast<float>(sum_sq / static_cast<double>(len.value())) + eps);
  for (std::int64_t i = 0; i < m; i += detail::kChunk)
    detail::ChunkMap(out + i) = detail::ConstChunkMap(x + i) * scale * detail::ConstChunkMap(w + i);
  for (std::int64_t i = m; i < len.value(); ++i) out[i] = x[i] * scale * w[i];
}

// v (n_heads, head_dim) rotated in place by position pos; inv_freq (head_dim/2,):
//   theta_i = pos * inv_freq[i] (f32), (a, b) <- (a cos - b sin, a sin + b cos)
//   Normal: (a, b) = (v[2i], v[2i+1])     NeoX: (a, b) = (v[i], v[i + head_dim/2])
template <int kHeadDim = dynamic_extent>
void rope_inplace(float* v, int n_heads, int head_dim, int pos, const float* inv_freq, RopeStyle style) {
  const Extent<kHeadDim> hd(head_dim);
  ES_CHECK(hd.value() % 2 == 0, "rope_inplace: head_dim must be even (got ", head_dim, ")");
  const std::int64_t half = hd.value() / 2;
  constexpr int kChunk = 64;  // cos/sin computed once per chunk of pairs, applied to every head
  float c[kChunk], s[kChunk];
  for (std::int64_t i0 = 0; i0 < half; i0 += kChunk) {
    const std::int64_t m = std::min<std::int64_t>(kChunk, half - i0);
    for (std::int64_t i = 0; i < m; ++i) {
      const float theta = static_cast<float>(pos) * inv_freq[i0 + i];
      c[i] = std::cos(theta);
      s[i] = std::sin(theta);
    }
    for (int h = 0; h < n_heads; ++h) {
      float* vh = v + h * hd.value();
      for (std::int64_t i = 0; i < m; ++i) {
        const std::int64_t ia = style == RopeStyle::Normal ? 2 * (i0 + i) : i0 + i;
        const std::int64_t ib = style == RopeStyle::Normal ? ia + 1 : ia + half;
        const float a = vh[ia], b = vh[ib];
        vh[ia] = a * c[i] - b * s[i];
        vh[ib] = a * s[i] + b * c[i];
      }
    }
  }
}

// x (n,) <- exp(x - max x) / sum exp(x - max x); -inf entries become 0 (n >= 1, not all -inf)
template <int kN = dynamic_extent>
void softmax_inplace(float* x, std::int64_t n) {
  const Extent<kN> len(n);
  const std::int64_t m = detail::chunked_end(len.value());
  float mx = -std::numeric_limits<float>::infinity();
  for (std::int64_t i = 0; i < len.value(); ++i) mx = std::max(mx, x[i]);
  Eigen::Array<double, detail::kChunk, 1> acc = Eigen::Array<double, detail::kChunk, 1>::Zero();
  for (std::int64_t i = 0; i < m; i += detail::kChunk) {
    detail::ChunkMap c(x + i);
    // exact zeros for -inf (SSE Eigen's exp clamps its input and would return a tiny positive value)
    c = (c == -std::numeric_limits<float>::infinity()).select(0.0f, (c - mx).exp());
    acc += c.cast<double>();
  }
  double sum = acc.sum();
  for (std::int64_t i = m; i < len.value(); ++i) sum += x[i] = std::exp(x[i] - mx);
  const auto inv = static_cast<float>(1.0 / sum);
  for (std::int64_t i = 0; i < len.value(); ++i) x[i] *= inv;
}

// gate (n,) <- silu(gate) * up (n,),  silu(g) = g / (1 + exp(-g))
template <int kN = dynamic_extent>
void swiglu(float* gate_inout, const float* up, std::int64_t n) {
  const Extent<kN> len(n);
  const std::int64_t m = detail::chunked_end(len.value());
  for (std::int64_t i = 0; i < m; i += detail::kChunk) {
    detail::ChunkMap g(gate_inout + i);
    g = g / (1.0f + (-g).exp()) * detail::ConstChunkMap(up + i);
  }
  for (std::int64_t i = m; i < len.value(); ++i) {
    const float g = gate_inout[i];
    gate_inout[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

// sum_i a[i] b[i] over (n,): 16 lane sums over the 16-float chunks, then the lanes, then the tail in order
template <int kN = dynamic_extent>
[[nodiscard]] float dot(const float* a, const float* b, std::int64_t n) {
  const Extent<kN> len(n);
  const std::int64_t m = detail::chunked_end(len.value());
  detail::Chunk acc = detail::Chunk::Zero();
  for (std::int64_t i = 0; i < m; i += detail::kChunk)
    acc += detail::ConstChunkMap(a + i) * detail::ConstChunkMap(b + i);
  float sum = acc.sum();
  for (std::int64_t i = m; i < len.value(); ++i) sum += a[i] * b[i];
  return sum;
}

// y (n,) += alpha * x (n,)      (one product and one sum per element: the same in any order)
template <int kN = dynamic_extent>
void axpy(float* y, float alpha, const float* x, std::int64_t n) {
  const Extent<kN> len(n);
  const std::int64_t m = detail::chunked_end(len.value());
  for (std::int64_t i = 0; i < m; i += detail::kChunk) detail::ChunkMap(y + i) += alpha * detail::ConstChunkMap(x + i);
  for (std::int64_t i = m; i < len.value(); ++i) y[i] += alpha * x[i];
}

// x (n,) += y (n,)      (exact in any order: one rounding per element)
template <int kN = dynamic_extent>
void add_inplace(float* x, const float* y, std::int64_t n) {
  const Extent<kN> len(n);
  for (std::int64_t i = 0; i < len.value(); ++i) x[i] += y[i];
}

// index of the largest of x (n,), the first one on ties; n >= 1
template <int kN = dynamic_extent>
[[nodiscard]] std::int64_t argmax(const float* x, std::int64_t n) {
  const Extent<kN> len(n);
  ES_CHECK(len.value() >= 1, "argmax: empty input");
  std::int64_t best = 0;
  for (std::int64_t i = 1; i < len.value(); ++i)
    if (x[i] > x[best]) best = i;
  return best;
}

}  // namespace edgespec

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
