// The weight-times-activations kernel behind every projection:
//
//   matmul(pool, W (rows, cols), x (n, cols), n) -> y (n, rows) = x @ W^T
//
// Schedule (the algorithm above is all it computes):
//
//   [quantized W]  x (n, cols) f32 -> activations of activation_type(W): Q8_0 (+ per-block sums), Q8_1 or Q8_K
//                                                                                      once per call, shared
//   [F16/BF16 W]   x rounded to F16/BF16 (as llama.cpp converts them), then f32 FMA
//   packed Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/F16 (AVX-512 VNNI: also Q4_K/Q6_K) W (MatrixView::packed, see packed.hpp,
//   packed_k.hpp), parallel over 16-row groups:
//     for chunk of 16 positions                        (activations of a chunk stay in L2)
//       for group of 16 rows                           (one sequential stream, read from memory once per chunk)
//         for tile of kPackedTilePos positions,        (16 rows x P positions in registers, each weight
//             then one of the 1 .. kPackedTilePos-1 left  vector loaded once and used for all P positions;
//                                                       Q8_0/Q4_0 8, F16 6 with AVX-512, else 4)
//   row-major W (F32, BF16, the other block types; rows that are not packed), parallel over 8-row aligned parts:
//     for chunk of 16 positions
//       for tile of 8 rows, then single rows
//         for tile of 4 positions, then 3, 2, 1
//           n == 1: 8 rows x 1 position; else 2 x (4 rows x P positions)
//
// so W is streamed from memory ceil(n / 16) times per call and each weight load feeds P dot products.
// Inner products by target:
//
//   packed Q8_0/Q4_0 x Q8_0, AVX-512 VNNI: one vpdpbusd per 4 columns of 16 rows (see packed.hpp); Q4_1 x Q8_1
//                the same, then + m_w s_x per block; Q5_0 x Q8_0, Q5_1 x Q8_1: the fifth bits OR-ed in
//   packed F16 x f32: one FMA per column of 16 rows (converted from one 256-bit load)
//   packed Q4_K/Q6_K x Q8_K, AVX-512 VNNI: vpdpbusd per 4 columns of 16 rows, then the sub-block scales
//                (vpdpwssd / vpmulld; see packed_k.hpp)
//   row-major Q8_0/Q4_0 x Q8_0: per position, sum |w| * sign(x, w) per 4 bytes: AVX-512 VL VNNI |
//                AVX-VNNI | AVX2 vpmaddubsw + vpmaddwd | scalar (Q4_0: dpbusd(u, x) - 8 sum(x))
//   F32/F16/BF16 converted on load (F16C / AVX-512), FMA with f32 activations
//   IQ4_NL, and Q4_1/Q5_0/Q5_1 rows not packed: dot_legacy.hpp; Q2_K..Q6_K: dot_k.hpp (integer sums per block,
//                each block or super-block unpacked once per tile of positions; Q4_K/Q6_K AVX-512 VNNI | AVX2 |
//                scalar)
//
// Every (row, position) output is computed by the same operation sequence whatever the tile shape, the
// thread count or n, so a batch of n positions equals n single-position calls bit for bit.
// Row-major weights may be memory-mapped at any alignment: every row-major weight load is unaligned.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX2__) || defined(__AVX512F__) || defined(__F16C__)
#include <immintrin.h>
#endif

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/core/extent.hpp"
#include "edgespec/kernels/dot_k.hpp"
#include "edgespec/kernels/dot_legacy.hpp"
#include "edgespec/kernels/packed.hpp"
#include "edgespec/kernels/quantize.hpp"
#include "edgespec/runtime/thread_pool.hpp"

