// The two halves of one attention head group over a KV cache (grouped-query attention: G query heads share
// one K/V head), for keys and values stored f32 or f16 (uint16_t) in rows `ld` elements apart:
//
//   key_scores       s[g][j] = scale * (q[g] . k_j)            q (G, hd), K (n, hd) -> s (G, lds)
//   weighted_values  o[g]    = sum_j p[g][j] v_j               p (G, ldp), V (n, hd) -> o (G, hd)
//
// (softmax between them is softmax_inplace in ops.hpp). Schedule with AVX-512 and hd % 16 == 0:
//
//   key_scores: for block of 16 keys       K block converted to f32 once, in an L1 buffer (16, hd)
//                 for head g               16 accumulators (16 keys x 16 dims), hd / 16 FMAs each, then one
//                                          transposing reduction gives the 16 scores in one vector
//   weighted_values: for head g, for 64-dim chunk: the chunk's accumulators stay in registers over all keys
//
// so no per-key horizontal sum and no per-key call remain. A key's score is the same operation sequence
// whatever its slot in a block (the reduction is symmetric) and whatever n, so a position's attention is the
// same computed alone or in a batch. Other builds and head sizes use the chunked dot/axpy of ops.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "edgespec/core/extent.hpp"
#include "edgespec/kernels/ops.hpp"
#include "edgespec/kernels/quantize.hpp"

namespace edgespec {

namespace detail {

template <class T>
inline constexpr bool kCacheElement = std::is_same_v<T, float> || std::is_same_v<T, std::uint16_t>;

// A cache row (n,) as f32: the row itself, or f16 converted into buf.
[[nodiscard]] inline const float* row_as_f32(const float* row, float*, std::int64_t) noexcept { return row; }
[[nodiscard]] inline const float* row_as_f32(const std::uint16_t* row, float* buf, std::int64_t n) noexcept {
  fp16_to_fp32_row(row, buf, n);
  return buf;
}

#if defined(__AVX512F__)
// 16 values of a cache row as f32
[[nodiscard]] inline __m512 load16(const float* p) noexcept { return _mm512_loadu_ps(p); }
[[nodiscard]] inline __m512 load16(const std::uint16_t* p) noexcept {
  return _mm512_maskz_cvtph_ps(0xffff, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// a[j] (16 vectors) -> one vector whose lane j is the sum of a[j]'s 16 lanes. Every lane is reduced by the
// same tree (halves, then quarters, eighths, pairs), so the result of a[j] does not depend on j.
// (Full-mask maskz forms: GCC 12 warns falsely about the undefined source of the unmasked ones.)
[[nodiscard]] inline __m512 reduce16(__m512* a) noexcept {
  __m512 b[8], c[4], d[2];
  for (int i = 0; i < 8; ++i)  // 128-bit lanes: b[i] = [a_i 0+2, a_i 1+3, a_i+8 0+2, a_i+8 1+3]
    b[i] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(0xffff, a[i], a[i + 8], 0x44), _mm512_maskz_shuffle_f32x4(0xffff, a[i], a[i + 8], 0xEE));
  for (int i = 0; i < 4; ++i)  // c[i] lanes: a_i, a_i+8, a_i+4, a_i+12, 4 partial sums each
    c[i] = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(0xffff, b[i], b[i + 4], 0x88), _mm512_maskz_shuffle_f32x4(0xffff, b[i], b[i + 4], 0xDD));
  for (int i = 0; i < 2; ++i)  // per lane: [c_i, c_i+2, c_i, c_i+2], 2 partial sums each
    d[i] = _mm512_add_ps(_mm512_maskz_unpacklo_ps(0xffff, c[i], c[i + 2]), _mm512_maskz_unpackhi_ps(0xffff, c[i], c[i + 2]));
  // lane L (of 4), element e: the sum of a[{0, 2, 1, 3}[e] + {0, 8, 4, 12}[L]]
  const __m512 e = _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x44), _mm512_shuffle_ps(d[0], d[1], 0xEE));
  const __m512i order = _mm512_setr_epi32(0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15);
  return _mm512_maskz_permutexvar_ps(0xffff, order, e);  // lane j <- the element holding a[j]; order is its own inverse
}
#endif

}  // namespace detail

