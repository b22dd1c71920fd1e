// Dot products of Q4_1, Q5_0, Q5_1 and IQ4_NL weight rows with quantized activations, for kernels/matmul.hpp.
//
//   R rows of W (nb blocks each) . one position's activations -> out (R,)
//
//   Q5_0, IQ4_NL x Q8_0:  sum_b (d_w d_x) * isum_b                     isum_b = sum_j q_j x_j (integer)
//   Q4_1, Q5_1   x Q8_1:  sum_b (d_w d_x) * isum_b  +  sum_b m_w s_x   (s_x = d_x sum_j x_j, stored as f16)
//
// as llama.cpp's ggml_vec_dot_{q5_0,iq4_nl}_q8_0 / {q4_1,q5_1}_q8_1 compute them. Each activation block is loaded
// once for the R rows. AVX2: the integer sums stay in 8 lanes of 4 columns each (vpmaddubsw + vpmaddwd, unsigned
// weights times signed activations), each lane is scaled into an 8-lane f32 accumulator per block (FMA) and the
// lanes are added at the end, the order llama.cpp's AVX2 kernels use (Q4_1, Q5_0, Q5_1 give its floats; IQ4_NL
// differs by summation order: llama.cpp alternates two accumulators). Unsigned weights per type:
//
//   Q4_1   nibble                          Q5_1  nibble | bit << 4
//   Q5_0   nibble | bit << 4, minus 16 sum(x) per lane (once per activation block, shared by the R rows)
//   IQ4_NL |v| with v = kIq4nlValues[nibble] (one vpshufb), the activations taking v's sign
//
// Scalar: per block an int32 sum, then sumf += (d_w d_x) * isum (+ m_w s_x). Every row's operation sequence is
// the same whatever R is, so results do not depend on the tiling, the thread count or the batch.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "edgespec/core/dtype.hpp"
#include "edgespec/kernels/fp16.hpp"
#include "edgespec/kernels/packed.hpp"  // detail::PackedX
#include "edgespec/kernels/quants_legacy.hpp"