namespace edgespec {

// A row-major weight matrix: `rows` output features, each `cols` values in row_bytes(type, cols) bytes.
struct MatrixView {
  DType type;
  std::int64_t rows;
  std::int64_t cols;
  const void* data;              // row-major rows, row_bytes(type, cols) each
  const void* packed = nullptr;  // optional, 64-byte aligned: the same rows' whole groups in the packed layout of
                                 // their type (Q8_0/Q4_0/F16: kernels/packed.hpp; Q4_K/Q6_K: packed_k.hpp), which
                                 // matmul streams instead where it can
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
// (per position; rows without a packed copy, and every row on targets without AVX-512 VNNI)
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

// slot 0: the activations of the current matmul call; slot 1: a second layout of them (matmul_quant).
inline Scratch& activation_scratch(int slot = 0) {
  thread_local Scratch s[2];
  return s[slot];
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

// f(j, Int<P>) for the position tiles of [j0, j1): kMax at a time, then one tile of the 1 .. kMax-1 left.
template <int kMax = kTilePos, class F>
inline void for_each_position_tile(std::int64_t j0, std::int64_t j1, F&& f) {
  std::int64_t j = j0;
  for (; j + kMax <= j1; j += kMax) f(j, Int<kMax>{});
  const std::int64_t left = j1 - j;
  [&]<int... P>(std::integer_sequence<int, P...>) {
    (void)((left == P + 1 ? (f(j, Int<P + 1>{}), true) : false) || ...);
  }(std::make_integer_sequence<int, kMax - 1>{});
}

// Rows per kernel call at one position in the row-major loop nest of F32/F16/BF16 and Q8_0/Q4_0 weights.
// AVX-512 builds keep tiles of kTileRows interleaved rows. Other builds stream the rows in turn, so that a
// thread's rows are one sequential stream (software-prefetched kPrefetchBytes ahead, into the next rows): on
// Zen 3 (AVX2) SmolLM2's short rows (576 columns: 1152 bytes F16) in 8 interleaved streams, which the hardware
// prefetchers do not follow, read at ~5 GB/s, in turn at ~9 GB/s (measured for commit c6a6f24;
// docs/performance.md, "AVX2 choices").
#if defined(__AVX512F__)
inline constexpr int kDecodeRows = kTileRows;
#else
inline constexpr int kDecodeRows = 1;
#endif

// Loop nest of one thread's rows [r0, r1) and all n positions; kernel(r, j, Int<R>, Int<P>) computes
// y[j..j+P, r..r+R]:
//
//   for chunk of kPosChunk positions
//     for tile of kTileRows rows                                  (then single rows)
//       for tile of kMaxPos positions (then the rest in one tile)
//         P == 1: kernel(kRows1 rows x 1), kTileRows / kRows1 times      else: kernel(4 rows x P) twice
template <int kRows1, int kMaxPos = kTilePos, class Kernel>
inline void for_each_tile(std::int64_t r0, std::int64_t r1, std::int64_t n, Kernel&& kernel) {
  static_assert(kTileRows % kRows1 == 0, "for_each_tile: kRows1 must divide kTileRows");
  for (std::int64_t c = 0; c < n; c += kPosChunk) {
    const std::int64_t c1 = std::min(n, c + kPosChunk);
    std::int64_t r = r0;
    for (; r + kTileRows <= r1; r += kTileRows)
      for_each_position_tile<kMaxPos>(c, c1, [&](std::int64_t j, auto pt) {
        if constexpr (decltype(pt)::value == 1) {
          for (int h = 0; h < kTileRows; h += kRows1) kernel(r + h, j, Int<kRows1>{}, pt);
        } else if constexpr (kTileRows % 4 != 0) {
          kernel(r, j, Int<kTileRows>{}, pt);
        } else {
          for (int h = 0; h < kTileRows; h += 4) kernel(r + h, j, Int<4>{}, pt);
        }
      });
    for (; r < r1; ++r)
      for_each_position_tile<kMaxPos>(c, c1, [&](std::int64_t j, auto pt) { kernel(r, j, Int<1>{}, pt); });
  }
}

// W (rows, cols) float-like @ x (n, cols) -> y (n, rows); F16 through its packed groups where w has them.
// x (k,) -> y (k,) rounded to the precision of T (F16 or BF16, nearest even) and widened back to f32: llama.cpp
// converts the activations of an F16/BF16 product to the weights' type first (its vec_dot_type).
template <DType T>
inline void round_activations(const float* x, float* y, std::int64_t k) noexcept {
  std::int64_t i = 0;
  if constexpr (T == DType::F16) {
#if defined(__F16C__) && defined(__AVX__)
    for (; i + 8 <= k; i += 8)
      _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
#endif
    for (; i < k; ++i) y[i] = half_to_float(fp32_to_fp16(x[i]));
  } else {
    for (; i < k; ++i) y[i] = bf16_to_fp32(fp32_to_bf16(x[i]));
  }
}

template <DType T, int kCols>
void matmul_float(ThreadPool& pool, const MatrixView& w, const float* x_in, std::int64_t n, float* y) {
  const Extent<kCols> cols(w.cols);
  const float* x = x_in;
  if constexpr (T == DType::F16 || T == DType::BF16) {
    auto* rounded = static_cast<float*>(activation_scratch().get(static_cast<std::size_t>(n * w.cols) * sizeof(float)));
    round_activations<T>(x_in, rounded, n * w.cols);
    x = rounded;
  }
  const std::int64_t ws = row_bytes(T, w.cols);
  const auto* base = static_cast<const unsigned char*>(w.data);
  auto row_major = [&](std::int64_t r0, std::int64_t r1) {
    for_each_tile<kDecodeRows>(r0, r1, n, [&](std::int64_t r, std::int64_t j, auto rt, auto pt) {
      dot_tile_float<T, decltype(rt)::value, decltype(pt)::value>(base + r * ws, ws, x + j * cols.value(),
                                                                  cols.value(), cols, y + j * w.rows + r, w.rows);
    });
  };
#if EDGESPEC_PACKED_KERNELS
  if constexpr (T == DType::F16) {
    if (w.packed != nullptr) {
      ES_CHECK(packable(T, w.cols), "matmul: packed F16 weights need cols to be a multiple of 4 (got ", w.cols, ")");
      ES_CHECK(reinterpret_cast<std::uintptr_t>(w.packed) % 64 == 0,
               "matmul: packed weights must be 64-byte aligned (allocate them with allocate_aligned)");
      const std::int64_t groups = w.rows / kPackRows, gs = packed_group_bytes(T, cols.value());
      const auto* packed = static_cast<const unsigned char*>(w.packed);
      // The same loop nest as matmul_packed_blocks. (Written out in both: a shared driver taking the
      // tile as a lambda measured 15% slower for Q8_0 decode with GCC 12, for reasons not found.)
      pool.parallel_for(
          groups,
          [&](std::int64_t g0, std::int64_t g1) {
            const std::int64_t ahead = n == 1 ? kPackedPrefetchBytes<T, 1> : kPackedPrefetchBytes<T, 2>;
            const std::int64_t warm = std::min(ahead, (g1 - g0) * gs);
            for (std::int64_t off = 0; off < warm; off += 64) prefetch(packed + g0 * gs + off);
            for (std::int64_t c = 0; c < n; c += kPosChunk) {
              for (std::int64_t g = g0; g < g1; ++g)
                for_each_position_tile<kPackedTilePosF16>(c, std::min(n, c + kPosChunk), [&](std::int64_t j, auto pt) {
                  packed_tile_f16<decltype(pt)::value>(packed + g * gs, cols.value(), x + j * cols.value(),
                                                       cols.value(), y + j * w.rows + g * kPackRows, w.rows);
                });
            }
          },
          std::max<std::int64_t>(1, row_grain(w.cols, n) / kPackRows));
      row_major(groups * kPackRows, w.rows);  // < 16 rows: not worth waking the pool
      return;
    }
  }
#endif
  pool.parallel_for(w.rows, row_major, row_grain(w.cols, n));
}

// Q8_0 activation arrays for n positions of nb blocks in scratch `slot`: q (n * nb * 32) int8 | d | seed.
struct ActArrays {
  std::int8_t* q;
  float* d;
  std::int32_t* seed;
};
inline ActArrays activation_arrays(int slot, std::int64_t n, std::int64_t nb) {
  const std::size_t q_bytes = static_cast<std::size_t>((n * nb * kQK + 63) / 64 * 64);
  auto* scratch = static_cast<unsigned char*>(
      activation_scratch(slot).get(q_bytes + static_cast<std::size_t>(n * nb) * (sizeof(float) + sizeof(std::int32_t))));
  auto* d = reinterpret_cast<float*>(scratch + q_bytes);
  return {reinterpret_cast<std::int8_t*>(scratch), d, reinterpret_cast<std::int32_t*>(d + n * nb)};
}

// q[i * 32 ..] <- block i of x quantized, d[i] its scale, seed[i] = -offset * sum(q) (128 Q8_0, 8 Q4_0, 16 Q5_0)
template <DType T>
inline void quantize_act_block(const float* x, const ActArrays& a, std::int64_t i) noexcept {
  constexpr std::int32_t kOffset = T == DType::Q8_0 ? 128 : T == DType::Q5_0 ? 16 : 8;
  a.d[i] = quantize_block_q8_0_act(x, a.q + i * kQK);
  std::int32_t sum = 0;
  for (int k = 0; k < kQK; ++k) sum += a.q[i * kQK + k];
  a.seed[i] = -kOffset * sum;
}

// x (n, cols) f32 -> Q8_0 activations in one buffer: q (n, cols) int8 | d (n, nb) f32 | seed (n, nb) int32,
// quantized as llama.cpp's CPU backend quantizes activations (quantize_block_q8_0_act, not the weights' rounding),
// seed = -offset * sum(q) per block (the packed kernels' dpbusd correction; offset 128 Q8_0, 8 Q4_0).
// views (n,) receives one PackedX per position.
template <DType T>
inline void prepare_activations(ThreadPool& pool, const float* x, std::int64_t n, std::int64_t cols,
                                PackedX* views) {
  const std::int64_t nb = cols / kQK;
  const ActArrays a = activation_arrays(0, n, nb);
  auto prepare = [&](std::int64_t j0, std::int64_t j1) {
    for (std::int64_t i = j0 * nb; i < j1 * nb; ++i) quantize_act_block<T>(x + i * kQK, a, i);
  };
  if (n * cols <= 65536) {
    prepare(0, n);
  } else {
    pool.parallel_for(n, prepare);
  }
  for (std::int64_t j = 0; j < n; ++j) views[j] = {a.q + j * cols, a.d + j * nb, a.seed + j * nb};
}

// x (n, cols) f32 -> the same Q8_0 activations as prepare_activations, block-major for the packed kernels
// (PackedActs: q (nb, n, 32) | d (nb, n) | seed (nb, n)), in scratch slot 1. Q4_1, Q5_1: the Q8_1 activations of
// quantize_row_q8_1, with d and s as floats (s in the seed's place).
template <DType T>
inline PackedActs prepare_packed_activations(ThreadPool& pool, const float* x, std::int64_t n, std::int64_t cols) {
  const std::int64_t nb = cols / kQK;
  const ActArrays a = activation_arrays(1, n, nb);
  auto* s = reinterpret_cast<float*>(a.seed);  // Q4_1, Q5_1
  auto prepare = [&](std::int64_t b0, std::int64_t b1) {  // blocks [b0, b1) of every position: one range of q
    for (std::int64_t b = b0; b < b1; ++b)
      for (std::int64_t j = 0; j < n; ++j) {
        const std::int64_t i = b * n + j;
        if constexpr (packed_has_min(T)) {  // the row-major kernels' Q8_1 block, its d and s as floats
          BlockQ8_1 blk;
          quantize_row_q8_1(x + j * cols + b * kQK, &blk, kQK);
          std::memcpy(a.q + i * kQK, blk.q, kQK);
          a.d[i] = half_to_float(blk.d);
          s[i] = half_to_float(blk.s);
        } else {
          quantize_act_block<T>(x + j * cols + b * kQK, a, i);
        }
      }
  };
  if (n * cols <= 65536) {
    prepare(0, nb);
  } else {
    pool.parallel_for(nb, prepare, 8);
  }
  if constexpr (packed_has_min(T)) return {a.q, a.d, nullptr, n, s};
  else return {a.q, a.d, a.seed, n};
}

#if EDGESPEC_PACKED_KERNELS
// The packed groups of a Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 matrix @ prepared activations -> rows
// [0, 16 * groups) of y (n, rows): groups in parallel; per chunk of kPosChunk positions, each group once, in
// tiles of up to kPackedTilePos positions.
template <DType T, int kNb = dynamic_extent>
inline void matmul_packed_blocks(ThreadPool& pool, const MatrixView& w, const PackedActs& acts, std::int64_t n,
                                 float* y) {
  ES_CHECK(reinterpret_cast<std::uintptr_t>(w.packed) % 64 == 0,
           "matmul: packed weights must be 64-byte aligned (allocate them with allocate_aligned)");
  const Extent<kNb> nb(w.cols / kQK);  // blocks per row (a literal where the model fixes cols)
  const std::int64_t groups = w.rows / kPackRows, gs = packed_group_bytes(T, nb.value());
  const auto* packed = static_cast<const unsigned char*>(w.packed);
  pool.parallel_for(
      groups,
      [&](std::int64_t g0, std::int64_t g1) {
        // with software prefetch on: the lines packed_tile's own prefetches skip, the first
        // kPackedPrefetchBytes of this part (at the tile shape the first tile has)
        const std::int64_t ahead = n == 1 ? kPackedPrefetchBytes<T, 1> : kPackedPrefetchBytes<T, 2>;
        const std::int64_t warm = std::min(ahead, (g1 - g0) * gs);
        for (std::int64_t off = 0; off < warm; off += 64) prefetch(packed + g0 * gs + off);
        for (std::int64_t c = 0; c < n; c += kPosChunk) {
          for (std::int64_t g = g0; g < g1; ++g)
            for_each_position_tile<kPackedTilePos>(c, std::min(n, c + kPosChunk), [&](std::int64_t j, auto pt) {
              packed_tile<T, decltype(pt)::value>(packed + g * gs, nb.value(), acts, j, y + j * w.rows + g * kPackRows,
                                                  w.rows);
            });
        }
      },
      std::max<std::int64_t>(1, row_grain(w.cols, n) / kPackRows));
}
#endif

// W (rows, cols) Q8_0/Q4_0 @ x (n, cols) -> y (n, rows), activations quantized to Q8_0 first. The packed
// groups of W (if any) go through the packed kernels, the remaining rows through dot_rows_quant.
template <DType T, int kCols>
void matmul_quant(ThreadPool& pool, const MatrixView& w, const float* x, std::int64_t n, float* y) {
  constexpr int kNb = kCols == dynamic_extent ? dynamic_extent : kCols / kQK;
  const Extent<kNb> nb(w.cols / kQK);
  const std::int64_t ws = row_bytes(T, w.cols);
  const auto* base = static_cast<const unsigned char*>(w.data);
  thread_local std::vector<PackedX> views;
  const PackedX* xs = nullptr;  // position-major activations, for the rows read row-major
  auto prepare_row_major = [&] {
    if (views.size() < static_cast<std::size_t>(n)) views.resize(static_cast<std::size_t>(n));
    prepare_activations<T>(pool, x, n, w.cols, views.data());
    xs = views.data();
  };

  auto row_major = [&](std::int64_t r0, std::int64_t r1) {
    for_each_tile<kDecodeRows>(r0, r1, n, [&](std::int64_t r, std::int64_t j, auto rt, auto pt) {
      constexpr int R = decltype(rt)::value;
      for (int p = 0; p < decltype(pt)::value; ++p) {
        float out[R];
        dot_rows_quant<T, R>(base + r * ws, ws, xs[j + p].q, xs[j + p].d, nb, out);
        for (int i = 0; i < R; ++i) y[(j + p) * w.rows + r + i] = out[i];
      }
    });
  };
#if EDGESPEC_PACKED_KERNELS
  if (w.packed != nullptr) {
    matmul_packed_blocks<T, kNb>(pool, w, prepare_packed_activations<T>(pool, x, n, w.cols), n, y);
    const std::int64_t groups = w.rows / kPackRows;
    if (groups * kPackRows < w.rows) {  // < 16 rows: not worth waking the pool
      prepare_row_major();
      row_major(groups * kPackRows, w.rows);
    }
    return;
  }
#endif
  prepare_row_major();
  pool.parallel_for(w.rows, row_major, row_grain(w.cols, n));
}

#if EDGESPEC_PACKED_AVX512
// x (n, cols) f32 -> the Q8_K activations of the row-major K-quant kernels, block-major for the packed Q4_K/Q6_K
// kernels (PackedActsK: q (nb, n, 256) | d (nb, n) | bs (nb, n, 8)), in scratch slot 1.
template <DType T>
inline PackedActsK prepare_packed_activations_k(ThreadPool& pool, const float* x, std::int64_t n, std::int64_t cols) {
  const std::int64_t nb = cols / kQKK;
  const std::size_t q_bytes = static_cast<std::size_t>(n * nb * kQKK);  // a multiple of 256
  auto* scratch = static_cast<unsigned char*>(activation_scratch(1).get(
      q_bytes + static_cast<std::size_t>(n * nb) * (sizeof(float) + kPackedActKWords * sizeof(std::int32_t))));
  auto* q = reinterpret_cast<std::int8_t*>(scratch);
  auto* d = reinterpret_cast<float*>(scratch + q_bytes);
  auto* bs = reinterpret_cast<std::int32_t*>(d + n * nb);
  auto prepare = [&](std::int64_t b0, std::int64_t b1) {
    for (std::int64_t b = b0; b < b1; ++b)
      for (std::int64_t j = 0; j < n; ++j)
        quantize_act_block_k<T>(x + j * cols + b * kQKK, q + (b * n + j) * kQKK, d + b * n + j,
                                bs + (b * n + j) * kPackedActKWords);
  };
  if (n * cols <= 65536) {
    prepare(0, nb);
  } else {
    pool.parallel_for(nb, prepare);
  }
  return {q, d, bs, n};
}

// The packed groups of a Q4_K/Q6_K matrix @ x (n, cols) -> rows [0, 16 * groups) of y (n, rows): the loop nest
// of matmul_packed_blocks (groups in parallel; per chunk of positions, tiles of up to kPackedTilePos),
// written out as matmul_float's is (a shared driver taking the tile as a lambda measured slower there).
template <DType T>
inline void matmul_packed_k(ThreadPool& pool, const MatrixView& w, const float* x, std::int64_t n, float* y) {
  ES_CHECK(reinterpret_cast<std::uintptr_t>(w.packed) % 64 == 0,
           "matmul: packed weights must be 64-byte aligned (allocate them with allocate_aligned)");
  const std::int64_t nb = w.cols / kQKK, groups = w.rows / kPackRows, gs = packed_group_bytes(T, nb);
  const auto* packed = static_cast<const unsigned char*>(w.packed);
  const PackedActsK acts = prepare_packed_activations_k<T>(pool, x, n, w.cols);
  pool.parallel_for(
      groups,
      [&](std::int64_t g0, std::int64_t g1) {
        for (std::int64_t c = 0; c < n; c += kPosChunk)
          for (std::int64_t g = g0; g < g1; ++g)
            for_each_position_tile<kPackedTilePos>(c, std::min(n, c + kPosChunk), [&](std::int64_t j, auto pt) {
              float* out = y + j * w.rows + g * kPackRows;
              if constexpr (T == DType::Q4_K) packed_tile_q4_K<decltype(pt)::value>(packed + g * gs, nb, acts, j, out, w.rows);
              else packed_tile_q6_K<decltype(pt)::value>(packed + g * gs, nb, acts, j, out, w.rows);
            });
      },
      std::max<std::int64_t>(1, row_grain(w.cols, n) / kPackRows));
}
#endif

// W (rows, cols) of a block type whose activations have their own block type A = activation_type(T) (Q5_0 and
// IQ4_NL: Q8_0; Q4_1 and Q5_1: Q8_1; K-quants: Q8_K) @ x (n, cols) -> y (n, rows). x is quantized to A once per
// call; then, in matmul's row-major loop nest, a tile of R rows x P positions is one dot_rows_* call over all
// blocks (P > 1: each weight block unpacked once per row for the P positions).
template <DType T, int kCols>
void matmul_block(ThreadPool& pool, const MatrixView& w, const float* x, std::int64_t n, float* y) {
  constexpr DType A = activation_type(T);
  const std::int64_t cols = w.cols, nb = cols / block_values(T), ws = row_bytes(T, cols);
  const auto* base = static_cast<const unsigned char*>(w.data);
  // The packed groups first (Q4_1, Q5_0, Q5_1; with AVX-512 VNNI Q4_K, Q6_K); the rows from r_begin on are read
  // row-major.
  std::int64_t r_begin = 0;
  if (w.packed != nullptr) {
#if EDGESPEC_PACKED_KERNELS
    if constexpr (T == DType::Q4_1 || T == DType::Q5_0 || T == DType::Q5_1) {
      constexpr int kNb = kCols == dynamic_extent ? dynamic_extent : kCols / kQK;
      matmul_packed_blocks<T, kNb>(pool, w, prepare_packed_activations<T>(pool, x, n, cols), n, y);
      r_begin = w.rows / kPackRows * kPackRows;
    }
#endif
#if EDGESPEC_PACKED_AVX512
    if constexpr (T == DType::Q4_K || T == DType::Q6_K) {
      matmul_packed_k<T>(pool, w, x, n, y);
      r_begin = w.rows / kPackRows * kPackRows;
    }
#endif
    if (r_begin == w.rows) return;
  }
  if constexpr (A == DType::Q8_0) {
    thread_local std::vector<PackedX> views;
    if (views.size() < static_cast<std::size_t>(n)) views.resize(static_cast<std::size_t>(n));
    prepare_activations<DType::Q8_0>(pool, x, n, cols, views.data());
    const PackedX* xs = views.data();
    // Q5_0's -16 sum(x) lanes, once per position for every row of a batch (n, nb, 8)
    thread_local std::vector<std::int32_t> offsets;
    if constexpr (T == DType::Q5_0) {
      if (n > 1) {
        offsets.resize(static_cast<std::size_t>(n * nb * 8));
        for (std::int64_t j = 0; j < n; ++j) legacy::q5_0_offsets(xs[j].q, nb, offsets.data() + j * nb * 8);
      }
    }
    const std::int32_t* offs = offsets.data();  // (the workers' thread_local vectors are others)
    pool.parallel_for(w.rows - r_begin, [&](std::int64_t r0, std::int64_t r1) {
      for_each_tile<kTileRows, legacy::kLegacyTilePos>(r_begin + r0, r_begin + r1, n, [&](std::int64_t r,
                                                                                         std::int64_t j, auto rt,
                                                                                         auto pt) {
        constexpr int R = decltype(rt)::value, P = decltype(pt)::value;
        if constexpr (P == 1) {
          float out[R];
          dot_rows_q8_0_acts<T, R>(base + r * ws, ws, xs[j], nb, out);
          for (int i = 0; i < R; ++i) y[j * w.rows + r + i] = out[i];
        } else {  // each weight block unpacked once for the tile's P positions
          const std::int32_t* lanes = T == DType::Q5_0 ? offs + j * nb * 8 : nullptr;
          dot_rows_q8_0_acts_tile<T, R, P>(base + r * ws, ws, xs + j, lanes, nb, y + j * w.rows + r, w.rows);
        }
      });
    }, row_grain(cols, n));
  } else {
    using Block = std::conditional_t<A == DType::Q8_1, BlockQ8_1, BlockQ8_K>;
    const std::int64_t ab = cols / block_values(A);  // activation blocks per position
    auto* acts = static_cast<Block*>(activation_scratch().get(static_cast<std::size_t>(n * ab) * sizeof(Block)));
    auto quantize = [&](std::int64_t j0, std::int64_t j1) {
      for (std::int64_t j = j0; j < j1; ++j) {
        if constexpr (A == DType::Q8_1) quantize_row_q8_1(x + j * cols, acts + j * ab, cols);
        else quantize_row_q8_K(x + j * cols, acts + j * ab, cols);
      }
    };
    if (n * cols <= 65536) quantize(0, n);
    else pool.parallel_for(n, quantize);
    // Q8_1 tiles of 2+ positions read the blocks' f16 d and s as floats, converted once here (n, ab, 2)
    thread_local std::vector<float> q8_1_scales;
    if constexpr (A == DType::Q8_1) {
      if (n > 1) {
        q8_1_scales.resize(static_cast<std::size_t>(2 * n * ab));
        for (std::int64_t i = 0; i < n * ab; ++i) {
          q8_1_scales[static_cast<std::size_t>(2 * i)] = half_to_float(acts[i].d);
          q8_1_scales[static_cast<std::size_t>(2 * i + 1)] = half_to_float(acts[i].s);
        }
      }
    }
    const float* ds = q8_1_scales.data();  // (the workers' thread_local vectors are others)
    pool.parallel_for(w.rows - r_begin, [&](std::int64_t r0, std::int64_t r1) {
      // Q8_1 (legacy) weights take tiles of up to kLegacyTilePos positions, K-quants up to kTilePos
      constexpr int kMaxPos = A == DType::Q8_1 ? legacy::kLegacyTilePos : kTilePos;
      for_each_tile<kTileRows, kMaxPos>(r_begin + r0, r_begin + r1, n, [&](std::int64_t r, std::int64_t j, auto rt,
                                                                         auto pt) {
        constexpr int R = decltype(rt)::value, P = decltype(pt)::value;
        if constexpr (A == DType::Q8_1 && P == 1) {
          float out[R];
          dot_rows_q8_1_acts<T, R>(base + r * ws, ws, acts + j * ab, nb, out);
          for (int i = 0; i < R; ++i) y[j * w.rows + r + i] = out[i];
        } else if constexpr (A == DType::Q8_1) {  // each weight block unpacked once for the tile's P positions
          dot_rows_q8_1_acts_tile<T, R, P>(base + r * ws, ws, acts + j * ab, ds + 2 * j * ab, ab, nb,
                                           y + j * w.rows + r, w.rows);
        } else {  // each super-block unpacked once for the tile's P positions
          dot_rows_q8_K_acts<T, R, P>(base + r * ws, ws, acts + j * ab, ab, nb, y + j * w.rows + r, w.rows);
        }
      });
    }, row_grain(cols, n));
  }
}

}  // namespace detail

// y (n, rows) = x (n, cols) @ W^T for W (rows, cols) of any DType.
// kCols fixes cols at compile time (checked against w.cols). Block types need cols to be a multiple of their block
// (32, K-quants 256) and quantize x to their activation type first (activation_type: Q8_0, Q8_1 or Q8_K, as
// llama.cpp does) for integer dot products; F16/BF16 round x to their own type. x and y must not overlap.
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
    case DType::Q4_1: return detail::matmul_block<DType::Q4_1, kCols>(pool, w, x, n, y);
    case DType::Q5_0: return detail::matmul_block<DType::Q5_0, kCols>(pool, w, x, n, y);
    case DType::Q5_1: return detail::matmul_block<DType::Q5_1, kCols>(pool, w, x, n, y);
    case DType::IQ4_NL: return detail::matmul_block<DType::IQ4_NL, kCols>(pool, w, x, n, y);
    case DType::Q2_K: return detail::matmul_block<DType::Q2_K, kCols>(pool, w, x, n, y);
    case DType::Q3_K: return detail::matmul_block<DType::Q3_K, kCols>(pool, w, x, n, y);
    case DType::Q4_K: return detail::matmul_block<DType::Q4_K, kCols>(pool, w, x, n, y);
    case DType::Q5_K: return detail::matmul_block<DType::Q5_K, kCols>(pool, w, x, n, y);
    case DType::Q6_K: return detail::matmul_block<DType::Q6_K, kCols>(pool, w, x, n, y);
    case DType::Q8_1:
    case DType::Q8_K: break;  // activation types only
  }
  throw_error("matmul: unsupported weight type ", name(w.type));
}

}  // namespace edgespec
