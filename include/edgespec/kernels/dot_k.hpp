// Dot products of K-quant weight rows (Q2_K .. Q6_K) with Q8_K activations, for kernels/matmul.hpp.
//
//   dot_rows_q8_K_acts<T, R>: R rows of W (T) . one position's activations x (nb Q8_K blocks) -> out (R,)
//
// Arithmetic per super-block, as llama.cpp's ggml_vec_dot_q*_K_q8_K: exact integer sums per sub-block j of the
// weight levels q times the activations x_q, weighted by the integer scale codes, and the mins through the
// activations' bsums (sums of 16 x_q); then in float, with the activation scale d_x:
//
//   Q2_K, Q4_K, Q5_K   acc += (d_x d) * sum_j sc_j (q . x_q)_j  -  (d_x dmin) * sum_j m_j bsum_j
//   Q3_K, Q6_K         acc += (d_x d) * [sum_j sc_j (u . x_q)_j  -  o * sum_j sc_j bsum_j]
//
// where the signed levels q = u - o (Q3_K: o = 4, Q6_K: o = 32) are multiplied as unsigned u (vpmaddubsw) and the
// offset comes back through the bsums (llama.cpp's AVX2 code multiplies o by x_q a second time instead). Levels
// are unpacked as in the layout table of kernels/quants_k.hpp.
//
// AVX2: acc is 8 float lanes per row (the 8 int32 lanes of the integer sums converted and FMA'd), summed at the
// end; every row has its own accumulator and the same operation sequence whatever R, so results do not depend
// on the tile shape, the thread count or the batch. Scalar fallback: one integer sum per super-block.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#include "edgespec/core/dtype.hpp"
#include "edgespec/kernels/fp16.hpp"
#include "edgespec/kernels/quants_k.hpp"

