// The weight-times-activations kernel behind every projection:
//
//   matmul(pool, W (rows, cols), x (n, cols), n) -> y (n, rows) = x @ W^T
//
// Schedule (the algorithm above is all it computes):
//
//   [quantized W]  x (n, cols) f32 -> Q8_0 activations, laid out for the target     once per call, shared
//   parallel over row parts (static, 8-row aligned):                                  thread t: rows [r0, r1)
//     for chunk of 16 positions                        (activations of a chunk stay in L2)
//       for tile of 8 rows, then single rows           (8 * row_bytes of W, read from memory once per chunk)
//         for tile of 4 positions, then 3, 2, 1
//           n == 1: 8 rows x 1 position; else 2 x (4 rows x P positions) in registers, each weight vector
//           loaded once per tile and used for all P positions
//
// so W is streamed from memory ceil(n / 16) times per call and each weight load feeds P dot products.
// Inner products by target:
//
//   Q8_0/Q4_0 x Q8_0, AVX-512 VNNI: two blocks per 512-bit vpdpbusd, weights on the unsigned side
//                (Q8_0: w ^ 0x80 = w + 128, Q4_0: the nibbles), the -128 sum(x) / -8 sum(x) correction
//                precomputed per activation block pair as the dpbusd accumulator seed; then
//                acc += (d_w * d_x) * float(int32 x 16)                                 (see qpair_step)
//   Q8_0/Q4_0 x Q8_0, other targets: per position, sum |w| * sign(x, w) per 4 bytes: AVX-VNNI |
//                AVX2 vpmaddubsw + vpmaddwd | scalar (Q4_0: dpbusd(u, x) - 8 sum(x))
//   F32/F16/BF16 converted on load (F16C / AVX-512), FMA with f32 activations
//
// Every (row, position) output is computed by the same operation sequence whatever the tile shape, the
// thread count or n, so a batch of n positions equals n single-position calls bit for bit.
// Weights may be memory-mapped at any alignment: every weight load is unaligned.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>

#if defined(__AVX2__) || defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
#endif

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/core/extent.hpp"
#include "edgespec/kernels/quantize.hpp"
#include "edgespec/runtime/thread_pool.hpp"

namespace edgespec {

// A row-major weight matrix: `rows` output features, each `cols` values in row_bytes(type, cols) bytes.
struct MatrixView {
  DType type;
  std::int64_t rows;
  std::int64_t cols;
  const void* data;
};

namespace detail {

#ifndef EDGESPEC_TILE_ROWS
#define EDGESPEC_TILE_ROWS 8
#endif
inline constexpr int kTileRows = EDGESPEC_TILE_ROWS;

// Bytes ahead of the current position that each of a tile's row streams is prefetched: the hardware
// prefetcher alone does not keep kTileRows interleaved streams in flight at DRAM speed.
#ifndef EDGESPEC_PREFETCH_BYTES
#define EDGESPEC_PREFETCH_BYTES 1024
#endif
inline constexpr std::int64_t kPrefetchBytes = EDGESPEC_PREFETCH_BYTES;

inline void prefetch(const void* p) noexcept { __builtin_prefetch(p, 0, 3); }

// ---------------------------------------------------------------- integer block dot products (Q8_0 x)
#if defined(__AVX2__) && defined(__FMA__)
#define EDGESPEC_INT_SIMD 1
using QAcc = __m256;   // 8 partial float sums
using QX = __m256i;    // one activation block, 32 int8
using QDot = __m256i;  // 8 int32 partial dot products of one block

[[nodiscard]] inline QX load_xq(const std::int8_t* xq) noexcept {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq));
}
[[nodiscard]] inline QAcc qacc_zero() noexcept { return _mm256_setzero_ps(); }

