// Row-interleaved ("packed") Q4_K and Q6_K weights for AVX-512 VNNI builds: the layouts behind one-pass
// verification of K-quant targets (llama.cpp's Q4_K_M files: Q4_K, with Q6_K for some matrices), next to
// packed.hpp's Q8_0/Q4_0/F16 ones.
//
// Row-major, each Q4_K row repeats per super-block (256 values) the float steps of its own scales: a kernel
// verifying P positions does per row and position ~20 instructions of scale and min arithmetic for 4 vpdpbusd,
// so a forward over 8 positions cost ~4x one over 1 (docs/performance.md). Packed, 16 rows share every step, one
// row per 32-bit lane:
//
//   group g = rows [16g, 16g + 16), nb super-blocks per row, each kQ4KPackedBlock = 2368 bytes (37 lines):
//     [   0,   32)  d     16 rows x f16                      (the super-block scale)
//     [  32,   64)  dmin  16 rows x f16                      (the super-block min scale)
//     [  64,  192)  sc    8 sub-blocks j x 16 rows x u8      (6-bit scale codes, unpacked)
//     [ 192,  320)  m     4 pairs t x 16 rows x {m_2t, m_2t+1} u8   (6-bit min codes, unpacked)
//     [ 320, 2368)  32 chunks c = 8G + k (G = 0..3, k = 0..7): 16 rows x qs[32G + 4k .. 32G + 4k + 4)
//                   (low nibbles: values 64G + 4k .. +4, sub-block 2G; high: values 64G + 32 + 4k .., 2G + 1)
//
// 2.8% more bytes than the rows (the 12 bytes of packed codes become 16), for which a super-block's sc and m
// are one zero-extending load per sub-block and pair. Per position (Q8_K activations x_q with scale d_x and
// bsum_j = sum of the 32 x_q of sub-block j), in 16 int32 lanes (rows):
//
//   t      = dpbusd over 4 chunks (16 values: |t| <= 16 * 15 * 127 < 2^15)     per half sub-block, from 0
//   sumi  += dpwssd(t, sc_j)              (t's low int16 times sc_j; sc_j's high half is 0)   = sum_j sc_j (q . x_q)_j
//   summ   = sum_t dpwssd({m_2t, m_2t+1}, {bsum_2t, bsum_2t+1})                               = sum_j m_j bsum_j
//   y     += (d d_x) * float(sumi) - (dmin d_x) * float(summ)                 per super-block, in order
//
// Q6_K (u = q + 32 in 0..63, sub-blocks of 16 with int8 scales), kQ6KPackedBlock = 3392 bytes (53 lines; the
// rows' 3360 and 32 bytes of padding):
//     [   0,   32)  d     16 rows x f16
//     [  32,   64)  zero
//     [  64,  320)  sc    8 pairs t x 16 rows x {sc_2t, sc_2t+1} int8
//     [ 320, 2368)  ql    32 chunks c: 16 rows x ql[4c .. 4c + 4)    (c = 16h + 8a + k: ql[64h + 32a + 4k ..])
//     [2368, 3392)  qh    16 chunks c: 16 rows x qh[4c .. 4c + 4)    (c = 8h + k: qh[32h + 4k ..])
//
//   u (16 values) = 4 chunks of ql nibbles | 2 bits of qh << 4;  t = dpbusd over them (|t| <= 16 * 63 * 127)
//   sumi  = -32 sum_t dpwssd({sc_2t, sc_2t+1}, {bsum16_2t, bsum16_2t+1})  +  sum_j vpmulld(t_j, sc_j)
//   y    += (d d_x) * float(sumi)
//
// (t does not fit the int16 that vpdpwssd multiplies, so the scales go through vpmulld.)
//
// Integer sums are exact, and every (row, position) output takes the same float steps whatever the tile of
// positions, so a batch equals single positions bit for bit (the values equal the row-major kernel's to f32
// rounding of a different summation order).
#pragma once

#include <cstdint>
#include <cstring>

#include "edgespec/core/dtype.hpp"
#include "edgespec/kernels/quants_k.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#include <immintrin.h>
#endif