namespace edgespec::detail {

namespace legacy {

[[nodiscard]] inline float half_at(const unsigned char* p) noexcept {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

// Byte offsets of the parts of a block: scale, minimum, fifth bits, nibbles (-1: none).
template <DType T>
struct Layout;
template <>
struct Layout<DType::Q4_1> {
  static constexpr int kM = 2, kQh = -1, kQs = 4;
};
template <>
struct Layout<DType::Q5_0> {
  static constexpr int kM = -1, kQh = 2, kQs = 6;
};
template <>
struct Layout<DType::Q5_1> {
  static constexpr int kM = 2, kQh = 4, kQs = 8;
};
template <>
struct Layout<DType::IQ4_NL> {
  static constexpr int kM = -1, kQh = -1, kQs = 2;
};

#if defined(__AVX2__) && defined(__FMA__)
// 16 bytes of nibbles -> 32 bytes 0..15: low nibbles (values 0..15), then high nibbles (16..31)
[[nodiscard]] inline __m256i nibbles(const unsigned char* qs) noexcept {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
}

// qh (u32 at p) -> 32 bytes, 0x10 where bit j is set (byte j)
[[nodiscard]] inline __m256i fifth_bits(const unsigned char* p) noexcept {
  std::int32_t h;
  std::memcpy(&h, p, 4);
  // byte j gets byte j / 8 of qh, then is tested against its own bit 1 << (j % 8)
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(h), _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i bit = _mm256_set1_epi64x(static_cast<std::int64_t>(0x8040201008040201ull));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
}

// u (32,) uint8 (< 128) . s (32,) int8 -> 8 int32, lane i = columns 4i..4i+3
[[nodiscard]] inline __m256i dot_lanes(__m256i u, __m256i s) noexcept {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

[[nodiscard]] inline float hsum8(__m256 v) noexcept {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The unsigned weights of a block and the activations they multiply, as in the table at the top.
template <DType T>
[[nodiscard]] inline __m256i block_dot(const unsigned char* blk, __m256i x, __m256i seed) noexcept {
  using L = Layout<T>;
  __m256i u = nibbles(blk + L::kQs);
  if constexpr (T == DType::IQ4_NL) {
    const __m256i v = _mm256_shuffle_epi8(
        _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues))), u);
    return dot_lanes(_mm256_abs_epi8(v), _mm256_sign_epi8(x, v));
  } else {
    if constexpr (L::kQh >= 0) u = _mm256_or_si256(u, fifth_bits(blk + L::kQh));
    const __m256i dot = dot_lanes(u, x);
    return T == DType::Q5_0 ? _mm256_add_epi32(dot, seed) : dot;
  }
}
#endif

// isum of one block in scalar code
template <DType T>
[[nodiscard]] inline std::int32_t block_isum(const unsigned char* blk, const std::int8_t* x) noexcept {
  using L = Layout<T>;
  int q[kQK];
  unpack_q(blk + L::kQs, L::kQh >= 0 ? blk + L::kQh : nullptr, q);
  std::int32_t s = 0;
  for (int j = 0; j < kQK; ++j) {
    const int w = T == DType::IQ4_NL ? kIq4nlValues[q[j]] : T == DType::Q5_0 ? q[j] - 16 : q[j];
    s += w * x[j];
  }
  return s;
}

// R rows . nb activation blocks; per block b: x_q (32 int8), d_x, s_x (Q8_1 only).
template <DType T, int R, class Act>
inline void dot_rows(const unsigned char* w, std::int64_t ws, std::int64_t nb, Act act, float* out) noexcept {
  constexpr std::int64_t kBlock = block_bytes(T);
  constexpr bool kMin = Layout<T>::kM >= 0;
#if defined(__AVX2__) && defined(__FMA__)
  __m256 acc[R];
  float mins[R];
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    mins[r] = 0.0f;
  }
  for (std::int64_t b = 0; b < nb; ++b) {
    float dx, sx;
    const std::int8_t* xq = act(b, dx, sx);
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
    // Q5_0: -16 sum(x) per lane
    const __m256i seed = T == DType::Q5_0 ? _mm256_sub_epi32(_mm256_setzero_si256(),
                                                             dot_lanes(_mm256_set1_epi8(16), x))
                                          : _mm256_setzero_si256();
    for (int r = 0; r < R; ++r) {
      const unsigned char* blk = w + r * ws + b * kBlock;
      const __m256i dot = block_dot<T>(blk, x, seed);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(half_at(blk) * dx), _mm256_cvtepi32_ps(dot), acc[r]);
      if constexpr (kMin) mins[r] += half_at(blk + Layout<T>::kM) * sx;
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum8(acc[r]) + mins[r];
#else
  float acc[R];
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  for (std::int64_t b = 0; b < nb; ++b) {
    float dx, sx;
    const std::int8_t* xq = act(b, dx, sx);
    for (int r = 0; r < R; ++r) {
      const unsigned char* blk = w + r * ws + b * kBlock;
      float t = half_at(blk) * dx * static_cast<float>(block_isum<T>(blk, xq));
      if constexpr (kMin) t += half_at(blk + Layout<T>::kM) * sx;
      acc[r] += t;
    }
  }
  for (int r = 0; r < R; ++r) out[r] = acc[r];
#endif
}

}  // namespace legacy

// R rows of W (type T = Q5_0 or IQ4_NL; row i at w + i * ws, nb blocks each) . one position's Q8_0 activations
// x (x.q: nb * 32 int8, x.d: nb f16-rounded scales as f32) -> out[0..R).
template <DType T, int R>
inline void dot_rows_q8_0_acts(const unsigned char* w, std::int64_t ws, const PackedX& x, std::int64_t nb,
                               float* out) noexcept {
  static_assert(T == DType::Q5_0 || T == DType::IQ4_NL, "dot_rows_q8_0_acts: weights must be Q5_0 or IQ4_NL");
  legacy::dot_rows<T, R>(w, ws, nb,
                         [&x](std::int64_t b, float& d, float& s) {
                           d = x.d[b];
                           s = 0.0f;
                           return x.q + b * kQK;
                         },
                         out);
}

// R rows of W (type T = Q4_1 or Q5_1) . one position's Q8_1 activations x (nb blocks) -> out[0..R).
template <DType T, int R>
inline void dot_rows_q8_1_acts(const unsigned char* w, std::int64_t ws, const BlockQ8_1* x, std::int64_t nb,
                               float* out) noexcept {
  static_assert(T == DType::Q4_1 || T == DType::Q5_1, "dot_rows_q8_1_acts: weights must be Q4_1 or Q5_1");
  legacy::dot_rows<T, R>(w, ws, nb,
                         [x](std::int64_t b, float& d, float& s) {
                           d = half_to_float(x[b].d);
                           s = half_to_float(x[b].s);
                           return x[b].q;
                         },
                         out);
}

}  // namespace edgespec::detail
