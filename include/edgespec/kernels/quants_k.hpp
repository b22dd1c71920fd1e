// K-quant weight rows Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (256-value super-blocks, structs in core/dtype.hpp), and the
// Q8_K activation quantizer llama.cpp's CPU backend uses for products with them.
//
// Bit layouts (v = value index 0..255 in the super-block; all byte arrays as in the structs):
//
//   Q2_K  16 sub-blocks of 16 (sub-block v / 16), q in 0..3
//         scales[j]  low nibble = scale code sc_j, high nibble = min code m_j           (4 bits each)
//         qs         half h = v / 128, shift s = (v % 128) / 32, l = v % 32:  q = (qs[32h + l] >> 2s) & 3
//         x = d * sc_j * q - dmin * m_j
//   Q3_K  16 sub-blocks of 16, q in -4..3
//         scales     16 codes u_j of 6 bits, sc_j = u_j - 32:  low 4 bits of u_j = scales[j] & 15 (j < 8),
//                    scales[j - 8] >> 4 (j >= 8);  high 2 bits = (scales[8 + j % 4] >> 2 (j / 4)) & 3
//         qs         low 2 bits of q + 4, placed as Q2_K's q
//         hmask      bit v / 32 of hmask[v % 32] = bit 2 of q + 4
//         x = d * sc_j * q
//   Q4_K  8 sub-blocks of 32 (sub-block v / 32), q in 0..15
//         scales     8 scale codes sc_j and 8 min codes m_j of 6 bits in 12 bytes:
//                      j < 4:  sc_j = scales[j] & 63,  m_j = scales[j + 4] & 63
//                      j >= 4: sc_j = (scales[j + 4] & 15) | (scales[j - 4] >> 6) << 4,
//                              m_j  = (scales[j + 4] >> 4) | (scales[j] >> 6) << 4
//         qs         g = v / 64: q = qs[32g + v % 32] & 15 for v % 64 < 32 (sub-block 2g), >> 4 above (2g + 1)
//         x = d * sc_j * q - dmin * m_j
//   Q5_K  as Q4_K, q in 0..31: the low 4 bits as Q4_K's q, bit 4 = bit v / 32 of qh[v % 32]
//   Q6_K  16 sub-blocks of 16, q in -32..31, scales[j] an int8 code
//         half h = v / 128, l = v % 32, quarter t = (v % 128) / 32:
//           low 4 bits of q + 32 = ql[64h + 32 (t & 1) + l], low nibble for t < 2, high nibble for t >= 2
//           high 2 bits          = (qh[32h + l] >> 2t) & 3
//         x = d * sc_j * q
//   Q8_K  (activations) x = d * q, d f32, q int8, bsums[j] = sum of q over values 16j .. 16j + 15
//
// d and dmin are f16. The dequantizers compute what llama.cpp's dequantize_row_q*_K compute, in the same order:
// (d * sc) * q - dmin * m. Every product there is exact in f32 (an 11-bit f16 significand times a 4/6-bit code
// times a 2..5-bit q has at most 22 significant bits), so a compiler fusing the subtraction into an FMA
// (GCC's default -ffp-contract=fast) cannot change a result; Q3_K and Q6_K have no subtraction.
//
// The quantizers (quantize_row_q*_K) search each super-block for the codes minimizing the squared error of the
// dequantized values (kernels/quants_k_search.hpp). Weight rows may be at any alignment (memory-mapped tensors):
// blocks are read and written with memcpy.
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/kernels/block_io.hpp"
#include "edgespec/kernels/fp16.hpp"
#include "edgespec/kernels/quants_k_search.hpp"

