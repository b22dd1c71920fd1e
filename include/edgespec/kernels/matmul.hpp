// The weight-times-activations kernel behind every projection:
//
//   matmul(pool, W (rows, cols), x (n, cols), n) -> y (n, rows) = x @ W^T
//
// Schedule (the algorithm above is all it computes):
//
//   [quantized W]  x (n, cols) f32 -> xq (n, cols) int8 + xd (n, cols/32) f32     once per call, shared
//   parallel over row parts (static, tile aligned):                                 thread t: rows [r0, r1)
//     for each tile of 8 rows                           (8 rows of W, 8 * row_bytes, stay in L1/L2)
//       for j in 0..n: y[j, tile] = 8 dot products of the tile with activation j
//
// so W is streamed from memory once per call whatever n is. Inner products by target:
//
//   Q8_0 x Q8_0  sum |w| * sign(x, w) per 4 bytes: AVX-512 VNNI (vpdpbusd, 256-bit EVEX) | AVX-VNNI |
//                AVX2 vpmaddubsw + vpmaddwd | scalar; then acc += d_w * d_x * float(int32 x 8)
//   Q4_0 x Q8_0  nibbles u in [0, 15] are already unsigned: sum (u - 8) x = dpbusd(u, x) - 8 sum(x),
//                and the -8 sum(x) term seeds the accumulator once per activation block for the tile
//   F32/F16/BF16 converted on load (F16C / AVX-512), FMA with f32 activations
//
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

// W (R rows of k values of type T, stride ws bytes) @ x (k,) f32 -> out (R,)
template <DType T, int R, int kK>
inline void dot_rows_float(const unsigned char* w, std::int64_t ws, const float* x, Extent<kK> k,
                           float* out) noexcept {
  constexpr std::int64_t kSize = block_bytes(T);
  FVec acc[R];
  for (int r = 0; r < R; ++r) acc[r] = fvec_zero();
  const std::int64_t k_vec = k.value() - k.value() % kFW;
  std::int64_t i = 0;
  for (; i < k_vec; i += kFW) {
    const FVec xv = fvec_load(x + i);
    if constexpr (kPrefetchBytes > 0)
      for (int r = 0; r < R; ++r) prefetch(w + r * ws + i * kSize + kPrefetchBytes);
    for (int r = 0; r < R; ++r) acc[r] = fvec_fma(load_weights<T>(w + r * ws + i * kSize), xv, acc[r]);
  }
  for (int r = 0; r < R; ++r) {
    float s = fvec_sum(acc[r]);
    for (std::int64_t t = i; t < k.value(); ++t) s += load_weight<T>(w + r * ws + t * kSize) * x[t];
    out[r] = s;
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

// Calls tile(r, R) for each tile of R rows in [r0, r1): full tiles of kTileRows, then single rows.
template <class Tile>
inline void for_each_tile(std::int64_t r0, std::int64_t r1, Tile&& tile) {
  const std::int64_t full = (r1 - r0) / kTileRows;
  for (std::int64_t t = 0; t < full; ++t) tile(r0 + t * kTileRows, std::integral_constant<int, kTileRows>{});
  const int rest = static_cast<int>((r1 - r0) % kTileRows);  // < kTileRows
  for (int i = 0; i < rest; ++i) tile(r0 + full * kTileRows + i, std::integral_constant<int, 1>{});
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
        for_each_tile(r0, r1, [&](std::int64_t r, auto rt) {
          constexpr int R = decltype(rt)::value;
          for (std::int64_t j = 0; j < n; ++j) {
            float out[R];
            dot_rows_float<T, R>(base + r * ws, ws, x + j * cols.value(), cols, out);
            for (int i = 0; i < R; ++i) y[j * w.rows + r + i] = out[i];
          }
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

  // xq (n, cols) int8 | xd (n, nb) f32, in one buffer
  const std::size_t q_bytes = static_cast<std::size_t>((n * cols + 63) / 64 * 64);
  auto* scratch = static_cast<unsigned char*>(
      activation_scratch().get(q_bytes + static_cast<std::size_t>(n * nb.value()) * sizeof(float)));
  auto* xq = reinterpret_cast<std::int8_t*>(scratch);
  auto* xd = reinterpret_cast<float*>(scratch + q_bytes);
  auto quantize = [&](std::int64_t j0, std::int64_t j1) {
    for (std::int64_t i = j0 * nb.value(); i < j1 * nb.value(); ++i)
      xd[i] = quantize_block_q8_0(x + i * kQK, xq + i * kQK);
  };
  if (n * cols <= 65536) {
    quantize(0, n);
  } else {
    pool.parallel_for(n, quantize);
  }

  pool.parallel_for(
      w.rows,
      [&](std::int64_t r0, std::int64_t r1) {
        for_each_tile(r0, r1, [&](std::int64_t r, auto rt) {
          constexpr int R = decltype(rt)::value;
          for (std::int64_t j = 0; j < n; ++j) {
            float out[R];
            dot_rows_quant<T, R>(base + r * ws, ws, xq + j * cols, xd + j * nb.value(), nb, out);
            for (int i = 0; i < R; ++i) y[j * w.rows + r + i] = out[i];
          }
        });
      },
      row_grain(cols, n));
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