namespace edgespec::detail {

namespace kquant {

[[nodiscard]] inline std::uint32_t load_u32(const unsigned char* p) noexcept {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
[[nodiscard]] inline float load_f16(const unsigned char* p) noexcept {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

#if defined(__AVX2__) && defined(__FMA__)

[[nodiscard]] inline __m256i loadu256(const void* p) noexcept {
  return _mm256_loadu_si256(static_cast<const __m256i*>(p));
}
[[nodiscard]] inline __m128i loadu128(const void* p) noexcept {
  return _mm_loadu_si128(static_cast<const __m128i*>(p));
}

// Q4_K/Q5_K: the 12 packed code bytes at s (16 readable) -> 16 bytes {sc_0..7, m_0..7}, 6-bit codes. In u32
// words a0 a1 a2 of the packed bytes: sc_0..3 = a0 & 63 (per byte), sc_4..7 = (a2 & 15) | (a0 >> 6) << 4,
// m_0..3 = a1 & 63, m_4..7 = (a2 >> 4 & 15) | (a1 >> 6) << 4.
[[nodiscard]] inline __m128i unpack_codes_k4(const unsigned char* s) noexcept {
  const __m128i a = loadu128(s);
  const __m128i v = _mm_shuffle_epi32(a, _MM_SHUFFLE(2, 1, 2, 0));  // a0 a2 a1 a2
  const __m128i h = _mm_shuffle_epi32(a, _MM_SHUFFLE(1, 1, 0, 0));  // a0 a0 a1 a1
  const __m128i low = _mm_and_si128(_mm_srlv_epi32(v, _mm_setr_epi32(0, 0, 0, 4)),
                                    _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f));
  const __m128i high = _mm_and_si128(_mm_srli_epi32(h, 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  return _mm_or_si128(low, high);
}

// Q3_K: the 12 packed code bytes at s -> 16 bytes of signed scales sc_j = u_j - 32. In u32 words a0 a1 a2:
// u_0..3 = (a0 & 15) | (a2 & 3) << 4, u_4..7 = (a1 & 15) | (a2 >> 2 & 3) << 4, u_8..11 = (a0 >> 4 & 15) |
// (a2 >> 4 & 3) << 4, u_12..15 = (a1 >> 4 & 15) | (a2 >> 6 & 3) << 4.
[[nodiscard]] inline __m128i unpack_scales_q3_simd(const unsigned char* s) noexcept {
  const __m128i a = _mm_insert_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s)),
                                     static_cast<int>(load_u32(s + 8)), 2);
  const __m128i low = _mm_and_si128(
      _mm_srlv_epi32(_mm_shuffle_epi32(a, _MM_SHUFFLE(1, 0, 1, 0)), _mm_setr_epi32(0, 0, 4, 4)), _mm_set1_epi8(15));
  // (a2 >> 2i & 3) << 4 in lane i: a2 shifted left by 4, 2, 0 (lanes 0..2) or right by 2 (lane 3)
  const __m128i a2 = _mm_shuffle_epi32(a, _MM_SHUFFLE(2, 2, 2, 2));
  const __m128i high = _mm_or_si128(_mm_and_si128(_mm_sllv_epi32(a2, _mm_setr_epi32(4, 2, 0, 0)),
                                                  _mm_setr_epi32(0x30303030, 0x30303030, 0x30303030, 0)),
                                    _mm_and_si128(_mm_srli_epi32(a2, 2), _mm_setr_epi32(0, 0, 0, 0x30303030)));
  return _mm_sub_epi8(_mm_or_si128(low, high), _mm_set1_epi8(32));
}

// vpshufb controls on 8 int16 codes held in both 128-bit halves:
//   kWordPair[k]:  low half <- word 2k, high half <- word 2k + 1   (a 32-value vector = sub-blocks of 16 values)
//   kWordSplat[k]: both halves <- word k                            (a 32-value vector = one sub-block of 32)
alignas(32) inline constexpr std::uint8_t kWordPair[4][32] = {
    {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3},
    {4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7},
    {8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11},
    {12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13,
     14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15}};
alignas(32) inline constexpr std::uint8_t kWordSplat[8][32] = {
    {0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1},
    {2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3},
    {4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5},
    {6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7},
    {8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9},
    {10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11,
     10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11},
    {12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13,
     12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13},
    {14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15,
     14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15, 14, 15}};

[[nodiscard]] inline __m256i shuffle_words(__m256i codes, const std::uint8_t* ctrl) noexcept {
  return _mm256_shuffle_epi8(codes, _mm256_load_si256(reinterpret_cast<const __m256i*>(ctrl)));
}

// 8 int16 codes (a 128-bit vector) in both halves of a 256-bit one.
[[nodiscard]] inline __m256i both_halves(__m128i v) noexcept { return _mm256_broadcastsi128_si256(v); }

// Bit k of every byte of v, moved to bit `to` (and the other bits cleared).
template <int k, int to>
[[nodiscard]] inline __m256i bit_to(__m256i v) noexcept {
  const __m256i mask = _mm256_set1_epi8(static_cast<char>(1 << to));
  if constexpr (k >= to) return _mm256_and_si256(_mm256_srli_epi16(v, k - to), mask);
  else return _mm256_and_si256(_mm256_slli_epi16(v, to - k), mask);
}

// One position's activation block.
struct ActK {
  const std::int8_t* q;
  __m256i bsums;  // 16 int16 sums of 16
  float d;
};
[[nodiscard]] inline ActK act_k(const BlockQ8_K& x) noexcept { return {x.q, loadu256(x.bsums), x.d}; }

// (u (32,) uint8 . x (32,) int8 summed per pair) . scales (16 int16) summed per pair -> 8 int32
[[nodiscard]] inline __m256i scaled_dot(__m256i u, const std::int8_t* x, __m256i scales) noexcept {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(u, loadu256(x)), scales);
}

// acc + (d_x d) * sumi - (d_x dmin) * summ
[[nodiscard]] inline __m256 add_block(__m256 acc, float d, __m256i sumi, float dmin, __m256i summ) noexcept {
  acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
  return _mm256_fmadd_ps(_mm256_set1_ps(-dmin), _mm256_cvtepi32_ps(summ), acc);
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define EDGESPEC_KQUANT_VNNI 1
// Q4_K and Q6_K with AVX-512 VNNI: 64 levels u (uint8) of one super-block in a 512-bit vector, times the 64
// activations that follow in memory, by vpdpbusd into 16 int32 lanes (4 values each: |lane| <= 4 * 63 * 127 <
// 2^15), then each lane times its sub-block's scale by vpdpwssd (the lane as an int16, its high half times 0), so
// every product is exact integer arithmetic as in the AVX2 code (fewer instructions per value: the verification
// of several positions is compute-bound there). The 16 lanes are folded to 8 before the float steps, so sums
// can round differently from an AVX2 build's (lanes hold other partial sums); within a build, any P gives the
// same floats. (The full-mask maskz forms avoid GCC 12's false -Wmaybe-uninitialized on the unmasked ones.)
template <DType T, int P>
inline void block_dot_vnni(const unsigned char* p, const ActK* a, __m256* acc) noexcept {
  __m512i sumi[P];
  for (int i = 0; i < P; ++i) sumi[i] = _mm512_setzero_si512();
  // sumi[i] += (u . x[off .. off + 64) per 4 values) * scale lane
  auto add_dots = [&](__m512i u, int off, __m512i scale) {
    for (int i = 0; i < P; ++i) {
      const __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u,
                                              _mm512_loadu_si512(reinterpret_cast<const void*>(a[i].q + off)));
      sumi[i] = _mm512_dpwssd_epi32(sumi[i], dot, scale);
    }
  };
  auto fold = [](__m512i v) {  // 16 int32 lanes -> 8
    return _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xff, v, 0), _mm512_maskz_extracti64x4_epi64(0xff, v, 1));
  };
  const __m512i m4 = _mm512_set1_epi8(15);
  if constexpr (T == DType::Q4_K) {
    // d | dmin | scales[12] | qs[128]; group G: 32 bytes, low nibbles = values 64G.., high = 64G + 32..
    const __m128i codes = unpack_codes_k4(p + 4);
    const __m512i sc32 = _mm512_maskz_cvtepu8_epi32(0xffff, codes);  // sc_0..7, m_0..7 (6-bit, high int16 halves zero)
    const __m512i shift = _mm512_maskz_inserti64x4(0xff, _mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
    for (int g = 0; g < 4; ++g) {
      const __m512i qv = _mm512_maskz_broadcast_i64x4(0xff, loadu256(p + 16 + 32 * g));
      const __m512i u = _mm512_and_si512(_mm512_srlv_epi16(qv, shift), m4);
      const __m512i idx = _mm512_maskz_inserti64x4(0xff, _mm512_set1_epi32(2 * g), _mm256_set1_epi32(2 * g + 1), 1);
      add_dots(u, 64 * g, _mm512_maskz_permutexvar_epi32(0xffff, idx, sc32));
    }
    const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(load_u32(p))));  // d, dmin
    const float d = _mm_cvtss_f32(dd), dmin = _mm_cvtss_f32(_mm_movehdup_ps(dd));
    const __m256i m_twice = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(codes, codes));
    for (int i = 0; i < P; ++i)
      acc[i] = add_block(acc[i], a[i].d * d, fold(sumi[i]), a[i].d * dmin, _mm256_madd_epi16(m_twice, a[i].bsums));
  } else {
    static_assert(T == DType::Q6_K, "block_dot_vnni: Q4_K or Q6_K");
    // ql[128] | qh[64] | scales[16] | d;  u = low 4 bits | high 2 bits << 4 = q + 32; half h: values 128h..
    const __m128i sc = loadu128(p + 192);
    const __m512i sc32 = _mm512_and_si512(_mm512_maskz_cvtepi8_epi32(0xffff, sc), _mm512_set1_epi32(0xffff));  // int16 in low half
    const __m512i m30 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      // l = ql[64h .. 64h + 64) (l0 | l1), hv = qh[32h .. 32h + 32) in both halves
      const __m512i l = _mm512_loadu_si512(reinterpret_cast<const void*>(p + 64 * h));
      const __m512i hv = _mm512_maskz_broadcast_i64x4(0xff, loadu256(p + 128 + 32 * h));
      // values 128h + 0..63: l & 15 | (hv << 4 | hv << 2 per half) & 0x30;  128h + 64..127: l >> 4 | (hv | hv >> 2)
      const __m512i hi_a = _mm512_sllv_epi16(hv, _mm512_maskz_inserti64x4(0xff, _mm512_set1_epi16(4), _mm256_set1_epi16(2), 1));
      const __m512i hi_b = _mm512_srlv_epi16(hv, _mm512_maskz_inserti64x4(0xff, _mm512_setzero_si512(), _mm256_set1_epi16(2), 1));
      const __m512i u_a = _mm512_or_si512(_mm512_and_si512(l, m4), _mm512_and_si512(hi_a, m30));
      const __m512i u_b = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l, 4), m4), _mm512_and_si512(hi_b, m30));
      // lane i of 64 values starting at sub-block 8h + 4k: scale sc[8h + 4k + i / 4]
      const __m512i lane_quarter = _mm512_srli_epi32(
          _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 2);
      add_dots(u_a, 128 * h, _mm512_maskz_permutexvar_epi32(0xffff, _mm512_add_epi32(lane_quarter, _mm512_set1_epi32(8 * h)), sc32));
      add_dots(u_b, 128 * h + 64,
               _mm512_maskz_permutexvar_epi32(0xffff, _mm512_add_epi32(lane_quarter, _mm512_set1_epi32(8 * h + 4)), sc32));
    }
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc);
    const float d = load_f16(p + 208);
    for (int i = 0; i < P; ++i) {
      const __m256i corr = _mm256_slli_epi32(_mm256_madd_epi16(sc16, a[i].bsums), 5);  // 32 sum_j sc_j bsum_j
      acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(a[i].d * d), _mm256_cvtepi32_ps(_mm256_sub_epi32(fold(sumi[i]), corr)),
                               acc[i]);
    }
  }
}
#else
#define EDGESPEC_KQUANT_VNNI 0
#endif

