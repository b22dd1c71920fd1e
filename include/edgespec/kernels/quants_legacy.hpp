// Q4_1, Q5_0, Q5_1 and IQ4_NL weight rows (32-value blocks), and the Q8_0 / Q8_1 activation quantizers
// llama.cpp's CPU backend uses for products with them.
//
// Block layouts (little-endian; d, m, s are IEEE f16; value j = 0..31 of the block):
//
//   Q4_1   20 B  [0,2) d  [2,4) m  [4,20) qs[16]
//                q_j = qs[j] bits 0-3 (j < 16), qs[j-16] bits 4-7 (j >= 16);   x_j = d * q_j + m
//   Q5_0   22 B  [0,2) d  [2,6) qh (u32)  [6,22) qs[16]
//                q_j = nibble_j (as Q4_1) | (bit j of qh) << 4, 0..31;        x_j = d * (q_j - 16)
//   Q5_1   24 B  [0,2) d  [2,4) m  [4,8) qh (u32)  [8,24) qs[16]
//                q_j as Q5_0;                                                  x_j = d * q_j + m
//   IQ4_NL 18 B  [0,2) d  [2,18) qs[16]
//                nibble_j as Q4_1;                                             x_j = d * kIq4nlValues[nibble_j]
//   Q8_1   36 B  [0,2) d  [2,4) s  [4,36) q[32] int8   (activations only)   x_j = d * q_j, s = f16(d' * sum q)
//
// Quantizers (what each writes):
//   Q4_1   min, max of the block; d = (max - min) / 15, q = min(15, trunc((x - min) / d + 0.5))
//   Q5_0   max = the value of largest |x|; d = max / -16, q = min(31, trunc(x / d + 16.5))
//   Q5_1   d = (max - min) / 31, q = trunc((x - min) / d + 0.5)
//          (x / d is x * (1 / d), that product rounded to f32 before the add (no FMA), the sum truncated to int8:
//          llama.cpp's quantize_row_*_ref, the same bytes)
//   IQ4_NL weighted least squares over 16 candidate scales, weights x^2 (llama-quantize's search without an
//          importance matrix, rounded as it is: the same d), then every value to the level nearest x / d for the
//          stored (f16) d (llama.cpp picks the levels for the unrounded d; on SmolLM2's 3.2M blocks this never
//          gave a larger error and lowered it in 0.08% of them)
//   Q8_0 / Q8_1 activations, llama.cpp's x86 AVX/AVX2 quantize_row_q8_0 / _q8_1 (ggml-cpu-quants.c):
//          amax = max |x| (maxps order), d' = amax / 127, q = round_half_even(x * (127 / amax)) through
//          cvtps2dq (NaN / out of range -> INT32_MIN) and saturating packs; d = f16(d'), s = f16(d' * sum of the
//          int32 values before packing). The scalar path reproduces the AVX2 one for every input.
//
// Weight rows may be at any alignment (memory-mapped tensors): blocks are read and written with memcpy.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#if defined(__AVX2__) || defined(__F16C__)
#include <immintrin.h>
#endif

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/kernels/block_io.hpp"
#include "edgespec/kernels/fp16.hpp"