// u (32,) uint8 . s (32,) int8 summed per 4 bytes, added to acc.
[[nodiscard]] inline __m256i dot_u8_s8(__m256i acc, __m256i u, __m256i s) noexcept {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(acc, u, s);
#elif defined(__AVXVNNI__)
  return _mm256_dpbusd_avx_epi32(acc, u, s);
#else
  // u <= 128, |s| <= 127: each int16 pair sum fits without saturation
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}

// w (32,) int8 . x (32,) int8 (|x| <= 127) -> 8 int32
[[nodiscard]] inline QDot dot_q8(const unsigned char* w, QX x) noexcept {
  const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
  return dot_u8_s8(_mm256_setzero_si256(), _mm256_abs_epi8(wv), _mm256_sign_epi8(x, wv));
}

// -8 * sum(x) spread over the 8 lanes, the seed of every Q4_0 dot with this activation block
[[nodiscard]] inline QDot q4_seed(QX x) noexcept {
  return _mm256_sub_epi32(_mm256_setzero_si256(), dot_u8_s8(_mm256_setzero_si256(), _mm256_set1_epi8(8), x));
}

// qs (16,) packed nibbles . x (32,) int8 -> 8 int32, with q = nibble - 8
[[nodiscard]] inline QDot dot_q4(const unsigned char* qs, QX x, QDot seed) noexcept {
  const __m128i t = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i u = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(t, 4), t), _mm256_set1_epi8(0x0f));
  return dot_u8_s8(seed, u, x);
}

[[nodiscard]] inline QAcc fma_block(float d, QDot dot, QAcc acc) noexcept {
  return _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(dot), acc);
}