namespace edgespec {

namespace detail::kquant {

// Q4_K/Q5_K: 12 bytes -> scale codes sc (8,) and min codes m (8,), 0..63.
inline void unpack_scales_k4(const std::uint8_t* s, std::uint8_t* sc, std::uint8_t* m) noexcept {
  for (int j = 0; j < 4; ++j) {
    sc[j] = s[j] & 63;
    m[j] = s[j + 4] & 63;
    sc[j + 4] = static_cast<std::uint8_t>((s[j + 8] & 15) | (s[j] >> 6) << 4);
    m[j + 4] = static_cast<std::uint8_t>((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
  }
}
inline void pack_scales_k4(const std::uint8_t* sc, const std::uint8_t* m, std::uint8_t* s) noexcept {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<std::uint8_t>(sc[j] | (sc[j + 4] >> 4) << 6);
    s[j + 4] = static_cast<std::uint8_t>(m[j] | (m[j + 4] >> 4) << 6);
    s[j + 8] = static_cast<std::uint8_t>((sc[j + 4] & 15) | (m[j + 4] & 15) << 4);
  }
}

// Q3_K: 12 bytes -> signed scales sc (16,), -32..31.
inline void unpack_scales_q3(const std::uint8_t* s, int* sc) noexcept {
  for (int j = 0; j < 16; ++j) {
    const int lo = j < 8 ? s[j] & 15 : s[j - 8] >> 4;
    const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
    sc[j] = (lo | hi << 4) - 32;
  }
}
inline void pack_scales_q3(const int* sc, std::uint8_t* s) noexcept {
  std::memset(s, 0, kKScaleSize);
  for (int j = 0; j < 16; ++j) {
    const int u = sc[j] + 32;
    s[j % 8] = static_cast<std::uint8_t>(s[j % 8] | (u & 15) << (j < 8 ? 0 : 4));
    s[8 + j % 4] = static_cast<std::uint8_t>(s[8 + j % 4] | (u >> 4) << (2 * (j / 4)));
  }
}

// 2-bit fields of 128 values in 32 bytes (Q2_K's qs, Q3_K's low bits): value 32s + l at bits 2s of byte l.
inline void pack_2bit(const std::uint8_t* q, std::uint8_t* qs) noexcept {
  for (int l = 0; l < 32; ++l)
    qs[l] = static_cast<std::uint8_t>((q[l] & 3) | (q[l + 32] & 3) << 2 | (q[l + 64] & 3) << 4 | (q[l + 96] & 3) << 6);
}

// llama.cpp's nearest_int(p): round half to even through the f32 adder (p + 1.5 * 2^23), which for finite
// |p| < 2^22 is nearbyint(p), for NaN the payload bits 0..21 and for +-inf -2^22.
[[nodiscard]] inline int ggml_nearest_int(float p) noexcept {
  if (std::isnan(p)) return static_cast<int>(std::bit_cast<std::uint32_t>(p) & 0x3fffffu);
  if (std::isinf(p)) return -0x400000;
  return static_cast<int>(std::nearbyint(p));
}

inline void check_finite(const char* what, const float* x, std::int64_t k) {
  for (std::int64_t i = 0; i < k; ++i)
    ES_CHECK(std::isfinite(x[i]), what, ": x[", i, "] = ", x[i], " is not finite");
}

// One Q8_K block from x (256,), as llama.cpp's quantize_row_q8_K_ref: d = max / -127 with max the signed value
// of the first largest |x|, q = min(127, nearest_int(x * (-127 / max))), bsums; an all-zero block gets d = 0.
inline void quantize_block_q8_K(const float* x, BlockQ8_K& y) noexcept {
#if defined(__AVX2__)
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 amax8 = _mm256_setzero_ps();
  for (int i = 0; i < kQKK; i += 8)  // maxps returns its second operand when the first is NaN: NaN is skipped
    amax8 = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), amax8);
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  const float amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
  if (amax == 0.0f) {
    std::memset(&y, 0, sizeof y);
    return;
  }
  int first = 0;
  for (int i = 0; i < kQKK; i += 8) {
    const int hit = _mm256_movemask_ps(
        _mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), _mm256_set1_ps(amax), _CMP_EQ_OQ));
    if (hit != 0) {
      first = i + std::countr_zero(static_cast<unsigned>(hit));
      break;
    }
  }
  const float iscale = -127.0f / x[first];
  const __m256 vs = _mm256_set1_ps(iscale);
  const __m256 inf = _mm256_set1_ps(INFINITY);
  for (int i = 0; i < kQKK; i += 32) {
    __m256i r[4];
    for (int k = 0; k < 4; ++k) {
      const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vs);
      const __m256i n = _mm256_cvttps_epi32(_mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      const __m256i finite = _mm256_castps_si256(_mm256_cmp_ps(_mm256_andnot_ps(sign, p), inf, _CMP_LT_OQ));
      const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(p, p, _CMP_UNORD_Q));
      const __m256i payload = _mm256_and_si256(_mm256_castps_si256(p), _mm256_set1_epi32(0x3fffff));
      r[k] = _mm256_or_si256(_mm256_and_si256(finite, n), _mm256_and_si256(nan, payload));
      r[k] = _mm256_min_epi32(r[k], _mm256_set1_epi32(127));  // in -128..127 now (inf lanes are 0)
    }
    __m256i q = _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3]));
    q = _mm256_permutevar8x32_epi32(q, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y.q + i), q);
    // sums of 16: |q + 128| summed per 8 bytes by vpsadbw, minus 8 * 128 per 8 bytes
    const __m256i sad = _mm256_sad_epu8(_mm256_xor_si256(q, _mm256_set1_epi8(-128)), _mm256_setzero_si256());
    alignas(32) std::int64_t s8[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(s8), sad);
    y.bsums[i / 16] = static_cast<std::int16_t>(s8[0] + s8[1] - 16 * 128);
    y.bsums[i / 16 + 1] = static_cast<std::int16_t>(s8[2] + s8[3] - 16 * 128);
  }
  y.d = 1.0f / iscale;