namespace edgespec {

namespace detail::legacy {

// a * b rounded to f32 on its own. llama.cpp's reference quantizers are built without FMA, and their bytes depend
// on this rounding before the following add (weights converted from a quantized checkpoint often land products on
// exact halves). The empty asm makes p an opaque rounded value, so the compiler cannot contract the caller's
// p + c into an FMA (GCC even narrows a double product back to a float one before contracting it).
[[nodiscard]] inline float mul_f32(float a, float b) noexcept {
  float p = a * b;
#if defined(__GNUC__) && defined(__x86_64__)
  __asm__("" : "+x"(p));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(p));
#else
  volatile float v = p;
  p = v;
#endif
  return p;
}

// (int8_t)v as x86 compiles it (cvttss2si, low byte): truncation, 0 for NaN and out-of-range values.
[[nodiscard]] inline int trunc_i8(float v) noexcept {
  if (!(v > -2147483648.0f && v < 2147483648.0f)) return 0;
  return static_cast<std::int8_t>(static_cast<std::int32_t>(v));
}

// The value of largest magnitude in x (n,) (the first of equals; 0 for an empty or all-zero block): the signed
// maximum llama.cpp's symmetric reference quantizers divide by -(2^(bits-1)), so its sign is the scale's.
[[nodiscard]] inline float signed_absmax(const float* x, int n) noexcept {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// 5-bit quants q (32,) -> nibbles qs (16,) and the fifth bits qh (u32): value j in bit j.
inline void pack_q5(const int* q, std::uint8_t* qs, std::uint8_t* qh) noexcept {
  std::uint32_t h = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    qs[j] = static_cast<std::uint8_t>((q[j] & 15) | (q[j + kQK / 2] & 15) << 4);
    h |= static_cast<std::uint32_t>((q[j] >> 4) & 1) << j;
    h |= static_cast<std::uint32_t>((q[j + kQK / 2] >> 4) & 1) << (j + kQK / 2);
  }
  std::memcpy(qh, &h, 4);
}

// nibbles qs (16,) and fifth bits qh -> q (32,) in 0..31 (qh null: 4-bit quants)
inline void unpack_q(const std::uint8_t* qs, const std::uint8_t* qh, int* q) noexcept {
  std::uint32_t h = 0;
  if (qh != nullptr) std::memcpy(&h, qh, 4);
  for (int j = 0; j < kQK / 2; ++j) {
    q[j] = (qs[j] & 15) | static_cast<int>((h >> j) & 1) << 4;
    q[j + kQK / 2] = (qs[j] >> 4) | static_cast<int>((h >> (j + kQK / 2)) & 1) << 4;
  }
}

// min and max of a block as llama.cpp's Q4_1/Q5_1 reference scans them (NaNs never replace either)
inline void min_max(const float* x, float& lo, float& hi) noexcept {
  lo = std::numeric_limits<float>::max();
  hi = -std::numeric_limits<float>::max();
  for (int j = 0; j < kQK; ++j) {
    if (x[j] < lo) lo = x[j];
    if (x[j] > hi) hi = x[j];
  }
}

// Q4_1 / Q5_1 block: d = (max - min) / levels, q = trunc((x - min) * (1 / d) + 0.5) (Q4_1 capped at 15)
inline void quantize_affine(const float* x, int levels, std::uint16_t& d16, std::uint16_t& m16, int* q) noexcept {
  float lo, hi;
  min_max(x, lo, hi);
  const float d = (hi - lo) / static_cast<float>(levels);
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  d16 = fp32_to_fp16(d);
  m16 = fp32_to_fp16(lo);
  for (int j = 0; j < kQK; ++j) {
    const int t = trunc_i8(mul_f32(x[j] - lo, id) + 0.5f);
    q[j] = (levels == 15 && t > 15 ? 15 : t) & 0xff;  // as the uint8_t llama.cpp stores
  }
}

// Index of the IQ4_NL level nearest v (ties to the upper level), by bisection of the sorted table.
[[nodiscard]] inline int nearest_iq4nl(float v) noexcept {
  if (!(v > kIq4nlValues[0])) return 0;  // also NaN
  if (v >= kIq4nlValues[15]) return 15;
  int lo = 0, hi = 15;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (v < kIq4nlValues[mid]) hi = mid;
    else lo = mid;
  }
  return v - kIq4nlValues[lo] < kIq4nlValues[hi] - v ? lo : hi;
}