// One row's super-block at p . the activation blocks a[0..P) of P positions, added to acc[0..P). The weight
// levels and scales are unpacked once, 32 values at a time, and multiplied with every position's activations;
// per position the operations are those of P = 1 (integer sums, then the same float steps), so a batch gives
// the single-position results bit for bit.
template <DType T, int P>
inline void block_dot(const unsigned char* p, const ActK* a, __m256* acc) noexcept {
#if EDGESPEC_KQUANT_VNNI
  if constexpr (T == DType::Q4_K || T == DType::Q6_K) {
    block_dot_vnni<T, P>(p, a, acc);
    return;
  }
#endif
  const __m256i m2 = _mm256_set1_epi8(3), m4 = _mm256_set1_epi8(15);
  __m256i sumi[P];
  // sumi[i] += u . (a[i].q + off) weighted by the scale words s
  auto add_dots = [&](__m256i u, int off, __m256i s) {
    for (int i = 0; i < P; ++i) sumi[i] = _mm256_add_epi32(sumi[i], scaled_dot(u, a[i].q + off, s));
  };
  if constexpr (T == DType::Q2_K) {
    // scales[16] | qs[64] | d | dmin
    const __m128i sm = loadu128(p);
    const __m128i sc = _mm_and_si128(sm, _mm256_castsi256_si128(m4));
    const __m256i mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4), _mm256_castsi256_si128(m4)));
    const __m256i s_lo = both_halves(_mm_cvtepu8_epi16(sc)),
                  s_hi = both_halves(_mm_cvtepu8_epi16(_mm_srli_si128(sc, 8)));
    for (int i = 0; i < P; ++i) sumi[i] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      const __m256i qv = loadu256(p + 16 + 32 * h);
      const __m256i s = h == 0 ? s_lo : s_hi;
      add_dots(_mm256_and_si256(qv, m2), 128 * h, shuffle_words(s, kWordPair[0]));
      add_dots(_mm256_and_si256(_mm256_srli_epi16(qv, 2), m2), 128 * h + 32, shuffle_words(s, kWordPair[1]));
      add_dots(_mm256_and_si256(_mm256_srli_epi16(qv, 4), m2), 128 * h + 64, shuffle_words(s, kWordPair[2]));
      add_dots(_mm256_and_si256(_mm256_srli_epi16(qv, 6), m2), 128 * h + 96, shuffle_words(s, kWordPair[3]));
    }
    const float d = load_f16(p + 80), dmin = load_f16(p + 82);
    for (int i = 0; i < P; ++i)
      acc[i] = add_block(acc[i], a[i].d * d, sumi[i], a[i].d * dmin, _mm256_madd_epi16(mn, a[i].bsums));
  } else if constexpr (T == DType::Q3_K) {
    // hmask[32] | qs[64] | scales[12] | d;  u = low 2 bits | high bit << 2 = q + 4
    const __m128i sc = unpack_scales_q3_simd(p + 96);
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc);
    const __m256i s_lo = both_halves(_mm_cvtepi8_epi16(sc)),
                  s_hi = both_halves(_mm_cvtepi8_epi16(_mm_srli_si128(sc, 8)));
    for (int i = 0; i < P; ++i)
      sumi[i] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, a[i].bsums), 2));
    const __m256i hm = loadu256(p);
    const __m256i q0 = loadu256(p + 32), q1 = loadu256(p + 64);
    auto part = [&](__m256i low, __m256i high, int off, __m256i s, int k) {
      add_dots(_mm256_or_si256(_mm256_and_si256(low, m2), high), off, shuffle_words(s, kWordPair[k]));
    };
    part(q0, bit_to<0, 2>(hm), 0, s_lo, 0);
    part(_mm256_srli_epi16(q0, 2), bit_to<1, 2>(hm), 32, s_lo, 1);
    part(_mm256_srli_epi16(q0, 4), bit_to<2, 2>(hm), 64, s_lo, 2);
    part(_mm256_srli_epi16(q0, 6), bit_to<3, 2>(hm), 96, s_lo, 3);
    part(q1, bit_to<4, 2>(hm), 128, s_hi, 0);
    part(_mm256_srli_epi16(q1, 2), bit_to<5, 2>(hm), 160, s_hi, 1);
    part(_mm256_srli_epi16(q1, 4), bit_to<6, 2>(hm), 192, s_hi, 2);
    part(_mm256_srli_epi16(q1, 6), bit_to<7, 2>(hm), 224, s_hi, 3);
    const float d = load_f16(p + 108);
    for (int i = 0; i < P; ++i)
      acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(a[i].d * d), _mm256_cvtepi32_ps(sumi[i]), acc[i]);
  } else if constexpr (T == DType::Q4_K || T == DType::Q5_K) {
    // d | dmin | scales[12] | (Q5_K: qh[32]) | qs[128]
    constexpr int kQs = T == DType::Q4_K ? 16 : 48;
    const __m128i codes = unpack_codes_k4(p + 4);
    // m_j for both bsums of sub-block j (16 values each)
    const __m256i m_twice = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(codes, codes));
    const __m256i s = both_halves(_mm_cvtepu8_epi16(codes));
    for (int i = 0; i < P; ++i) sumi[i] = _mm256_setzero_si256();
    [[maybe_unused]] __m256i hb;
    if constexpr (T == DType::Q5_K) hb = loadu256(p + 16);
    auto group = [&](auto g) {
      constexpr int G = decltype(g)::value;
      const __m256i qv = loadu256(p + kQs + 32 * G);
      __m256i lo = _mm256_and_si256(qv, m4), hi = _mm256_and_si256(_mm256_srli_epi16(qv, 4), m4);
      if constexpr (T == DType::Q5_K) {
        lo = _mm256_or_si256(lo, bit_to<2 * G, 4>(hb));
        hi = _mm256_or_si256(hi, bit_to<2 * G + 1, 4>(hb));
      }
      add_dots(lo, 64 * G, shuffle_words(s, kWordSplat[2 * G]));
      add_dots(hi, 64 * G + 32, shuffle_words(s, kWordSplat[2 * G + 1]));
    };
    group(std::integral_constant<int, 0>{});
    group(std::integral_constant<int, 1>{});
    group(std::integral_constant<int, 2>{});
    group(std::integral_constant<int, 3>{});
    const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(load_u32(p))));  // d, dmin
    const float d = _mm_cvtss_f32(dd), dmin = _mm_cvtss_f32(_mm_movehdup_ps(dd));
    for (int i = 0; i < P; ++i)
      acc[i] = add_block(acc[i], a[i].d * d, sumi[i], a[i].d * dmin, _mm256_madd_epi16(m_twice, a[i].bsums));
  } else {
    static_assert(T == DType::Q6_K, "dot_rows_q8_K_acts: T must be a K-quant weight type");
    // ql[128] | qh[64] | scales[16] | d;  u = low 4 bits | high 2 bits << 4 = q + 32
    const __m128i sc = loadu128(p + 192);
    const __m256i sc16 = _mm256_cvtepi8_epi16(sc);
    const __m256i s_lo = both_halves(_mm_cvtepi8_epi16(sc)),
                  s_hi = both_halves(_mm_cvtepi8_epi16(_mm_srli_si128(sc, 8)));
    const __m256i m30 = _mm256_set1_epi8(0x30);
    for (int i = 0; i < P; ++i)
      sumi[i] = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_slli_epi32(_mm256_madd_epi16(sc16, a[i].bsums), 5));
    for (int h = 0; h < 2; ++h) {
      const __m256i l0 = loadu256(p + 64 * h), l1 = loadu256(p + 64 * h + 32), hv = loadu256(p + 128 + 32 * h);
      const __m256i s = h == 0 ? s_lo : s_hi;
      add_dots(_mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_and_si256(_mm256_slli_epi16(hv, 4), m30)),
               128 * h, shuffle_words(s, kWordPair[0]));
      add_dots(_mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_and_si256(_mm256_slli_epi16(hv, 2), m30)),
               128 * h + 32, shuffle_words(s, kWordPair[1]));
      add_dots(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4), _mm256_and_si256(hv, m30)),
               128 * h + 64, shuffle_words(s, kWordPair[2]));
      add_dots(_mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                               _mm256_and_si256(_mm256_srli_epi16(hv, 2), m30)),
               128 * h + 96, shuffle_words(s, kWordPair[3]));
    }
    const float d = load_f16(p + 208);
    for (int i = 0; i < P; ++i)
      acc[i] = _mm256_fmadd_ps(_mm256_set1_ps(a[i].d * d), _mm256_cvtepi32_ps(sumi[i]), acc[i]);
  }
}