#else
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQKK; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  if (amax == 0.0f) {
    std::memset(&y, 0, sizeof y);
    return;
  }
  const float iscale = -127.0f / max;
  for (int j = 0; j < kQKK; ++j)
    y.q[j] = static_cast<std::int8_t>(std::min(127, ggml_nearest_int(iscale * x[j])));
  for (int j = 0; j < kQKK / 16; ++j) {
    int s = 0;
    for (int i = 0; i < 16; ++i) s += y.q[16 * j + i];
    y.bsums[j] = static_cast<std::int16_t>(s);
  }
  y.d = 1.0f / iscale;
#endif
}

}  // namespace detail::kquant

// ---------------------------------------------------------------- dequantizers: k/256 super-blocks -> y (k,)

inline void dequantize_row_q2_K(const void* src, float* y, std::int64_t k) {
  ES_CHECK(k % kQKK == 0, "dequantize_row_q2_K: row length ", k, " is not a multiple of ", kQKK);
  for (std::int64_t b = 0; b < k / kQKK; ++b, y += kQKK) {
    const auto blk = detail::load_block<BlockQ2_K>(src, b);
    const float d = detail::half_to_float(blk.d), dmin = detail::half_to_float(blk.dmin);
    for (int v0 = 0; v0 < kQKK; v0 += 16) {
      const int j = v0 / 16, h = v0 / 128, s = (v0 % 128) / 32, l0 = v0 % 32;
      const float dl = d * static_cast<float>(blk.scales[j] & 15), ml = dmin * static_cast<float>(blk.scales[j] >> 4);
      for (int l = 0; l < 16; ++l)
        y[v0 + l] = dl * static_cast<float>((blk.qs[32 * h + l0 + l] >> (2 * s)) & 3) - ml;
    }
  }
}

inline void dequantize_row_q3_K(const void* src, float* y, std::int64_t k) {
  ES_CHECK(k % kQKK == 0, "dequantize_row_q3_K: row length ", k, " is not a multiple of ", kQKK);
  for (std::int64_t b = 0; b < k / kQKK; ++b, y += kQKK) {
    const auto blk = detail::load_block<BlockQ3_K>(src, b);
    const float d = detail::half_to_float(blk.d);
    int sc[16];
    detail::kquant::unpack_scales_q3(blk.scales, sc);
    for (int v0 = 0; v0 < kQKK; v0 += 16) {
      const int h = v0 / 128, s = (v0 % 128) / 32, l0 = v0 % 32;
      const float dl = d * static_cast<float>(sc[v0 / 16]);
      for (int l = 0; l < 16; ++l) {
        const int v = v0 + l;
        const int low = (blk.qs[32 * h + l0 + l] >> (2 * s)) & 3;
        const int high = (blk.hmask[v % 32] >> (v / 32)) & 1;
        y[v] = dl * static_cast<float>(low - (high != 0 ? 0 : 4));
      }
    }
  }
}

inline void dequantize_row_q4_K(const void* src, float* y, std::int64_t k) {
  ES_CHECK(k % kQKK == 0, "dequantize_row_q4_K: row length ", k, " is not a multiple of ", kQKK);
  for (std::int64_t b = 0; b < k / kQKK; ++b, y += kQKK) {
    const auto blk = detail::load_block<BlockQ4_K>(src, b);
    const float d = detail::half_to_float(blk.d), dmin = detail::half_to_float(blk.dmin);
    std::uint8_t sc[8], m[8];
    detail::kquant::unpack_scales_k4(blk.scales, sc, m);
    for (int j = 0; j < 8; ++j) {
      const float dl = d * static_cast<float>(sc[j]), ml = dmin * static_cast<float>(m[j]);
      const int shift = 4 * (j & 1);
      for (int l = 0; l < 32; ++l)
        y[32 * j + l] = dl * static_cast<float>((blk.qs[32 * (j / 2) + l] >> shift) & 15) - ml;
    }
  }
}