[[nodiscard]] inline float hsum(__m256 v) noexcept {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
#else
#define EDGESPEC_INT_SIMD 0
using QAcc = float;
using QX = const std::int8_t*;
using QDot = std::int32_t;

[[nodiscard]] inline QX load_xq(const std::int8_t* xq) noexcept { return xq; }
[[nodiscard]] inline QAcc qacc_zero() noexcept { return 0.0f; }

[[nodiscard]] inline QDot dot_q8(const unsigned char* w, QX x) noexcept {
  std::int32_t s = 0;
  for (int i = 0; i < kQK; ++i) s += static_cast<std::int8_t>(w[i]) * x[i];
  return s;
}
[[nodiscard]] inline QDot q4_seed(QX) noexcept { return 0; }
[[nodiscard]] inline QDot dot_q4(const unsigned char* qs, QX x, QDot) noexcept {
  std::int32_t s = 0;
  for (int i = 0; i < kQK / 2; ++i)
    s += ((qs[i] & 15) - 8) * x[i] + ((qs[i] >> 4) - 8) * x[i + kQK / 2];
  return s;
}
[[nodiscard]] inline QAcc fma_block(float d, QDot dot, QAcc acc) noexcept {
  return acc + d * static_cast<float>(dot);
}
[[nodiscard]] inline float hsum(float v) noexcept { return v; }
#endif

[[nodiscard]] inline float load_half_scale(const unsigned char* p) noexcept {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

// W (R rows of nb Q8_0/Q4_0 blocks, stride ws bytes) @ x (nb * 32,) as xq int8 + xd (nb,) -> out (R,)
// (the per-position path of targets without AVX-512 VNNI)
template <DType T, int R, int kNb>
inline void dot_rows_quant(const unsigned char* w, std::int64_t ws, const std::int8_t* xq, const float* xd,
                           Extent<kNb> nb, float* out) noexcept {
  constexpr std::int64_t kBlock = block_bytes(T);
  QAcc acc[R];
  for (int r = 0; r < R; ++r) acc[r] = qacc_zero();
  for (std::int64_t b = 0; b < nb.value(); ++b) {
    const QX x = load_xq(xq + b * kQK);
    if (kPrefetchBytes > 0 && (b & 1) == 0)  // ~ once per cache line and row
      for (int r = 0; r < R; ++r) prefetch(w + r * ws + b * kBlock + kPrefetchBytes);
    if constexpr (T == DType::Q8_0) {
      for (int r = 0; r < R; ++r) {
        const unsigned char* blk = w + r * ws + b * kBlock;
        acc[r] = fma_block(load_half_scale(blk) * xd[b], dot_q8(blk + 2, x), acc[r]);
      }
    } else {
      const QDot seed = q4_seed(x);
      for (int r = 0; r < R; ++r) {
        const unsigned char* blk = w + r * ws + b * kBlock;
        acc[r] = fma_block(load_half_scale(blk) * xd[b], dot_q4(blk + 2, x, seed), acc[r]);
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum(acc[r]);
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define EDGESPEC_QPAIR 1
// ------------------------------------------------ block-pair kernels (AVX-512 VNNI, 2 blocks per vpdpbusd)
//
// Activations are prepared once per call, per position and per pair of blocks q = (2q, 2q + 1), as three
// 64-byte vectors matching the lanes of a pair of weight blocks loaded into one zmm:
//
//   Q8_0  weight zmm = [qs(2q) | qs(2q+1)] ^ 0x80  (u8 = w + 128)   x = [x(2q) | x(2q+1)]
//         int32 lanes 0-7: block 2q, 8-15: block 2q+1           seed = -128 sum(x) per 4 bytes
//   Q4_0  weight zmm = [lo(2q) | lo(2q+1) | hi(2q) | hi(2q+1)] nibbles (u8 in [0, 15])
//         x = [x(2q)[0:16] | x(2q+1)[0:16] | x(2q)[16:32] | x(2q+1)[16:32]]
//         int32 lanes 0-3, 8-11: block 2q, 4-7, 12-15: block 2q+1   seed = -8 sum(x) per 4 bytes
//   dx = the activation block scales spread over the int32 lanes of their block
//
// so dpbusd(seed, w, x) is exactly the signed block dot product per lane group, for any weight byte, and
// a tile of R rows x P positions costs per block pair R weight loads and, per (row, position):
//   acc += (dw * dx) * float(dpbusd(seed, w, x))
// with the same operation sequence per (row, position) whatever R and P: batched results are bit-identical
// to single-position ones. An odd last block is a pair whose second half is zero on both sides.
inline constexpr std::int64_t kPairBytes = 3 * 64;  // x, seed, dx of one block pair of one position

// Prepared activations of one position: nb2 = ceil(nb / 2) pairs.
struct QPairX {
  const __m512i* x;     // (nb2,) 64 int8
  const __m512i* seed;  // (nb2,) 16 int32
  const __m512* dx;     // (nb2,) 16 f32
};

[[nodiscard]] inline QPairX qpair_view(const unsigned char* base, std::int64_t nb2) noexcept {
  return {reinterpret_cast<const __m512i*>(base), reinterpret_cast<const __m512i*>(base + nb2 * 64),
          reinterpret_cast<const __m512*>(base + nb2 * 128)};
}

// x (nb * 32,) f32 of one position -> its prepared pairs at out (nb2 * kPairBytes bytes, 64-aligned)
template <DType T>
inline void qpair_prepare(const float* x, std::int64_t nb, unsigned char* out) noexcept {
  const std::int64_t nb2 = (nb + 1) / 2;
  auto* xs = reinterpret_cast<std::int8_t*>(out);
  auto* seed = reinterpret_cast<std::int32_t*>(out + nb2 * 64);
  auto* dx = reinterpret_cast<float*>(out + nb2 * 128);
  for (std::int64_t q = 0; q < nb2; ++q) {
    std::int8_t blk[2][kQK] = {};
    float d[2] = {0.0f, 0.0f};
    for (int h = 0; h < 2 && 2 * q + h < nb; ++h) d[h] = quantize_block_q8_0(x + (2 * q + h) * kQK, blk[h]);
    std::int8_t* v = xs + q * 64;
    for (int h = 0; h < 2; ++h) {
      if constexpr (T == DType::Q8_0) {
        std::memcpy(v + 32 * h, blk[h], kQK);
      } else {
        std::memcpy(v + 16 * h, blk[h], 16);
        std::memcpy(v + 32 + 16 * h, blk[h] + 16, 16);
      }
    }
    // seed = -offset * (sum of each 4 bytes), offset = 128 (Q8_0) or 8 (Q4_0)
    const __m512i sum4 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), _mm512_load_si512(v));
    const __m512i neg = _mm512_sub_epi32(_mm512_setzero_si512(), sum4);
    _mm512_store_si512(seed + q * 16, _mm512_maskz_slli_epi32(0xffff, neg, T == DType::Q8_0 ? 7 : 3));
    for (int g = 0; g < 16; ++g) dx[q * 16 + g] = d[T == DType::Q8_0 ? g / 8 : (g / 4) % 2];
  }
}

// The weight zmm of block pair at blk (full: both blocks; else only the first, the rest zero).
// (The maskz forms with a full mask avoid GCC 12's false -Wmaybe-uninitialized on the unmasked ones.)
[[nodiscard]] inline __m512i zext512(__m256i v) noexcept {
  return _mm512_maskz_inserti64x4(0xff, _mm512_setzero_si512(), v, 0);
}

// The weight zmm of block pair at blk (full: both blocks; else only the first, the rest zero).
template <DType T, bool kFull>
[[nodiscard]] inline __m512i load_wpair(const unsigned char* blk) noexcept {
  if constexpr (T == DType::Q8_0) {
    __m512i v = zext512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2)));
    if constexpr (kFull)
      v = _mm512_maskz_inserti64x4(0xff, v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 34 + 2)), 1);
    return _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
  } else {
    __m256i t = _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 2)));
    if constexpr (kFull)
      t = _mm256_inserti128_si256(t, _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 18 + 2)), 1);
    const __m512i v = _mm512_maskz_inserti64x4(0xff, zext512(t), _mm256_srli_epi16(t, 4), 1);
    return _mm512_and_si512(v, _mm512_set1_epi8(0x0f));
  }
}