[[nodiscard]] inline float hsum8(__m256 v) noexcept {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

#endif  // AVX2 && FMA

// Scalar: one row's super-block at p . x = (d_x d) * isum - (d_x dmin) * msum.
template <DType T>
[[nodiscard]] inline float block_dot_scalar(const unsigned char* p, const BlockQ8_K& x) noexcept {
  std::int32_t isum = 0, msum = 0;
  if constexpr (T == DType::Q2_K) {
    for (int v = 0; v < kQKK; ++v) {
      const int q = (p[16 + 32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32))) & 3;
      isum += (p[v / 16] & 15) * q * x.q[v];
    }
    for (int j = 0; j < 16; ++j) msum += (p[j] >> 4) * x.bsums[j];
    return x.d * load_f16(p + 80) * static_cast<float>(isum) - x.d * load_f16(p + 82) * static_cast<float>(msum);
  } else if constexpr (T == DType::Q3_K) {
    int sc[16];
    unpack_scales_q3(p + 96, sc);
    for (int v = 0; v < kQKK; ++v) {
      const int low = (p[32 + 32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32))) & 3;
      const int high = (p[v % 32] >> (v / 32)) & 1;
      isum += sc[v / 16] * (low | high << 2) * x.q[v];
    }
    for (int j = 0; j < 16; ++j) isum -= 4 * sc[j] * x.bsums[j];
    return x.d * load_f16(p + 108) * static_cast<float>(isum);
  } else if constexpr (T == DType::Q4_K || T == DType::Q5_K) {
    constexpr int kQs = T == DType::Q4_K ? 16 : 48;
    std::uint8_t sc[8], m[8];
    unpack_scales_k4(p + 4, sc, m);
    for (int v = 0; v < kQKK; ++v) {
      const int j = v / 32;
      int q = (p[kQs + 32 * (j / 2) + v % 32] >> (4 * (j & 1))) & 15;
      if constexpr (T == DType::Q5_K) q |= ((p[16 + v % 32] >> j) & 1) << 4;
      isum += sc[j] * q * x.q[v];
    }
    for (int j = 0; j < 8; ++j) msum += m[j] * (x.bsums[2 * j] + x.bsums[2 * j + 1]);
    return x.d * load_f16(p) * static_cast<float>(isum) - x.d * load_f16(p + 2) * static_cast<float>(msum);
  } else {
    static_assert(T == DType::Q6_K, "dot_rows_q8_K_acts: T must be a K-quant weight type");
    const auto* sc = reinterpret_cast<const std::int8_t*>(p + 192);
    for (int v = 0; v < kQKK; ++v) {
      const int h = v / 128, t = (v % 128) / 32, l = v % 32;
      const int low = (p[64 * h + 32 * (t & 1) + l] >> (4 * (t >> 1))) & 15;
      const int high = (p[128 + 32 * h + l] >> (2 * t)) & 3;
      isum += sc[v / 16] * (low | high << 4) * x.q[v];
    }
    for (int j = 0; j < 16; ++j) isum -= 32 * sc[j] * x.bsums[j];
    return x.d * load_f16(p + 208) * static_cast<float>(isum);
  }
}