inline void dequantize_row_q5_K(const void* src, float* y, std::int64_t k) {
  ES_CHECK(k % kQKK == 0, "dequantize_row_q5_K: row length ", k, " is not a multiple of ", kQKK);
  for (std::int64_t b = 0; b < k / kQKK; ++b, y += kQKK) {
    const auto blk = detail::load_block<BlockQ5_K>(src, b);
    const float d = detail::half_to_float(blk.d), dmin = detail::half_to_float(blk.dmin);
    std::uint8_t sc[8], m[8];
    detail::kquant::unpack_scales_k4(blk.scales, sc, m);
    for (int j = 0; j < 8; ++j) {
      const float dl = d * static_cast<float>(sc[j]), ml = dmin * static_cast<float>(m[j]);
      const int shift = 4 * (j & 1);
      for (int l = 0; l < 32; ++l) {
        const int q = ((blk.qs[32 * (j / 2) + l] >> shift) & 15) | ((blk.qh[l] >> j) & 1) << 4;
        y[32 * j + l] = dl * static_cast<float>(q) - ml;
      }
    }
  }
}

inline void dequantize_row_q6_K(const void* src, float* y, std::int64_t k) {
  ES_CHECK(k % kQKK == 0, "dequantize_row_q6_K: row length ", k, " is not a multiple of ", kQKK);
  for (std::int64_t b = 0; b < k / kQKK; ++b, y += kQKK) {
    const auto blk = detail::load_block<BlockQ6_K>(src, b);
    const float d = detail::half_to_float(blk.d);
    for (int v = 0; v < kQKK; ++v) {
      const int h = v / 128, t = (v % 128) / 32, l = v % 32;
      const int low = (blk.ql[64 * h + 32 * (t & 1) + l] >> (4 * (t >> 1))) & 15;
      const int high = (blk.qh[32 * h + l] >> (2 * t)) & 3;
      y[v] = d * static_cast<float>(blk.scales[v / 16]) * static_cast<float>((low | high << 4) - 32);
    }
  }
}

// ---------------------------------------------------------------- quantizers: x (k,) -> k/256 super-blocks

inline void quantize_row_q2_K(const float* x, void* dst, std::int64_t k) {
  ES_CHECK(k % kQKK == 0, "quantize_row_q2_K: row length ", k, " is not a multiple of ", kQKK);
  detail::kquant::check_finite("quantize_row_q2_K", x, k);
  for (std::int64_t b = 0; b < k / kQKK; ++b, x += kQKK) {
    const detail::kquant::AffineCodes c = detail::kquant::quantize_affine<16, 3, 15>(x, "q2_K");
    BlockQ2_K blk;
    for (int j = 0; j < 16; ++j) blk.scales[j] = static_cast<std::uint8_t>(c.sc[j] | c.m[j] << 4);
    detail::kquant::pack_2bit(c.q, blk.qs);
    detail::kquant::pack_2bit(c.q + 128, blk.qs + 32);
    blk.d = c.d;
    blk.dmin = c.dmin;
    detail::store_block(dst, b, blk);
  }
}

inline void quantize_row_q3_K(const float* x, void* dst, std::int64_t k) {
  ES_CHECK(k % kQKK == 0, "quantize_row_q3_K: row length ", k, " is not a multiple of ", kQKK);
  detail::kquant::check_finite("quantize_row_q3_K", x, k);
  for (std::int64_t b = 0; b < k / kQKK; ++b, x += kQKK) {
    const detail::kquant::SymmetricCodes c = detail::kquant::quantize_symmetric<-4, 3, -32, 31>(x, "q3_K");
    BlockQ3_K blk;
    std::uint8_t u[kQKK];  // q + 4
    std::memset(blk.hmask, 0, sizeof blk.hmask);
    for (int v = 0; v < kQKK; ++v) {
      u[v] = static_cast<std::uint8_t>(c.q[v] + 4);
      blk.hmask[v % 32] = static_cast<std::uint8_t>(blk.hmask[v % 32] | (u[v] >> 2) << (v / 32));
    }
    detail::kquant::pack_2bit(u, blk.qs);
    detail::kquant::pack_2bit(u + 128, blk.qs + 32);
    detail::kquant::pack_scales_q3(c.sc, blk.scales);
    blk.d = c.d;
    detail::store_block(dst, b, blk);
  }
}