// The two weight block scales of the pair at blk spread over their int32 lanes (see the layout above).
template <DType T, bool kFull>
[[nodiscard]] inline __m512 load_dwpair(const unsigned char* blk) noexcept {
  std::uint16_t h0, h1 = 0;
  std::memcpy(&h0, blk, 2);
  if constexpr (kFull) std::memcpy(&h1, blk + block_bytes(T), 2);
  const __m128 d = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(h0 | static_cast<std::uint32_t>(h1) << 16)));
  const __m512i idx = T == DType::Q8_0 ? _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
                                       : _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
  return _mm512_maskz_permutexvar_ps(0xffff, idx, _mm512_zextps128_ps512(d));
}

template <DType T, int R, int P, bool kFull>
inline void qpair_step(const unsigned char* w, std::int64_t ws, std::int64_t q, const QPairX* xs,
                       __m512 (&acc)[R][P]) noexcept {
  constexpr std::int64_t kPair = 2 * block_bytes(T);
  __m512i wv[R];
  __m512 dw[R];
  for (int r = 0; r < R; ++r) {
    const unsigned char* blk = w + r * ws + q * kPair;
    if constexpr (kPrefetchBytes > 0) prefetch(blk + kPrefetchBytes);
    wv[r] = load_wpair<T, kFull>(blk);
    dw[r] = load_dwpair<T, kFull>(blk);
  }
  for (int p = 0; p < P; ++p) {
    const __m512i xv = _mm512_load_si512(xs[p].x + q);
    const __m512i seed = _mm512_load_si512(xs[p].seed + q);
    const __m512 dx = _mm512_load_ps(reinterpret_cast<const float*>(xs[p].dx + q));
    for (int r = 0; r < R; ++r) {
      const __m512i dot = _mm512_dpbusd_epi32(seed, wv[r], xv);
      acc[r][p] = _mm512_fmadd_ps(_mm512_mul_ps(dw[r], dx), _mm512_maskz_cvtepi32_ps(0xffff, dot), acc[r][p]);
    }
  }
}

