// Row conversions between f32 and the weight types.
//
//   quantize_row_q8_0  x (k,) f32 -> k/32 BlockQ8_0   d = amax/127, q = roundf(x/d)           (GGML ref)
//   quantize_row_q4_0  x (k,) f32 -> k/32 BlockQ4_0   d = max/-8 (max: signed value of largest |x|),
//                                                     q = min(15, (int8)(x/d + 8.5))           (GGML ref)
//   dequantize_row     any weight DType row (k,) -> f32 (k,)
//   quantize_row       f32 (k,) -> a row of any weight DType
//   Q4_1, Q5_0, Q5_1, IQ4_NL and the Q8_1 activations: kernels/quants_legacy.hpp; K-quants: kernels/quants_k.hpp
//   fp32_to_fp16_row / fp16_to_fp32_row / fp32_to_bf16_row / bf16_to_fp32_row   (k,) <-> (k,)
//
// The scales are stored as f16, and the quantizers compute q with the unrounded 1/d exactly as GGML does,
// so blocks are bit-identical to GGML's reference quantizers (roundf: halves away from zero).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__) || defined(__F16C__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/kernels/fp16.hpp"
#include "edgespec/kernels/quants_k.hpp"
#include "edgespec/kernels/quants_legacy.hpp"

namespace edgespec {

namespace detail {

// One block of 32 values to Q8_0 in split layout: q (32,) int8 and the f16-rounded scale as f32.
// Returns the scale. Identical to GGML's quantize_row_q8_0_ref for every input.
inline float quantize_block_q8_0(const float* x, std::int8_t* q) noexcept {
#if defined(__AVX2__)
  __m256 v[4];
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  __m256 amax = _mm256_setzero_ps();
  for (int i = 0; i < 4; ++i) {
    v[i] = _mm256_loadu_ps(x + 8 * i);
    amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign_bit, v[i]));
  }
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float d = _mm_cvtss_f32(m4) / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  const __m256 vid = _mm256_set1_ps(id);
  const __m256 half = _mm256_set1_ps(0.5f);
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256i r[4];
  for (int i = 0; i < 4; ++i) {
    // roundf: truncate, then step away from zero when the dropped fraction is >= 0.5
    const __m256 s = _mm256_mul_ps(v[i], vid);
    const __m256 t = _mm256_round_ps(s, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign_bit, _mm256_sub_ps(s, t));
    const __m256 step = _mm256_or_ps(_mm256_and_ps(s, sign_bit), one);
    r[i] = _mm256_cvtps_epi32(_mm256_add_ps(t, _mm256_and_ps(_mm256_cmp_ps(frac, half, _CMP_GE_OQ), step)));
  }
  __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
  p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), p);
  return half_to_float(fp32_to_fp16(d));
#else
  float amax = 0.0f;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127.0f;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < kQK; ++j) q[j] = static_cast<std::int8_t>(std::roundf(x[j] * id));
  return fp16_to_fp32(fp32_to_fp16(d));
#endif
}

}  // namespace detail

// x (k,) -> y (k/32 blocks); k must be a multiple of 32.
inline void quantize_row_q8_0(const float* x, BlockQ8_0* y, std::int64_t k) {
  ES_CHECK(k % kQK == 0, "quantize_row_q8_0: row length ", k, " is not a multiple of ", kQK);
  for (std::int64_t b = 0; b < k / kQK; ++b) {
    std::int8_t q[kQK];
    const float d = detail::quantize_block_q8_0(x + b * kQK, q);
    y[b].d = fp32_to_fp16(d);  // d is already f16-exact
    std::memcpy(y[b].q, q, kQK);
  }
}

// x (k,) -> y (k/32 blocks); k must be a multiple of 32.
inline void quantize_row_q4_0(const float* x, BlockQ4_0* y, std::int64_t k) {
  ES_CHECK(k % kQK == 0, "quantize_row_q4_0: row length ", k, " is not a multiple of ", kQK);
  for (std::int64_t b = 0; b < k / kQK; ++b) {
    const float* xb = x + b * kQK;
    const float d = detail::legacy::signed_absmax(xb, kQK) / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    // x * id rounded on its own before + 8.5 (no FMA), as llama.cpp's reference quantizer computes it
    for (int j = 0; j < kQK / 2; ++j) {
      const int lo = std::min(15, detail::legacy::trunc_i8(detail::legacy::mul_f32(xb[j], id) + 8.5f));
      const int hi = std::min(15, detail::legacy::trunc_i8(detail::legacy::mul_f32(xb[j + kQK / 2], id) + 8.5f));
      y[b].qs[j] = static_cast<std::uint8_t>(lo | hi << 4);
    }
  }
}

// (k,) f32 -> (k,) f16, round to nearest even.
inline void fp32_to_fp16_row(const float* x, std::uint16_t* y, std::int64_t k) noexcept {
  std::int64_t i = 0;
#if defined(__F16C__)
  for (const std::int64_t k8 = k - k % 8; i < k8; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; i < k; ++i) y[i] = fp32_to_fp16(x[i]);
}