// f16 bits of f as the x86 F16C converter gives them (round to nearest even; a NaN keeps its sign and the top of
// its payload), which llama.cpp's CPU backend uses for the activation scales.
[[nodiscard]] inline std::uint16_t act_fp16(float f) noexcept {
#if defined(__F16C__)
  return static_cast<std::uint16_t>(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
#else
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return static_cast<std::uint16_t>((x >> 16 & 0x8000u) | 0x7e00u | (x >> 13 & 0x3ffu));
  return fp32_to_fp16(f);
#endif
}

// One activation block as llama.cpp's x86 quantize_row_q8_0 / q8_1 compute it: x (32,) -> q (32,) int8;
// returns d' = amax / 127 (unrounded) and sum = the wrapping int32 sum of the unpacked values.
inline float quantize_block_act(const float* x, std::int8_t* q, std::int32_t& sum) noexcept {
#if defined(__AVX2__)
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  __m256 v[4];
  for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i);
  __m256 m = _mm256_and_ps(v[0], abs_mask);
  for (int i = 1; i < 4; ++i) m = _mm256_max_ps(m, _mm256_and_ps(v[i], abs_mask));  // max_ps: NaN order matters
  __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float amax = _mm_cvtss_f32(m4);
  const __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
  __m256i r[4];
  for (int i = 0; i < 4; ++i)
    r[i] = _mm256_cvtps_epi32(
        _mm256_round_ps(_mm256_mul_ps(v[i], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(r[0], r[1]), _mm256_add_epi32(r[2], r[3]));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
  s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, _MM_SHUFFLE(2, 3, 0, 1)));
  sum = _mm_cvtsi128_si32(s4);
  // packs work per 128-bit lane: the permute restores the order 0..31
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q),
                      _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
  return amax / 127.0f;
#else
  // maxps(a, b) = a > b ? a : b; lane i of the 8-wide pass holds x[i], x[i + 8], x[i + 16], x[i + 24]
  auto maxps = [](float a, float b) { return a > b ? a : b; };
  float m[8];
  for (int i = 0; i < 8; ++i) {
    m[i] = std::fabs(x[i]);
    for (int k = 1; k < 4; ++k) m[i] = maxps(m[i], std::fabs(x[8 * k + i]));
  }
  float m4[4];
  for (int i = 0; i < 4; ++i) m4[i] = maxps(m[4 + i], m[i]);
  const float amax = maxps(maxps(m4[0], m4[2]), maxps(m4[1], m4[3]));
  const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
  std::uint32_t s = 0;
  for (int j = 0; j < kQK; ++j) {
    const float v = std::nearbyint(x[j] * id);  // the default rounding mode: half to even
    const std::int32_t c = v >= -2147483648.0f && v < 2147483648.0f ? static_cast<std::int32_t>(v)
                                                                     : std::numeric_limits<std::int32_t>::min();
    s += static_cast<std::uint32_t>(c);
    q[j] = static_cast<std::int8_t>(c < -128 ? -128 : c > 127 ? 127 : c);
  }
  sum = static_cast<std::int32_t>(s);
  return amax / 127.0f;
#endif
}

}  // namespace detail::legacy

namespace detail {

// One block of 32 activations to Q8_0 as llama.cpp's CPU backend quantizes them (x86 quantize_row_q8_0):
// x (32,) -> q (32,) int8; returns the f16-rounded scale as f32. Identical on every target, for every input.
inline float quantize_block_q8_0_act(const float* x, std::int8_t* q) noexcept {
  std::int32_t sum;
  const float d = legacy::quantize_block_act(x, q, sum);
  return half_to_float(legacy::act_fp16(d));
}

}  // namespace detail

// x (k,) f32 -> k/32 Q4_1 blocks at dst (any alignment); k a multiple of 32. Bytes of quantize_row_q4_1_ref.
inline void quantize_row_q4_1(const float* x, void* dst, std::int64_t k) {
  ES_CHECK(k % kQK == 0, "quantize_row_q4_1: row length ", k, " is not a multiple of ", kQK);
  for (std::int64_t b = 0; b < k / kQK; ++b) {
    BlockQ4_1 blk;
    int q[kQK];
    detail::legacy::quantize_affine(x + b * kQK, 15, blk.d, blk.m, q);
    for (int j = 0; j < kQK / 2; ++j) blk.qs[j] = static_cast<std::uint8_t>(q[j] | (q[j + kQK / 2] << 4 & 0xff));
    detail::store_block(dst, b, blk);
  }
}