[[nodiscard]] inline float hsum512(__m512 v) noexcept {
  const __m256 lo = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, _mm512_castps_pd(v), 0));
  const __m256 hi = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, _mm512_castps_pd(v), 1));
  return hsum(_mm256_add_ps(lo, hi));
}

// W (R rows of nb blocks, stride ws bytes) @ P prepared positions -> y[p * ys + r]
template <DType T, int R, int P, int kNb>
inline void qpair_tile(const unsigned char* w, std::int64_t ws, const QPairX* xs, Extent<kNb> nb, float* y,
                       std::int64_t ys) noexcept {
  __m512 acc[R][P];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) acc[r][p] = _mm512_setzero_ps();
  const std::int64_t full = nb.value() / 2;
  for (std::int64_t q = 0; q < full; ++q) qpair_step<T, R, P, true>(w, ws, q, xs, acc);
  if (nb.value() % 2 != 0) qpair_step<T, R, P, false>(w, ws, full, xs, acc);
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) y[p * ys + r] = hsum512(acc[r][p]);
}
#else
#define EDGESPEC_QPAIR 0
#endif

// ---------------------------------------------------------------- float dot products (F32/F16/BF16 x f32)
#if defined(__AVX512F__)
using FVec = __m512;
inline constexpr int kFW = 16;
[[nodiscard]] inline FVec fvec_zero() noexcept { return _mm512_setzero_ps(); }
[[nodiscard]] inline FVec fvec_load(const float* p) noexcept { return _mm512_loadu_ps(p); }
[[nodiscard]] inline FVec fvec_fma(FVec a, FVec b, FVec c) noexcept { return _mm512_fmadd_ps(a, b, c); }
// (The maskz forms with a full mask avoid GCC 12's false -Wmaybe-uninitialized on the unmasked ones.)
[[nodiscard]] inline float fvec_sum(FVec v) noexcept {
  const __m256 lo = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, _mm512_castps_pd(v), 0));
  const __m256 hi = _mm256_castpd_ps(_mm512_maskz_extractf64x4_pd(0xff, _mm512_castps_pd(v), 1));
  return hsum(_mm256_add_ps(lo, hi));
}
template <DType T>
[[nodiscard]] inline FVec load_weights(const unsigned char* p) noexcept {
  if constexpr (T == DType::F32) return _mm512_loadu_ps(p);
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  if constexpr (T == DType::F16) return _mm512_maskz_cvtph_ps(0xffff, h);
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xffff, _mm512_maskz_cvtepu16_epi32(0xffff, h), 16));
}
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
using FVec = __m256;
inline constexpr int kFW = 8;
[[nodiscard]] inline FVec fvec_zero() noexcept { return _mm256_setzero_ps(); }
[[nodiscard]] inline FVec fvec_load(const float* p) noexcept { return _mm256_loadu_ps(p); }
[[nodiscard]] inline FVec fvec_fma(FVec a, FVec b, FVec c) noexcept { return _mm256_fmadd_ps(a, b, c); }
[[nodiscard]] inline float fvec_sum(FVec v) noexcept { return hsum(v); }
template <DType T>
[[nodiscard]] inline FVec load_weights(const unsigned char* p) noexcept {
  if constexpr (T == DType::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (T == DType::F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
#else
using FVec = float;
inline constexpr int kFW = 1;
[[nodiscard]] inline FVec fvec_zero() noexcept { return 0.0f; }
[[nodiscard]] inline FVec fvec_load(const float* p) noexcept { return *p; }
[[nodiscard]] inline FVec fvec_fma(FVec a, FVec b, FVec c) noexcept { return a * b + c; }
[[nodiscard]] inline float fvec_sum(FVec v) noexcept { return v; }
template <DType T>
[[nodiscard]] inline FVec load_weights(const unsigned char* p) noexcept;
#endif

// One weight value at p, any alignment.
template <DType T>
[[nodiscard]] inline float load_weight(const unsigned char* p) noexcept {
  if constexpr (T == DType::F32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  } else {
    std::uint16_t h;
    std::memcpy(&h, p, 2);
    return T == DType::F16 ? half_to_float(h) : bf16_to_fp32(h);
  }
}

#if !defined(__AVX512F__) && !(defined(__AVX2__) && defined(__FMA__) && defined(__F16C__))
template <DType T>
[[nodiscard]] inline FVec load_weights(const unsigned char* p) noexcept {
  return load_weight<T>(p);
}
#endif

// W (R rows of k values of type T, stride ws bytes) @ x (P positions of k, stride xs) f32 -> y[p * ys + r]
// Each weight vector is loaded once for the P positions; the operation sequence per (row, position) does
// not depend on R or P, so batched results are bit-identical to single-position ones.
template <DType T, int R, int P, int kK>
inline void dot_tile_float(const unsigned char* w, std::int64_t ws, const float* x, std::int64_t xs, Extent<kK> k,
                           float* y, std::int64_t ys) noexcept {
  constexpr std::int64_t kSize = block_bytes(T);
  FVec acc[R][P];
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) acc[r][p] = fvec_zero();
  const std::int64_t k_vec = k.value() - k.value() % kFW;
  std::int64_t i = 0;
  for (; i < k_vec; i += kFW) {
    FVec xv[P];
    for (int p = 0; p < P; ++p) xv[p] = fvec_load(x + p * xs + i);
    for (int r = 0; r < R; ++r) {
      if constexpr (kPrefetchBytes > 0) prefetch(w + r * ws + i * kSize + kPrefetchBytes);
      const FVec wv = load_weights<T>(w + r * ws + i * kSize);
      for (int p = 0; p < P; ++p) acc[r][p] = fvec_fma(wv, xv[p], acc[r][p]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int p = 0; p < P; ++p) {
      float s = fvec_sum(acc[r][p]);
      for (std::int64_t t = i; t < k.value(); ++t) s += load_weight<T>(w + r * ws + t * kSize) * x[p * xs + t];
      y[p * ys + r] = s;
    }
}

// ---------------------------------------------------------------- drivers

// Reusable 64-byte aligned scratch of the calling thread (grows, never shrinks).
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { std::free(p_); }
  [[nodiscard]] void* get(std::size_t bytes) {
    if (bytes > cap_) {
      std::free(p_);
      p_ = nullptr;
      cap_ = (std::max(bytes, cap_ * 2) + 63) / 64 * 64;
      p_ = std::aligned_alloc(64, cap_);
      if (p_ == nullptr) {
        cap_ = 0;
        throw std::bad_alloc();
      }
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  std::size_t cap_ = 0;
};

inline Scratch& activation_scratch() {
  thread_local Scratch s;
  return s;
}

// Rows per part so that a part is worth waking a thread for (~16k multiply-adds), in whole tiles.
[[nodiscard]] inline std::int64_t row_grain(std::int64_t cols, std::int64_t n) noexcept {
  const std::int64_t work = std::max<std::int64_t>(cols * n, 1);
  const std::int64_t rows = (16384 + work - 1) / work;
  return std::max<std::int64_t>(kTileRows, (rows + kTileRows - 1) / kTileRows * kTileRows);
}

// Positions per register tile, and positions per chunk: a chunk's activations stay in L2 while the rows of a
// part stream past them, so W is read from memory ceil(n / kPosChunk) times per call.
inline constexpr int kTilePos = 4;
inline constexpr std::int64_t kPosChunk = 16;

template <int N>
using Int = std::integral_constant<int, N>;

// Loop nest of one thread's rows [r0, r1) and all n positions; kernel(r, j, Int<R>, Int<P>) computes
// y[j..j+P, r..r+R]:
//
//   for chunk of kPosChunk positions
//     for tile of kTileRows rows                                  (then single rows)
//       for tile of kTilePos positions (then 3, 2, 1)
//         P == 1: kernel(8 rows x 1)      else: kernel(4 rows x P) twice
template <class Kernel>
inline void for_each_tile(std::int64_t r0, std::int64_t r1, std::int64_t n, Kernel&& kernel) {
  auto positions = [&](std::int64_t j0, std::int64_t j1, auto rows_tile) {
    std::int64_t j = j0;
    for (; j + kTilePos <= j1; j += kTilePos) rows_tile(j, Int<kTilePos>{});
    switch (j1 - j) {
      case 3: rows_tile(j, Int<3>{}); break;
      case 2: rows_tile(j, Int<2>{}); break;
      case 1: rows_tile(j, Int<1>{}); break;
      default: break;
    }
  };
  for (std::int64_t c = 0; c < n; c += kPosChunk) {
    const std::int64_t c1 = std::min(n, c + kPosChunk);
    std::int64_t r = r0;
    for (; r + kTileRows <= r1; r += kTileRows)
      positions(c, c1, [&](std::int64_t j, auto pt) {
        if constexpr (decltype(pt)::value == 1 || kTileRows % 4 != 0) {
          kernel(r, j, Int<kTileRows>{}, pt);
        } else {
          for (int h = 0; h < kTileRows; h += 4) kernel(r + h, j, Int<4>{}, pt);
        }
      });
    for (; r < r1; ++r) positions(c, c1, [&](std::int64_t j, auto pt) { kernel(r, j, Int<1>{}, pt); });
  }
}

// W (rows, cols) float-like @ x (n, cols) -> y (n, rows)
template <DType T, int kCols>
void matmul_float(ThreadPool& pool, const MatrixView& w, const float* x, std::int64_t n, float* y) {
  const Extent<kCols> cols(w.cols);
  const std::int64_t ws = row_bytes(T, w.cols);
  const auto* base = static_cast<const unsigned char*>(w.data);
  pool.parallel_for(
      w.rows,
      [&](std::int64_t r0, std::int64_t r1) {
        for_each_tile(r0, r1, n, [&](std::int64_t r, std::int64_t j, auto rt, auto pt) {
          dot_tile_float<T, decltype(rt)::value, decltype(pt)::value>(base + r * ws, ws, x + j * cols.value(),
                                                                      cols.value(), cols, y + j * w.rows + r, w.rows);
        });
      },
      row_grain(w.cols, n));
}

// W (rows, cols) Q8_0/Q4_0 @ x (n, cols) -> y (n, rows), activations quantized to Q8_0 first
template <DType T, int kCols>
void matmul_quant(ThreadPool& pool, const MatrixView& w, const float* x, std::int64_t n, float* y) {
  constexpr int kNb = kCols == dynamic_extent ? dynamic_extent : kCols / kQK;
  const Extent<kNb> nb(w.cols / kQK);
  const std::int64_t cols = w.cols;
  const std::int64_t ws = row_bytes(T, cols);
  const auto* base = static_cast<const unsigned char*>(w.data);
  auto prepare_all = [&](auto&& prepare) {
    if (n * cols <= 65536) {
      prepare(std::int64_t{0}, n);
    } else {
      pool.parallel_for(n, prepare);
    }
  };

#if EDGESPEC_QPAIR
  // (n, nb2) prepared block pairs, kPairBytes each
  const std::int64_t nb2 = (nb.value() + 1) / 2;
  const std::int64_t stride = nb2 * kPairBytes;
  auto* prepared = static_cast<unsigned char*>(activation_scratch().get(static_cast<std::size_t>(n * stride)));
  prepare_all([&](std::int64_t j0, std::int64_t j1) {
    for (std::int64_t j = j0; j < j1; ++j) qpair_prepare<T>(x + j * cols, nb.value(), prepared + j * stride);
  });
  pool.parallel_for(
      w.rows,
      [&](std::int64_t r0, std::int64_t r1) {
        for_each_tile(r0, r1, n, [&](std::int64_t r, std::int64_t j, auto rt, auto pt) {
          constexpr int P = decltype(pt)::value;
          QPairX xs[P];
          for (int p = 0; p < P; ++p) xs[p] = qpair_view(prepared + (j + p) * stride, nb2);
          qpair_tile<T, decltype(rt)::value, P>(base + r * ws, ws, xs, nb, y + j * w.rows + r, w.rows);
        });
      },
      row_grain(cols, n));
#else
  // xq (n, cols) int8 | xd (n, nb) f32, in one buffer
  const std::size_t q_bytes = static_cast<std::size_t>((n * cols + 63) / 64 * 64);
  auto* scratch = static_cast<unsigned char*>(
      activation_scratch().get(q_bytes + static_cast<std::size_t>(n * nb.value()) * sizeof(float)));
  auto* xq = reinterpret_cast<std::int8_t*>(scratch);
  auto* xd = reinterpret_cast<float*>(scratch + q_bytes);
  prepare_all([&](std::int64_t j0, std::int64_t j1) {
    for (std::int64_t i = j0 * nb.value(); i < j1 * nb.value(); ++i)
      xd[i] = quantize_block_q8_0(x + i * kQK, xq + i * kQK);
  });
  pool.parallel_for(
      w.rows,
      [&](std::int64_t r0, std::int64_t r1) {
        for_each_tile(r0, r1, n, [&](std::int64_t r, std::int64_t j, auto rt, auto pt) {
          constexpr int R = decltype(rt)::value;
          for (int p = 0; p < decltype(pt)::value; ++p) {
            float out[R];
            dot_rows_quant<T, R>(base + r * ws, ws, xq + (j + p) * cols, xd + (j + p) * nb.value(), nb, out);
            for (int i = 0; i < R; ++i) y[(j + p) * w.rows + r + i] = out[i];
          }
        });
      },
      row_grain(cols, n));
#endif
}

}  // namespace detail

// y (n, rows) = x (n, cols) @ W^T for W (rows, cols) of any DType.
// kCols fixes cols at compile time (checked against w.cols); Q8_0/Q4_0 need cols % 32 == 0 and quantize x
// to Q8_0 (as GGML does) before integer dot products. x and y must not overlap.
template <int kCols = dynamic_extent>
void matmul(ThreadPool& pool, const MatrixView& w, const float* x, std::int64_t n, float* y) {
  ES_CHECK(w.rows >= 0 && w.cols >= 0 && n >= 0, "matmul: negative size (rows ", w.rows, ", cols ", w.cols,
           ", n ", n, ")");
  ES_CHECK(w.cols % block_values(w.type) == 0, "matmul: ", name(w.type), " weights need cols to be a multiple of ",
           block_values(w.type), " (got ", w.cols, ")");
  if constexpr (kCols != dynamic_extent) {
    ES_CHECK(w.cols == kCols, "matmul<", kCols, ">: weight matrix has ", w.cols, " columns, expected ", kCols);
  }
  if (n == 0 || w.rows == 0) return;
  if (w.cols == 0) {
    std::fill(y, y + n * w.rows, 0.0f);
    return;
  }
  switch (w.type) {
    case DType::F32: return detail::matmul_float<DType::F32, kCols>(pool, w, x, n, y);
    case DType::F16: return detail::matmul_float<DType::F16, kCols>(pool, w, x, n, y);
    case DType::BF16: return detail::matmul_float<DType::BF16, kCols>(pool, w, x, n, y);
    case DType::Q8_0: return detail::matmul_quant<DType::Q8_0, kCols>(pool, w, x, n, y);
    case DType::Q4_0: return detail::matmul_quant<DType::Q4_0, kCols>(pool, w, x, n, y);
  }
  throw_error("matmul: unsupported weight type ", name(w.type));
}

}  // namespace edgespec