// s (G, lds): s[g][j] = scale * dot(q[g], k_j) for q (G, hd) contiguous and n keys k_j = k + j * ldk.
// buf: 16 * hd floats of scratch (the converted K block).
template <int kHd = dynamic_extent, class T>
void key_scores(const float* q, int G, const T* k, std::int64_t ldk, std::int64_t n, std::int64_t hd, float scale,
                float* s, std::int64_t lds, float* buf) {
  static_assert(detail::kCacheElement<T>, "key_scores: keys are float or f16 (uint16_t)");
  const Extent<kHd> d(hd);
#if defined(__AVX512F__)
  if (d.value() % 16 == 0) {
    const std::int64_t chunks = d.value() / 16;
    for (std::int64_t j0 = 0; j0 < n; j0 += 16) {
      const int m = static_cast<int>(std::min<std::int64_t>(16, n - j0));
      for (int j = 0; j < 16; ++j) {  // slots past n repeat the last key; their scores are not stored
        const T* row = k + (j0 + std::min(j, m - 1)) * ldk;
        for (std::int64_t c = 0; c < chunks; ++c) _mm512_storeu_ps(buf + j * d.value() + c * 16, detail::load16(row + c * 16));
      }
      for (int g = 0; g < G; ++g) {
        const float* qg = q + g * d.value();
        __m512 acc[16];
        for (auto& a : acc) a = _mm512_setzero_ps();
        for (std::int64_t c = 0; c < chunks; ++c) {
          const __m512 qc = _mm512_loadu_ps(qg + c * 16);
          for (int j = 0; j < 16; ++j) acc[j] = _mm512_fmadd_ps(qc, _mm512_loadu_ps(buf + j * d.value() + c * 16), acc[j]);
        }
        const __m512 r = _mm512_mul_ps(detail::reduce16(acc), _mm512_set1_ps(scale));
        _mm512_mask_storeu_ps(s + g * lds + j0, static_cast<__mmask16>((1u << m) - 1u), r);
      }
    }
    return;
  }
#endif
  for (std::int64_t j = 0; j < n; ++j) {
    const float* kj = detail::row_as_f32(k + j * ldk, buf, d.value());
    for (int g = 0; g < G; ++g) s[g * lds + j] = dot<kHd>(q + g * d.value(), kj, d.value()) * scale;
  }
}

// o (G, hd) = sum_j p[g][j] v_j for p (G, ldp) and n values v_j = v + j * ldv (hd each).
// buf: hd floats of scratch.
template <int kHd = dynamic_extent, class T>
void weighted_values(const float* p, std::int64_t ldp, int G, const T* v, std::int64_t ldv, std::int64_t n,
                     std::int64_t hd, float* o, float* buf) {
  static_assert(detail::kCacheElement<T>, "weighted_values: values are float or f16 (uint16_t)");
  const Extent<kHd> d(hd);
#if defined(__AVX512F__)
  if (d.value() % 16 == 0) {
    for (int g = 0; g < G; ++g) {
      const float* pg = p + g * ldp;
      for (std::int64_t c0 = 0; c0 < d.value(); c0 += 64) {  // up to 4 chunks of 16 dims in registers
        const int chunks = static_cast<int>(std::min<std::int64_t>(4, (d.value() - c0) / 16));
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (std::int64_t j = 0; j < n; ++j) {
          const __m512 pj = _mm512_set1_ps(pg[j]);
          const T* row = v + j * ldv + c0;
          for (int c = 0; c < 4; ++c)
            if (c < chunks) acc[c] = _mm512_fmadd_ps(pj, detail::load16(row + c * 16), acc[c]);
        }
        for (int c = 0; c < chunks; ++c) _mm512_storeu_ps(o + g * d.value() + c0 + c * 16, acc[c]);
      }
    }
    return;
  }
#endif
  std::fill_n(o, G * d.value(), 0.0f);
  for (std::int64_t j = 0; j < n; ++j) {
    const float* vj = detail::row_as_f32(v + j * ldv, buf, d.value());
    for (int g = 0; g < G; ++g) axpy<kHd>(o + g * d.value(), p[g * ldp + j], vj, d.value());
  }
}

}  // namespace edgespec