// x (k,) f32 -> k/32 Q5_0 blocks at dst (any alignment); k a multiple of 32. Bytes of quantize_row_q5_0_ref.
inline void quantize_row_q5_0(const float* x, void* dst, std::int64_t k) {
  ES_CHECK(k % kQK == 0, "quantize_row_q5_0: row length ", k, " is not a multiple of ", kQK);
  for (std::int64_t b = 0; b < k / kQK; ++b) {
    const float* xb = x + b * kQK;
    const float d = detail::legacy::signed_absmax(xb, kQK) / -16.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ5_0 blk;
    blk.d = fp32_to_fp16(d);
    int q[kQK];
    for (int j = 0; j < kQK; ++j) {
      const int t = detail::legacy::trunc_i8(detail::legacy::mul_f32(xb[j], id) + 16.5f);
      q[j] = (t < 31 ? t : 31) & 0xff;
    }
    detail::legacy::pack_q5(q, blk.qs, blk.qh);
    detail::store_block(dst, b, blk);
  }
}

// x (k,) f32 -> k/32 Q5_1 blocks at dst (any alignment); k a multiple of 32. Bytes of quantize_row_q5_1_ref.
inline void quantize_row_q5_1(const float* x, void* dst, std::int64_t k) {
  ES_CHECK(k % kQK == 0, "quantize_row_q5_1: row length ", k, " is not a multiple of ", kQK);
  for (std::int64_t b = 0; b < k / kQK; ++b) {
    BlockQ5_1 blk;
    int q[kQK];
    detail::legacy::quantize_affine(x + b * kQK, 31, blk.d, blk.m, q);
    detail::legacy::pack_q5(q, blk.qs, blk.qh);
    detail::store_block(dst, b, blk);
  }
}

// x (k,) f32 -> k/32 IQ4_NL blocks at dst (any alignment); k a multiple of 32.
// Per block, with weights w = x^2 and E(d) = sum w (x - d v_l)^2 at the best levels l for 1/d:
//   candidates 1/d in { 127 / max } and { (t - 127) / max : t = -7..7 } (max = the value of largest |x|), each
//   with the least-squares d = sum w v x / sum w v^2 for its levels; the one with the least E wins
//   (llama-quantize's IQ4_NL search without an importance matrix). Then every x takes the level nearest
//   x / d for the f16-rounded d actually stored (llama.cpp picks them for the unrounded d): with the same d, never
//   a larger error.
inline void quantize_row_iq4_nl(const float* x, void* dst, std::int64_t k) {
  ES_CHECK(k % kQK == 0, "quantize_row_iq4_nl: row length ", k, " is not a multiple of ", kQK);
  using detail::legacy::nearest_iq4nl;
  for (std::int64_t b = 0; b < k / kQK; ++b) {
    const float* xb = x + b * kQK;
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      if (std::fabs(xb[j]) > amax) {
        amax = std::fabs(xb[j]);
        max = xb[j];
      }
    }
    float d = 0.0f;
    if (amax >= 1e-15f) {
      // sum w v x and sum w v^2 for the levels nearest id * x, rounded as llama.cpp's (FMA-free) build rounds
      // them: near-ties between candidates then resolve to its d, and the level pass below only lowers the error
      auto fit = [&](float id, float& sqx, float& sq2) {
        sqx = sq2 = 0.0f;
        for (int j = 0; j < kQK; ++j) {
          const float v = kIq4nlValues[nearest_iq4nl(id * xb[j])], wv = xb[j] * xb[j] * v;
          sqx += detail::legacy::mul_f32(wv, xb[j]);
          sq2 += detail::legacy::mul_f32(wv, v);
        }
      };
      float sqx, sq2;
      fit(1.0f / (max / 127.0f), sqx, sq2);
      d = sqx / sq2;
      float best = d * sqx;  // = sqx^2 / sq2: maximizing it minimizes E
      for (int t = -7; t <= 7; ++t) {
        fit(static_cast<float>(t + kIq4nlValues[0]) / max, sqx, sq2);
        if (sq2 > 0.0f && sqx * sqx > best * sq2) {
          d = sqx / sq2;
          best = d * sqx;
        }
      }
    }
    BlockIQ4_NL blk;
    blk.d = fp32_to_fp16(d);
    const float ds = fp16_to_fp32(blk.d);
    const float id = ds != 0.0f && std::isfinite(ds) ? 1.0f / ds : 0.0f;
    for (int j = 0; j < kQK / 2; ++j)
      blk.qs[j] = static_cast<std::uint8_t>(nearest_iq4nl(id * xb[j]) | nearest_iq4nl(id * xb[j + kQK / 2]) << 4);
    detail::store_block(dst, b, blk);
  }
}