namespace edgespec {

// Bytes of one super-block of a packed Q4_K group (16 rows), and its parts' offsets.
inline constexpr std::int64_t kQ4KPackedBlock = 2368;
inline constexpr std::int64_t kQ4KPackedSc = 64, kQ4KPackedMin = 192, kQ4KPackedQuants = 320;
static_assert(kQ4KPackedBlock == kQ4KPackedQuants + 32 * 64 && kQ4KPackedBlock % 64 == 0);
inline constexpr std::int64_t kQ6KPackedBlock = 3392;
inline constexpr std::int64_t kQ6KPackedSc = 64, kQ6KPackedQl = 320, kQ6KPackedQh = 2368;
static_assert(kQ6KPackedBlock == kQ6KPackedQh + 16 * 64 && kQ6KPackedBlock % 64 == 0);

namespace detail {

// 16 Q4_K rows (ws bytes apart, nb super-blocks each) -> one packed group at out (nb * kQ4KPackedBlock bytes).
inline void pack_group_q4_K(const unsigned char* in, std::int64_t ws, std::int64_t nb, unsigned char* out) noexcept {
  constexpr int kRows = 16;
  for (std::int64_t b = 0; b < nb; ++b) {
    unsigned char* blk = out + b * kQ4KPackedBlock;
    for (int r = 0; r < kRows; ++r) {
      const unsigned char* src = in + r * ws + b * block_bytes(DType::Q4_K);  // d | dmin | scales[12] | qs[128]
      std::memcpy(blk + 2 * r, src, 2);
      std::memcpy(blk + 32 + 2 * r, src + 2, 2);
      std::uint8_t sc[8], m[8];
      kquant::unpack_scales_k4(src + 4, sc, m);
      for (int j = 0; j < 8; ++j) blk[kQ4KPackedSc + kRows * j + r] = sc[j];
      for (int t = 0; t < 4; ++t) {
        blk[kQ4KPackedMin + 32 * t + 2 * r] = m[2 * t];
        blk[kQ4KPackedMin + 32 * t + 2 * r + 1] = m[2 * t + 1];
      }
      for (int c = 0; c < 32; ++c) std::memcpy(blk + kQ4KPackedQuants + (kRows * c + r) * 4, src + 16 + 4 * c, 4);
    }
  }
}

// 16 Q6_K rows (ws bytes apart, nb super-blocks each) -> one packed group at out (nb * kQ6KPackedBlock bytes).
inline void pack_group_q6_K(const unsigned char* in, std::int64_t ws, std::int64_t nb, unsigned char* out) noexcept {
  constexpr int kRows = 16;
  for (std::int64_t b = 0; b < nb; ++b) {
    unsigned char* blk = out + b * kQ6KPackedBlock;
    std::memset(blk + 32, 0, 32);
    for (int r = 0; r < kRows; ++r) {
      const unsigned char* src = in + r * ws + b * block_bytes(DType::Q6_K);  // ql[128] | qh[64] | sc[16] | d
      std::memcpy(blk + 2 * r, src + 208, 2);
      for (int t = 0; t < 8; ++t) std::memcpy(blk + kQ6KPackedSc + 32 * t + 2 * r, src + 192 + 2 * t, 2);
      for (int c = 0; c < 32; ++c) std::memcpy(blk + kQ6KPackedQl + (kRows * c + r) * 4, src + 4 * c, 4);
      for (int c = 0; c < 16; ++c) std::memcpy(blk + kQ6KPackedQh + (kRows * c + r) * 4, src + 128 + 4 * c, 4);
    }
  }
}

// Q8_K activations of n positions prepared for the packed K-quant kernels, block-major (as PackedActs):
//   q (nb, n, 256) int8 | d (nb, n) f32 | bs (nb, n, 8) int32, two int16 sums of q per word:
//     Q4_K  words 0..3: {bsum_2t, bsum_2t+1}, bsum_j = sum of the 32 q of sub-block j (|.| <= 32 * 127)
//     Q6_K  words 0..7: {bsum16_2t, bsum16_2t+1}, the Q8_K block's own sums of 16 (its bsums array)
struct PackedActsK {
  const std::int8_t* q;
  const float* d;
  const std::int32_t* bs;
  std::int64_t n;
};
inline constexpr int kPackedActKWords = 8;

// One position's block x (256,) -> its Q8_K quantization (quantize_block_q8_K, as the row-major kernels get)
// at q (256,), *d and bs (8,) for weights of type T.
template <DType T>
inline void quantize_act_block_k(const float* x, std::int8_t* q, float* d, std::int32_t* bs) noexcept {
  static_assert(T == DType::Q4_K || T == DType::Q6_K, "quantize_act_block_k: Q4_K or Q6_K");
  BlockQ8_K blk;
  kquant::quantize_block_q8_K(x, blk);
  std::memcpy(q, blk.q, sizeof(blk.q));
  *d = blk.d;
  if constexpr (T == DType::Q6_K) {
    std::memcpy(bs, blk.bsums, sizeof(blk.bsums));
  } else {
    for (int t = 0; t < 4; ++t) {
      const auto lo = static_cast<std::uint16_t>(blk.bsums[4 * t] + blk.bsums[4 * t + 1]);
      const auto hi = static_cast<std::uint16_t>(blk.bsums[4 * t + 2] + blk.bsums[4 * t + 3]);
      bs[t] = static_cast<std::int32_t>(static_cast<std::uint32_t>(lo) | static_cast<std::uint32_t>(hi) << 16);
    }
    for (int t = 4; t < kPackedActKWords; ++t) bs[t] = 0;
  }
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)

// Bytes ahead in a group's stream that packed_tile_q4_K and packed_tile_q6_K software-prefetch: one position (decode) and tiles of
// 2 or more (verification, longer per super-block, so further ahead), as the packed Q8_0/Q4_0 kernels.
#ifndef EDGESPEC_PACKED_KQUANT_PREFETCH_BYTES
#define EDGESPEC_PACKED_KQUANT_PREFETCH_BYTES 4096
#endif
#ifndef EDGESPEC_PACKED_KQUANT_PREFETCH_BATCH_BYTES
#define EDGESPEC_PACKED_KQUANT_PREFETCH_BATCH_BYTES 8192
#endif

// Prefetch distance of a tile of P positions.
template <int P>
inline constexpr std::int64_t kPackedKAhead =
    P == 1 ? EDGESPEC_PACKED_KQUANT_PREFETCH_BYTES : EDGESPEC_PACKED_KQUANT_PREFETCH_BATCH_BYTES;

// The super-block of kBlock bytes kAhead bytes past blk, into L1.
template <std::int64_t kAhead, std::int64_t kBlock>
inline void prefetch_ahead(const unsigned char* blk) noexcept {
  if constexpr (kAhead > 0)
    for (std::int64_t line = 0; line < kBlock; line += 64)
      _mm_prefetch(reinterpret_cast<const char*>(blk + kAhead + line), _MM_HINT_T0);
}

// The 4 activation bytes at p in every 32-bit lane (vpdpbusd's broadcast operand).
[[nodiscard]] inline __m512i lanes4(const std::int8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// One packed Q4_K group (16 rows) @ positions [j, j + P) of xs -> y[p * ys + (0..16)].
template <int P>
inline void packed_tile_q4_K(const unsigned char* group, std::int64_t nb, const PackedActsK& xs, std::int64_t j,
                             float* y, std::int64_t ys) noexcept {
  const std::int8_t* xq = xs.q + j * kQKK;  // super-block b of position j + p: xq + p * 256, xd[p], xbs[4 p ..]
  const float* xd = xs.d + j;
  const std::int32_t* xbs = xs.bs + j * kPackedActKWords;
  const __m512i m4 = _mm512_set1_epi8(15);
  __m512 acc[P];
  for (int p = 0; p < P; ++p) acc[p] = _mm512_setzero_ps();
  for (std::int64_t b = 0; b < nb; ++b) {
    const unsigned char* blk = group + b * kQ4KPackedBlock;
    prefetch_ahead<kPackedKAhead<P>, kQ4KPackedBlock>(blk);
    __m512i sumi[P];
    for (int p = 0; p < P; ++p) sumi[p] = _mm512_setzero_si512();
    for (int G = 0; G < 4; ++G) {
      const __m512i s_lo = _mm512_maskz_cvtepu8_epi32(  // sc_2G, sc_2G+1 of the 16 rows, one per lane
          0xffff, _mm_load_si128(reinterpret_cast<const __m128i*>(blk + kQ4KPackedSc + 32 * G)));
      const __m512i s_hi = _mm512_maskz_cvtepu8_epi32(
          0xffff, _mm_load_si128(reinterpret_cast<const __m128i*>(blk + kQ4KPackedSc + 32 * G + 16)));
      for (int h = 0; h < 2; ++h) {  // values 64G + 16h .. +16 (low nibbles) and 64G + 32 + 16h .. (high)
        __m512i lo[4], hi[4];
        for (int k = 0; k < 4; ++k) {
          const __m512i v = _mm512_load_si512(blk + kQ4KPackedQuants + (8 * G + 4 * h + k) * 64);
          lo[k] = _mm512_and_si512(v, m4);
          hi[k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
        }
        for (int p = 0; p < P; ++p) {
          const std::int8_t* x = xq + p * kQKK + 64 * G + 16 * h;
          __m512i t_lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[0], lanes4(x));
          __m512i t_hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), hi[0], lanes4(x + 32));
          for (int k = 1; k < 4; ++k) {
            t_lo = _mm512_dpbusd_epi32(t_lo, lo[k], lanes4(x + 4 * k));
            t_hi = _mm512_dpbusd_epi32(t_hi, hi[k], lanes4(x + 32 + 4 * k));
          }
          sumi[p] = _mm512_dpwssd_epi32(_mm512_dpwssd_epi32(sumi[p], t_lo, s_lo), t_hi, s_hi);
        }
      }
    }
    const __m512 dw = _mm512_maskz_cvtph_ps(0xffff, _mm256_load_si256(reinterpret_cast<const __m256i*>(blk)));
    const __m512 dmw = _mm512_maskz_cvtph_ps(0xffff, _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + 32)));
    __m512i mins[4];  // lane r: {m_2t, m_2t+1} of row r as two int16
    for (int t = 0; t < 4; ++t)
      mins[t] = _mm512_maskz_cvtepu8_epi16(
          0xffffffff, _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + kQ4KPackedMin + 32 * t)));
    for (int p = 0; p < P; ++p) {
      const std::int32_t* bs = xbs + kPackedActKWords * p;
      __m512i summ = _mm512_dpwssd_epi32(_mm512_setzero_si512(), mins[0], _mm512_set1_epi32(bs[0]));
      for (int t = 1; t < 4; ++t) summ = _mm512_dpwssd_epi32(summ, mins[t], _mm512_set1_epi32(bs[t]));
      const __m512 dx = _mm512_set1_ps(xd[p]);
      acc[p] = _mm512_fmadd_ps(_mm512_mul_ps(dw, dx), _mm512_maskz_cvtepi32_ps(0xffff, sumi[p]), acc[p]);
      acc[p] = _mm512_fnmadd_ps(_mm512_mul_ps(dmw, dx), _mm512_maskz_cvtepi32_ps(0xffff, summ), acc[p]);
    }
    xq += xs.n * kQKK;
    xd += xs.n;
    xbs += xs.n * kPackedActKWords;
  }
  for (int p = 0; p < P; ++p) _mm512_storeu_ps(y + p * ys, acc[p]);
}