inline void quantize_row_q4_K(const float* x, void* dst, std::int64_t k) {
  ES_CHECK(k % kQKK == 0, "quantize_row_q4_K: row length ", k, " is not a multiple of ", kQKK);
  detail::kquant::check_finite("quantize_row_q4_K", x, k);
  for (std::int64_t b = 0; b < k / kQKK; ++b, x += kQKK) {
    const detail::kquant::AffineCodes c = detail::kquant::quantize_affine<32, 15, 63>(x, "q4_K");
    BlockQ4_K blk;
    detail::kquant::pack_scales_k4(c.sc, c.m, blk.scales);
    for (int g = 0; g < 4; ++g)
      for (int l = 0; l < 32; ++l)
        blk.qs[32 * g + l] = static_cast<std::uint8_t>(c.q[64 * g + l] | c.q[64 * g + 32 + l] << 4);
    blk.d = c.d;
    blk.dmin = c.dmin;
    detail::store_block(dst, b, blk);
  }
}

inline void quantize_row_q5_K(const float* x, void* dst, std::int64_t k) {
  ES_CHECK(k % kQKK == 0, "quantize_row_q5_K: row length ", k, " is not a multiple of ", kQKK);
  detail::kquant::check_finite("quantize_row_q5_K", x, k);
  for (std::int64_t b = 0; b < k / kQKK; ++b, x += kQKK) {
    const detail::kquant::AffineCodes c = detail::kquant::quantize_affine<32, 31, 63>(x, "q5_K");
    BlockQ5_K blk;
    detail::kquant::pack_scales_k4(c.sc, c.m, blk.scales);
    std::memset(blk.qh, 0, sizeof blk.qh);
    for (int g = 0; g < 4; ++g)
      for (int l = 0; l < 32; ++l)
        blk.qs[32 * g + l] = static_cast<std::uint8_t>((c.q[64 * g + l] & 15) | (c.q[64 * g + 32 + l] & 15) << 4);
    for (int v = 0; v < kQKK; ++v)
      blk.qh[v % 32] = static_cast<std::uint8_t>(blk.qh[v % 32] | (c.q[v] >> 4) << (v / 32));
    blk.d = c.d;
    blk.dmin = c.dmin;
    detail::store_block(dst, b, blk);
  }
}

inline void quantize_row_q6_K(const float* x, void* dst, std::int64_t k) {
  ES_CHECK(k % kQKK == 0, "quantize_row_q6_K: row length ", k, " is not a multiple of ", kQKK);
  detail::kquant::check_finite("quantize_row_q6_K", x, k);
  for (std::int64_t b = 0; b < k / kQKK; ++b, x += kQKK) {
    const detail::kquant::SymmetricCodes c = detail::kquant::quantize_symmetric<-32, 31, -128, 127>(x, "q6_K");
    BlockQ6_K blk;
    std::memset(blk.ql, 0, sizeof blk.ql);
    std::memset(blk.qh, 0, sizeof blk.qh);
    for (int v = 0; v < kQKK; ++v) {
      const int u = c.q[v] + 32, h = v / 128, t = (v % 128) / 32, l = v % 32;
      std::uint8_t& lo = blk.ql[64 * h + 32 * (t & 1) + l];
      lo = static_cast<std::uint8_t>(lo | (u & 15) << (4 * (t >> 1)));
      blk.qh[32 * h + l] = static_cast<std::uint8_t>(blk.qh[32 * h + l] | (u >> 4) << (2 * t));
    }
    for (int j = 0; j < 16; ++j) blk.scales[j] = static_cast<std::int8_t>(c.sc[j]);
    blk.d = c.d;
    detail::store_block(dst, b, blk);
  }
}

// Activations: x (k,) f32 -> k/256 Q8_K blocks, identical to llama.cpp's CPU quantize_row_q8_K for every input
// (NaN and inf included; an all-zero block also gets zero bsums, which llama.cpp leaves unwritten).
inline void quantize_row_q8_K(const float* x, BlockQ8_K* y, std::int64_t k) {
  ES_CHECK(k % kQKK == 0, "quantize_row_q8_K: row length ", k, " is not a multiple of ", kQKK);
  for (std::int64_t b = 0; b < k / kQKK; ++b) detail::kquant::quantize_block_q8_K(x + b * kQKK, y[b]);
}

}  // namespace edgespec