// k/32 Q4_1 blocks at src (any alignment) -> y (k,) f32: x = d * q + m (d * q is exact in f32: the same floats
// as llama.cpp's dequantize_row_q4_1 with or without FMA).
inline void dequantize_row_q4_1(const void* src, float* y, std::int64_t k) {
  ES_CHECK(k % kQK == 0, "dequantize_row_q4_1: row length ", k, " is not a multiple of ", kQK);
  for (std::int64_t b = 0; b < k / kQK; ++b) {
    const auto blk = detail::load_block<BlockQ4_1>(src, b);
    const float d = fp16_to_fp32(blk.d), m = fp16_to_fp32(blk.m);
    int q[kQK];
    detail::legacy::unpack_q(blk.qs, nullptr, q);
    for (int j = 0; j < kQK; ++j) y[b * kQK + j] = static_cast<float>(q[j]) * d + m;
  }
}

// k/32 Q5_0 blocks at src (any alignment) -> y (k,) f32: x = d * (q - 16).
inline void dequantize_row_q5_0(const void* src, float* y, std::int64_t k) {
  ES_CHECK(k % kQK == 0, "dequantize_row_q5_0: row length ", k, " is not a multiple of ", kQK);
  for (std::int64_t b = 0; b < k / kQK; ++b) {
    const auto blk = detail::load_block<BlockQ5_0>(src, b);
    const float d = fp16_to_fp32(blk.d);
    int q[kQK];
    detail::legacy::unpack_q(blk.qs, blk.qh, q);
    for (int j = 0; j < kQK; ++j) y[b * kQK + j] = static_cast<float>(q[j] - 16) * d;
  }
}

// k/32 Q5_1 blocks at src (any alignment) -> y (k,) f32: x = d * q + m.
inline void dequantize_row_q5_1(const void* src, float* y, std::int64_t k) {
  ES_CHECK(k % kQK == 0, "dequantize_row_q5_1: row length ", k, " is not a multiple of ", kQK);
  for (std::int64_t b = 0; b < k / kQK; ++b) {
    const auto blk = detail::load_block<BlockQ5_1>(src, b);
    const float d = fp16_to_fp32(blk.d), m = fp16_to_fp32(blk.m);
    int q[kQK];
    detail::legacy::unpack_q(blk.qs, blk.qh, q);
    for (int j = 0; j < kQK; ++j) y[b * kQK + j] = static_cast<float>(q[j]) * d + m;
  }
}

// k/32 IQ4_NL blocks at src (any alignment) -> y (k,) f32: x = d * kIq4nlValues[nibble].
inline void dequantize_row_iq4_nl(const void* src, float* y, std::int64_t k) {
  ES_CHECK(k % kQK == 0, "dequantize_row_iq4_nl: row length ", k, " is not a multiple of ", kQK);
  for (std::int64_t b = 0; b < k / kQK; ++b) {
    const auto blk = detail::load_block<BlockIQ4_NL>(src, b);
    const float d = fp16_to_fp32(blk.d);
    int q[kQK];
    detail::legacy::unpack_q(blk.qs, nullptr, q);
    for (int j = 0; j < kQK; ++j) y[b * kQK + j] = d * static_cast<float>(kIq4nlValues[q[j]]);
  }
}

// Activations: x (k,) f32 -> k/32 Q8_1 blocks, as llama.cpp's CPU quantize_row_q8_1 computes them on x86
// (d = f16(amax / 127), s = f16(amax / 127 * sum q)), identical on every target.
inline void quantize_row_q8_1(const float* x, BlockQ8_1* y, std::int64_t k) {
  ES_CHECK(k % kQK == 0, "quantize_row_q8_1: row length ", k, " is not a multiple of ", kQK);
  for (std::int64_t b = 0; b < k / kQK; ++b) {
    std::int32_t sum;
    const float d = detail::legacy::quantize_block_act(x + b * kQK, y[b].q, sum);
    y[b].d = detail::legacy::act_fp16(d);
    y[b].s = detail::legacy::act_fp16(d * static_cast<float>(sum));
  }
}

}  // namespace edgespec