// One packed Q6_K group (16 rows) @ positions [j, j + P) of xs -> y[p * ys + (0..16)].
template <int P>
inline void packed_tile_q6_K(const unsigned char* group, std::int64_t nb, const PackedActsK& xs, std::int64_t j,
                             float* y, std::int64_t ys) noexcept {
  const std::int8_t* xq = xs.q + j * kQKK;
  const float* xd = xs.d + j;
  const std::int32_t* xbs = xs.bs + j * kPackedActKWords;
  const __m512i m4 = _mm512_set1_epi8(15), m30 = _mm512_set1_epi8(0x30);
  __m512 acc[P];
  for (int p = 0; p < P; ++p) acc[p] = _mm512_setzero_ps();
  for (std::int64_t b = 0; b < nb; ++b) {
    const unsigned char* blk = group + b * kQ6KPackedBlock;
    prefetch_ahead<kPackedKAhead<P>, kQ6KPackedBlock>(blk);
    auto sc_pairs = [&](int t) {  // lane r: {sc_2t, sc_2t+1} of row r as two int16
      return _mm512_maskz_cvtepi8_epi16(
          0xffffffff, _mm256_load_si256(reinterpret_cast<const __m256i*>(blk + kQ6KPackedSc + 32 * t)));
    };
    auto sc_of = [&](int j) {  // lane r: sc_j of row r as int32
      const __m512i v = sc_pairs(j / 2);
      return j % 2 == 0 ? _mm512_maskz_srai_epi32(0xffff, _mm512_maskz_slli_epi32(0xffff, v, 16), 16)
                        : _mm512_maskz_srai_epi32(0xffff, v, 16);
    };
    __m512i sumi[P];  // from -32 sum_j sc_j bsum16_j: u = q + 32
    for (int p = 0; p < P; ++p) sumi[p] = _mm512_setzero_si512();
    for (int t = 0; t < 8; ++t) {
      const __m512i pairs = sc_pairs(t);
      for (int p = 0; p < P; ++p)
        sumi[p] = _mm512_dpwssd_epi32(sumi[p], pairs, _mm512_set1_epi32(xbs[kPackedActKWords * p + t]));
    }
    for (int p = 0; p < P; ++p)
      sumi[p] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_maskz_slli_epi32(0xffff, sumi[p], 5));
    for (int h = 0; h < 2; ++h)
      for (int s = 0; s < 2; ++s) {  // ql/qh bytes 16s .. 16s + 16 of each 32: values 16s .. of each run of 32
        __m512i qh[4];
        for (int i = 0; i < 4; ++i)
          qh[i] = _mm512_load_si512(blk + kQ6KPackedQh + (8 * h + 4 * s + i) * 64);
        for (int a = 0; a < 2; ++a) {
          // low nibbles: values 128h + 32a + 16s .. +16 (sub-block 8h + 2a + s), qh bits 2a, 2a + 1;
          // high nibbles: values 128h + 64 + 32a + 16s .. (sub-block 8h + 4 + 2a + s), qh bits 4 + 2a, 5 + 2a
          const __m512i s_lo = sc_of(8 * h + 2 * a + s), s_hi = sc_of(8 * h + 4 + 2 * a + s);
          __m512i u_lo[4], u_hi[4];
          for (int i = 0; i < 4; ++i) {
            const __m512i ql = _mm512_load_si512(blk + kQ6KPackedQl + (16 * h + 8 * a + 4 * s + i) * 64);
            const __m512i hl = a == 0 ? _mm512_slli_epi16(qh[i], 4) : _mm512_slli_epi16(qh[i], 2);
            const __m512i hh = a == 0 ? qh[i] : _mm512_srli_epi16(qh[i], 2);
            u_lo[i] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_and_si512(hl, m30));
            u_hi[i] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4), _mm512_and_si512(hh, m30));
          }
          for (int p = 0; p < P; ++p) {
            const std::int8_t* x = xq + p * kQKK + 128 * h + 32 * a + 16 * s;
            __m512i t_lo = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u_lo[0], lanes4(x));
            __m512i t_hi = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u_hi[0], lanes4(x + 64));
            for (int i = 1; i < 4; ++i) {
              t_lo = _mm512_dpbusd_epi32(t_lo, u_lo[i], lanes4(x + 4 * i));
              t_hi = _mm512_dpbusd_epi32(t_hi, u_hi[i], lanes4(x + 64 + 4 * i));
            }
            sumi[p] = _mm512_add_epi32(sumi[p], _mm512_add_epi32(_mm512_mullo_epi32(t_lo, s_lo),
                                                                 _mm512_mullo_epi32(t_hi, s_hi)));
          }
        }
      }
    const __m512 dw = _mm512_maskz_cvtph_ps(0xffff, _mm256_load_si256(reinterpret_cast<const __m256i*>(blk)));
    for (int p = 0; p < P; ++p)
      acc[p] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(xd[p])), _mm512_maskz_cvtepi32_ps(0xffff, sumi[p]),
                               acc[p]);
    xq += xs.n * kQKK;
    xd += xs.n;
    xbs += xs.n * kPackedActKWords;
  }
  for (int p = 0; p < P; ++p) _mm512_storeu_ps(y + p * ys, acc[p]);
}

#endif  // AVX-512 VNNI

}  // namespace detail

}  // namespace edgespec