// Bytes ahead of the current block that a row is prefetched (0: no software prefetch).
#ifndef EDGESPEC_KQUANT_PREFETCH_BYTES
#define EDGESPEC_KQUANT_PREFETCH_BYTES 1024
#endif
inline constexpr std::int64_t kPrefetchBytes = EDGESPEC_KQUANT_PREFETCH_BYTES;

}  // namespace kquant

// R rows of W (type T, a K-quant; row i at w + i * ws, nb super-blocks each, any alignment) . the Q8_K
// activations of P positions (position i: x + i * xs, nb blocks each) -> y[i * ys + r], r < R.
//
// Row after row, each streamed from its start, so the R rows (consecutive in memory) are one sequential stream.
// Advancing the R rows block by block together (R interleaved streams) measured up to 2x slower on 8192 x 2048
// Q4_K/Q6_K matrices at n = 1 and about equal on L2-sized ones; the activation block is an L1 hit either way.
// The software prefetch gained up to 25% on matrices read from L3. Each super-block is unpacked once for the P
// positions (verification: P = 2..4), which read it as P single-position calls would, bit for bit.
template <DType T, int R, int P>
inline void dot_rows_q8_K_acts(const unsigned char* w, std::int64_t ws, const BlockQ8_K* x, std::int64_t xs,
                               std::int64_t nb, float* y, std::int64_t ys) noexcept {
  constexpr std::int64_t kBlock = block_bytes(T);
#if defined(__AVX2__) && defined(__FMA__)
  for (int r = 0; r < R; ++r) {
    const unsigned char* row = w + r * ws;
    __m256 acc[P];
    for (int i = 0; i < P; ++i) acc[i] = _mm256_setzero_ps();
    for (std::int64_t b = 0; b < nb; ++b) {
      if constexpr (kquant::kPrefetchBytes > 0)
        for (std::int64_t off = 0; off < kBlock; off += 64)
          __builtin_prefetch(row + b * kBlock + kquant::kPrefetchBytes + off, 0, 3);
      kquant::ActK a[P];
      for (int i = 0; i < P; ++i) a[i] = kquant::act_k(x[i * xs + b]);
      kquant::block_dot<T, P>(row + b * kBlock, a, acc);
    }
    for (int i = 0; i < P; ++i) y[i * ys + r] = kquant::hsum8(acc[i]);
  }
#else
  for (int r = 0; r < R; ++r)
    for (int i = 0; i < P; ++i) {
      float acc = 0.0f;
      for (std::int64_t b = 0; b < nb; ++b) acc += kquant::block_dot_scalar<T>(w + r * ws + b * kBlock, x[i * xs + b]);
      y[i * ys + r] = acc;
    }
#endif
}

}  // namespace edgespec::detail