// (k,) f16 -> (k,) f32, exact.
inline void fp16_to_fp32_row(const std::uint16_t* x, float* y, std::int64_t k) noexcept {
  std::int64_t i = 0;
#if defined(__F16C__)
  for (const std::int64_t k8 = k - k % 8; i < k8; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
#endif
  for (; i < k; ++i) y[i] = fp16_to_fp32(x[i]);
}

// (k,) f32 -> (k,) bf16, round to nearest even.
inline void fp32_to_bf16_row(const float* x, std::uint16_t* y, std::int64_t k) noexcept {
  for (std::int64_t i = 0; i < k; ++i) y[i] = fp32_to_bf16(x[i]);
}

// (k,) bf16 -> (k,) f32, exact.
inline void bf16_to_fp32_row(const std::uint16_t* x, float* y, std::int64_t k) noexcept {
  for (std::int64_t i = 0; i < k; ++i) y[i] = bf16_to_fp32(x[i]);
}

// One row of k values of type t (row_bytes(t, k) bytes, any alignment) -> y (k,) f32.
inline void dequantize_row(DType t, const void* src, float* y, std::int64_t k) {
  ES_CHECK(k % block_values(t) == 0, "dequantize_row: row length ", k, " is not a multiple of ",
           block_values(t), " for ", name(t));
  const auto* p = static_cast<const unsigned char*>(src);
  switch (t) {
    case DType::F32:
      std::memcpy(y, p, static_cast<std::size_t>(k) * sizeof(float));
      return;
    case DType::F16:
    case DType::BF16:
      for (std::int64_t i = 0; i < k; ++i) {
        std::uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        y[i] = t == DType::F16 ? fp16_to_fp32(h) : bf16_to_fp32(h);
      }
      return;
    case DType::Q8_0:
      for (std::int64_t b = 0; b < k / kQK; ++b) {
        BlockQ8_0 blk;
        std::memcpy(&blk, p + b * sizeof(BlockQ8_0), sizeof blk);
        const float d = fp16_to_fp32(blk.d);
        for (int j = 0; j < kQK; ++j) y[b * kQK + j] = d * static_cast<float>(blk.q[j]);
      }
      return;
    case DType::Q4_0:
      for (std::int64_t b = 0; b < k / kQK; ++b) {
        BlockQ4_0 blk;
        std::memcpy(&blk, p + b * sizeof(BlockQ4_0), sizeof blk);
        const float d = fp16_to_fp32(blk.d);
        for (int j = 0; j < kQK / 2; ++j) {
          y[b * kQK + j] = d * static_cast<float>((blk.qs[j] & 15) - 8);
          y[b * kQK + j + kQK / 2] = d * static_cast<float>((blk.qs[j] >> 4) - 8);
        }
      }
      return;
    case DType::Q4_1: return dequantize_row_q4_1(p, y, k);
    case DType::Q5_0: return dequantize_row_q5_0(p, y, k);
    case DType::Q5_1: return dequantize_row_q5_1(p, y, k);
    case DType::IQ4_NL: return dequantize_row_iq4_nl(p, y, k);
    case DType::Q2_K: return dequantize_row_q2_K(p, y, k);
    case DType::Q3_K: return dequantize_row_q3_K(p, y, k);
    case DType::Q4_K: return dequantize_row_q4_K(p, y, k);
    case DType::Q5_K: return dequantize_row_q5_K(p, y, k);
    case DType::Q6_K: return dequantize_row_q6_K(p, y, k);
    case DType::Q8_1:
    case DType::Q8_K: break;  // activation types only
  }
  throw_error("dequantize_row: unsupported type ", name(t));
}

// x (k,) f32 -> one row of type t (row_bytes(t, k) bytes at dst, any alignment); k a multiple of block_values(t).
// The block types write what llama.cpp's reference quantizers write (Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 byte for byte).
inline void quantize_row(DType t, const float* x, void* dst, std::int64_t k) {
  ES_CHECK(k % block_values(t) == 0, "quantize_row: row length ", k, " is not a multiple of ", block_values(t),
           " for ", name(t));
  switch (t) {
    case DType::F32: std::memcpy(dst, x, static_cast<std::size_t>(k) * sizeof(float)); return;
    case DType::F16:
    case DType::BF16: {
      const auto convert = t == DType::F16 ? fp32_to_fp16_row : fp32_to_bf16_row;
      if (reinterpret_cast<std::uintptr_t>(dst) % alignof(std::uint16_t) == 0)
        return convert(x, static_cast<std::uint16_t*>(dst), k);
      std::uint16_t tmp[256];  // odd address: through an aligned buffer
      for (std::int64_t i = 0; i < k; i += 256) {
        const std::int64_t m = std::min<std::int64_t>(256, k - i);
        convert(x + i, tmp, m);
        std::memcpy(static_cast<unsigned char*>(dst) + 2 * i, tmp, static_cast<std::size_t>(2 * m));
      }
      return;
    }
    case DType::Q8_0:
    case DType::Q4_0: {  // a block at a time through an aligned copy: dst may be at any address
      for (std::int64_t b = 0; b < k / kQK; ++b) {
        if (t == DType::Q8_0) {
          BlockQ8_0 blk;
          quantize_row_q8_0(x + b * kQK, &blk, kQK);
          detail::store_block(dst, b, blk);
        } else {
          BlockQ4_0 blk;
          quantize_row_q4_0(x + b * kQK, &blk, kQK);
          detail::store_block(dst, b, blk);
        }
      }
      return;
    }
    case DType::Q4_1: return quantize_row_q4_1(x, dst, k);
    case DType::Q5_0: return quantize_row_q5_0(x, dst, k);
    case DType::Q5_1: return quantize_row_q5_1(x, dst, k);
    case DType::IQ4_NL: return quantize_row_iq4_nl(x, dst, k);
    case DType::Q2_K: return quantize_row_q2_K(x, dst, k);
    case DType::Q3_K: return quantize_row_q3_K(x, dst, k);
    case DType::Q4_K: return quantize_row_q4_K(x, dst, k);
    case DType::Q5_K: return quantize_row_q5_K(x, dst, k);
    case DType::Q6_K: return quantize_row_q6_K(x, dst, k);
    case DType::Q8_1:
    case DType::Q8_K: break;
  }
  throw_error("quantize_row: ", name(t), " is not a weight type");
}

}  // namespace edgespec
