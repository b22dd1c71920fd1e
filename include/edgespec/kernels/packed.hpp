// Row-interleaved ("packed") Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/F16 weights: the layout the CPU matmul streams.
//
// Row-major, a Q8_0 row is its blocks [d (f16) | qs (32 x int8)] one after another, so a kernel computing 16
// rows at once follows 16 separate streams and shuffles 16 scales per block. Packed, 16 rows form a group
// whose bytes are one sequential stream (same size as the rows it replaces, up to 64 bytes of padding):
//
//   group g = rows [16g, 16g + 16), nb = cols / 32 blocks per row, as ceil(nb / 2) pairs of blocks
//     pair    [quants of block 2i | quants of block 2i+1 | scales of both]     Q8_0 1088 B, Q4_0 576 B,
//                                                                             Q4_1 640 B, Q5_0 704 B, Q5_1 768 B
//     quants  Q8_0: 8 chunks k: [16 rows x 4 bytes] = qs[r][4k .. 4k+4) + 128 (as u8)                512 B
//             Q4_0, Q4_1, Q5_0, Q5_1: 4 chunks k: [16 rows x 4 bytes] = qs[r][4k .. 4k+4) as stored   256 B
//                   (byte j: low nibble = column 4k+j, high nibble = column 16+4k+j)
//     scales  per block [16 rows x f16 d]                                                            32 B
//             Q4_1, Q5_1: then per block [16 rows x f16 m] (the minima)                              32 B
//             Q5_0, Q5_1: then per block [16 rows x 4 bytes] fifth bits, transposed: bit i of byte j    64 B
//                   is the fifth bit of column 4i + j (i < 4, with chunk i's low nibbles) or
//                   16 + 4(i - 4) + j (i >= 4, with chunk i - 4's high nibbles)
//     (an odd last block is a pair whose second half is zero; every pair is a whole number of 64-byte
//      lines, so one group, and one matrix, is a single sequential stream of cache lines)
//
// so one 512-bit load is chunk k of a block for all 16 rows and, with the activation's 4 bytes of that chunk
// broadcast, vpdpbusd accumulates the 16 rows' partial dot products in its 16 int32 lanes:
//
//   Q8_0  dot_r = sum_k dpbusd(qs_k + 128, x_k) - 128 sum(x)           (x: the block's Q8_0 activations)
//   Q4_0  dot_r = sum_k dpbusd(lo_k, x_k) + dpbusd(hi_k, x_{k+4}) - 8 sum(x)
//   y_r += (d_w,r * d_x) * float(dot_r)                                  per block, in block order
//   Q4_1  dot_r as Q4_0 without the -8 sum(x), then (x: Q8_1 activations, s_x = f16(d_x sum(x)))
//         y_r += (d_w,r * d_x) * float(dot_r);  y_r += m_w,r * s_x      per block, in block order
//   Q5_0  dot_r as Q4_0 with each nibble | (its fifth bit << 4) and - 16 sum(x): a chunk's fifth bits are
//         one shift and one mask of the block's transposed bits
//   Q5_1  Q4_1's with Q5_0's fifth bits
//         (Not llama.cpp's summation order, which the row-major kernels of dot_legacy.hpp keep: load with
//          LoadOptions::pack = false for its floats bit for bit.)
//
// F16 rows (cols % 4 == 0) pack the same way without blocks: column c of a group is its 16 rows' f16 values,
//
//   group g = rows [16g, 16g + 16):  column c at bytes [32c, 32c + 32) = w[16g + 0..16][c]  (one line: 2 columns)
//   y_r = sum over c of w[r][c] * x[c], in 4 accumulators (c mod 4), added at the end
//
// so each 256-bit load, converted, is one column of 16 rows, multiplied by the broadcast x[c].
//
// Rows past the last whole group are not packed; the matmul reads them from the row-major view.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

// Whether this build has the packed kernels, and which: AVX-512 with VNNI (EDGESPEC_PACKED_AVX512), or AVX2 with
// FMA and F16C in a build without AVX-512; without them nothing is packed.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define EDGESPEC_PACKED_KERNELS 1
#define EDGESPEC_PACKED_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__) && !defined(__AVX512F__)
#define EDGESPEC_PACKED_KERNELS 1
#define EDGESPEC_PACKED_AVX512 0
#else
#define EDGESPEC_PACKED_KERNELS 0
#define EDGESPEC_PACKED_AVX512 0
#endif

#if EDGESPEC_PACKED_KERNELS
#include <immintrin.h>
#endif

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/kernels/packed_k.hpp"
#include "edgespec/runtime/thread_pool.hpp"

namespace edgespec {

inline constexpr bool kPackedKernels = EDGESPEC_PACKED_KERNELS != 0;

inline constexpr int kPackRows = 16;

// Whether a type has a packed layout in this build, and whether a (rows, cols) matrix of it can take it. Q4_K's
// and Q6_K's (packed_k.hpp) exist in AVX-512 VNNI builds only: they have no AVX2 kernel (their AVX2 builds run
// the row-major kernels of dot_k.hpp).
[[nodiscard]] constexpr bool packable(DType t) noexcept {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::F16 ||
         ((t == DType::Q4_1 || t == DType::Q5_0 || t == DType::Q5_1) && EDGESPEC_PACKED_KERNELS) ||
         ((t == DType::Q4_K || t == DType::Q6_K) && EDGESPEC_PACKED_AVX512);
}
[[nodiscard]] constexpr bool packable(DType t, std::int64_t cols) noexcept {
  return packable(t) && cols % (t == DType::F16 ? 4 : block_values(t)) == 0;
}

// What a block has besides d and its nibbles (or Q8_0's bytes): a minimum m (Q4_1, Q5_1), fifth bits (Q5_0, Q5_1).
[[nodiscard]] constexpr bool packed_has_min(DType t) noexcept { return t == DType::Q4_1 || t == DType::Q5_1; }
[[nodiscard]] constexpr bool packed_has_fifth(DType t) noexcept { return t == DType::Q5_0 || t == DType::Q5_1; }

// Bytes before a block's quants in a row: d (f16), then m (f16) and qh (u32) where the type has them.
[[nodiscard]] constexpr std::int64_t packed_block_header(DType t) noexcept {
  return 2 + (packed_has_min(t) ? 2 : 0) + (packed_has_fifth(t) ? 4 : 0);
}

// Bytes of the quants of one block of a group (all 16 rows).
[[nodiscard]] constexpr std::int64_t packed_block_quant_bytes(DType t) noexcept {
  return kPackRows * (block_bytes(t) - packed_block_header(t));
}

// Bytes of one pair of blocks of a group: two blocks' quants, then their scales (a 64-byte multiple).
[[nodiscard]] constexpr std::int64_t packed_pair_bytes(DType t) noexcept {
  return 2 * packed_block_quant_bytes(t) + 2 * kPackRows * packed_block_header(t);
}

// Offsets of block b's quants, scales d, minima m and fifth bits from the start of its group.
[[nodiscard]] constexpr std::int64_t packed_quant_offset(DType t, std::int64_t b) noexcept {
  return b / 2 * packed_pair_bytes(t) + b % 2 * packed_block_quant_bytes(t);
}
[[nodiscard]] constexpr std::int64_t packed_scale_offset(DType t, std::int64_t b) noexcept {
  return b / 2 * packed_pair_bytes(t) + 2 * packed_block_quant_bytes(t) + b % 2 * kPackRows * 2;
}
[[nodiscard]] constexpr std::int64_t packed_min_offset(DType t, std::int64_t b) noexcept {
  return b / 2 * packed_pair_bytes(t) + 2 * packed_block_quant_bytes(t) + 2 * kPackRows * 2 + b % 2 * kPackRows * 2;
}
[[nodiscard]] constexpr std::int64_t packed_fifth_offset(DType t, std::int64_t b) noexcept {
  return b / 2 * packed_pair_bytes(t) + 2 * packed_block_quant_bytes(t) + 2 * kPackRows * 2 +
         (packed_has_min(t) ? 2 * kPackRows * 2 : 0) + b % 2 * kPackRows * 4;
}

// Bytes of one group of 16 rows of nb blocks (F16: nb = cols; Q4_K, Q6_K: nb super-blocks).
[[nodiscard]] constexpr std::int64_t packed_group_bytes(DType t, std::int64_t nb) noexcept {
  return t == DType::F16    ? kPackRows * 2 * nb
         : t == DType::Q4_K ? kQ4KPackedBlock * nb
         : t == DType::Q6_K ? kQ6KPackedBlock * nb
                            : (nb + 1) / 2 * packed_pair_bytes(t);
}

// Bytes of the packed part of a (rows, cols) matrix: its whole groups.
[[nodiscard]] constexpr std::int64_t packed_bytes(DType t, std::int64_t rows, std::int64_t cols) noexcept {
  return rows / kPackRows * packed_group_bytes(t, cols / block_values(t));
}

// An uninitialized 64-byte aligned buffer shared by the views into it. One of kHugePage bytes or more is
// kHugePage-aligned and, on Linux, advised to be backed by transparent huge pages (honoured when
// /sys/kernel/mm/transparent_hugepage/enabled is "always" or "madvise"): a decode step streams every packed
// matrix once, and with 4 KiB pages that is a TLB miss per page. On Zen 3 (AVX2, SmolLM2 decode, 1 thread)
// huge pages gave +12-23% tok/s for F16, Q8_0 and Q4_0 (measured for commit c6a6f24; docs/performance.md,
// "AVX2 choices").
inline constexpr std::size_t kHugePage = std::size_t{2} << 20;

[[nodiscard]] inline std::shared_ptr<std::byte> allocate_aligned(std::size_t bytes) {
  const bool huge = bytes >= kHugePage;
  const std::size_t align = huge ? kHugePage : 64;
  const std::size_t size = std::max<std::size_t>(64, (bytes + align - 1) / align * align);
  void* p = std::aligned_alloc(align, size);
  if (p == nullptr) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge) (void)madvise(p, size, MADV_HUGEPAGE);  // advice only: without THP the pages stay 4 KiB
#endif
  return {static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); }};
}

namespace detail {
// A Q5_0/Q5_1 block's qh (u32 at p, bit c = fifth bit of column c) -> the packed layout's word: bit i of byte j is
// the fifth bit of column 4i + j (i < 4) or 16 + 4(i - 4) + j (i >= 4), so that chunk i's bits are one shift
// (to bit 4 of each byte) and one mask away.
[[nodiscard]] inline std::uint32_t transpose_fifth_bits(const unsigned char* p) noexcept {
  std::uint32_t qh;
  std::memcpy(&qh, p, 4);
  std::uint32_t out = 0;
  for (int i = 0; i < 8; ++i)
    for (int j = 0; j < 4; ++j) {
      const int c = i < 4 ? 4 * i + j : 16 + 4 * (i - 4) + j;
      out |= (qh >> c & 1u) << (8 * j + i);
    }
  return out;
}

// 16 F16 rows (ws bytes apart) -> one group: column c at out + 32c. Column by column, so the writes are
// sequential and the 16 rows' current lines stay in L1 (a plain function: as a lambda capturing by reference
// GCC 12 reloaded the captures per value, 10x slower).
inline void pack_group_f16(const unsigned char* in, std::int64_t ws, std::int64_t cols, unsigned char* out) noexcept {
  for (std::int64_t c = 0; c < cols; ++c)
    for (int r = 0; r < kPackRows; ++r) std::memcpy(out + c * 2 * kPackRows + r * 2, in + r * ws + c * 2, 2);
}
}  // namespace detail

// Row-major rows of a packable type (rows, cols) at src -> their whole groups at dst (packed_bytes(t, rows, cols)).
inline void pack_rows(DType t, const void* src, std::int64_t rows, std::int64_t cols, void* dst,
                      ThreadPool* pool = nullptr) {
  ES_CHECK(packable(t), "pack_rows: ", name(t),
           " has no packed layout in this build (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, F16",
           EDGESPEC_PACKED_AVX512 ? ", Q4_K and Q6_K)" : "; Q4_K and Q6_K need AVX-512 VNNI)");
  ES_CHECK(rows >= 0 && cols >= 0 && packable(t, cols), "pack_rows: bad shape (", rows, ", ", cols, ") for ",
           name(t), " (cols must be a multiple of ", t == DType::F16 ? 4 : block_values(t), ")");
  const auto* in = static_cast<const unsigned char*>(src);
  auto* out = static_cast<unsigned char*>(dst);
  const std::int64_t groups = rows / kPackRows;
  auto run = [&](auto&& pack_groups) {
    if (pool != nullptr) {
      pool->parallel_for(groups, pack_groups, 4);
    } else {
      pack_groups(std::int64_t{0}, groups);
    }
  };
  if (t == DType::F16) {
    const std::int64_t ws = 2 * cols, gs = packed_group_bytes(t, cols);
    run([&](std::int64_t g0, std::int64_t g1) {
      for (std::int64_t g = g0; g < g1; ++g) detail::pack_group_f16(in + g * kPackRows * ws, ws, cols, out + g * gs);
    });
    return;
  }
  if (t == DType::Q4_K || t == DType::Q6_K) {
    const std::int64_t nb = cols / kQKK, ws = row_bytes(t, cols), gs = packed_group_bytes(t, nb);
    const auto pack_group = t == DType::Q4_K ? detail::pack_group_q4_K : detail::pack_group_q6_K;
    run([&](std::int64_t g0, std::int64_t g1) {
      for (std::int64_t g = g0; g < g1; ++g) pack_group(in + g * kPackRows * ws, ws, nb, out + g * gs);
    });
    return;
  }
  const std::int64_t nb = cols / kQK;
  const std::int64_t block = block_bytes(t), ws = row_bytes(t, cols), gs = packed_group_bytes(t, nb);
  const std::int64_t header = packed_block_header(t);
  const int chunks = static_cast<int>((block - header) / 4);
  const std::uint32_t flip = t == DType::Q8_0 ? 0x80808080u : 0u;  // int8 -> u8 = q + 128
  run([&](std::int64_t g0, std::int64_t g1) {
    for (std::int64_t g = g0; g < g1; ++g) {
      unsigned char* group = out + g * gs;
      const std::int64_t pair = packed_pair_bytes(t);
      if (nb % 2 != 0) std::memset(group + gs - pair, 0, static_cast<std::size_t>(pair));  // the half-empty pair
      for (int r = 0; r < kPackRows; ++r) {
        const unsigned char* row = in + (g * kPackRows + r) * ws;
        for (std::int64_t b = 0; b < nb; ++b) {
          const unsigned char* blk = row + b * block;
          unsigned char* quants = group + packed_quant_offset(t, b);
          std::memcpy(group + packed_scale_offset(t, b) + r * 2, blk, 2);
          if (packed_has_min(t)) std::memcpy(group + packed_min_offset(t, b) + r * 2, blk + 2, 2);
          if (packed_has_fifth(t)) {
            const std::uint32_t h = detail::transpose_fifth_bits(blk + header - 4);
            std::memcpy(group + packed_fifth_offset(t, b) + r * 4, &h, 4);
          }
          for (int k = 0; k < chunks; ++k) {
            std::uint32_t v;
            std::memcpy(&v, blk + header + 4 * k, 4);
            v ^= flip;
            std::memcpy(quants + (k * kPackRows + r) * 4, &v, 4);
          }
        }
      }
    }
  });
}

namespace detail {

// Bytes ahead in a group's stream that packed_tile<T, P> software-prefetches; 0 leaves the stream to the
// hardware prefetchers. Measured (docs/performance.md: "Software prefetch", "AVX2 choices"):
//   AVX-512, the development VM's Zen 5 host: Q8_0 at one position (decode), the least work per byte, reads
//   more without (0.86 vs 0.81 of the probe at 1 thread, interleaved in one process); with more work per byte,
//   Q4_0 (46 vs 28 tok/s at 1 thread) and tiles of 2-4 positions (verification) need it. On an earlier host
//   4 KiB also won for Q8_0 decode.
//   AVX2, Zen 3 (SmolLM2 decode, variants alternated in one process): 4 KiB for Q8_0 (~35% more tok/s than
//   none at 1 thread) and Q4_0; 1 KiB for F16 (~10% more than 4 KiB at 1 thread).
#ifndef EDGESPEC_PACKED_PREFETCH_BYTES
#define EDGESPEC_PACKED_PREFETCH_BYTES 4096
#endif
#ifndef EDGESPEC_PACKED_PREFETCH_Q8_0_DECODE
#if EDGESPEC_PACKED_AVX512
#define EDGESPEC_PACKED_PREFETCH_Q8_0_DECODE 0
#else
#define EDGESPEC_PACKED_PREFETCH_Q8_0_DECODE EDGESPEC_PACKED_PREFETCH_BYTES
#endif
#endif
#ifndef EDGESPEC_PACKED_PREFETCH_F16
#if EDGESPEC_PACKED_AVX512
#define EDGESPEC_PACKED_PREFETCH_F16 EDGESPEC_PACKED_PREFETCH_BYTES
#else
#define EDGESPEC_PACKED_PREFETCH_F16 1024
#endif
#endif
// Tiles of 2 or more positions (verification) spend longer on each block, so that the same distance in bytes is
// less time ahead: AVX-512, Zen 5, synthetic Llama-3.2-1B Q8_0 at 1 thread, forward over 8 positions: 61-63 ms
// with 4 KiB, 48-51 ms with 8 KiB, 47-54 ms with 16 KiB (builds alternated, docs/performance.md).
#ifndef EDGESPEC_PACKED_PREFETCH_BATCH_BYTES
#if EDGESPEC_PACKED_AVX512
#define EDGESPEC_PACKED_PREFETCH_BATCH_BYTES 8192
#else
#define EDGESPEC_PACKED_PREFETCH_BATCH_BYTES EDGESPEC_PACKED_PREFETCH_BYTES
#endif
#endif
template <DType T, int P>
inline constexpr std::int64_t kPackedPrefetchBytes =
    P > 1 && EDGESPEC_PACKED_AVX512 ? EDGESPEC_PACKED_PREFETCH_BATCH_BYTES
    : T == DType::Q8_0 && P == 1    ? EDGESPEC_PACKED_PREFETCH_Q8_0_DECODE
    : T == DType::F16               ? EDGESPEC_PACKED_PREFETCH_F16
    : P > 1                         ? EDGESPEC_PACKED_PREFETCH_BATCH_BYTES
                                    : EDGESPEC_PACKED_PREFETCH_BYTES;

// Positions per packed tile: every weight vector loaded from the stream feeds this many positions. AVX-512's 32
// vector registers hold 8 positions' accumulators next to a block's 8 weight vectors, so a verification pass
// over up to 8 positions reads each group once, in one pass (F16 keeps 4 accumulators per position: 6
// positions); AVX2's 16 registers hold 4 (and the 4-position tile runs the group's two halves as two passes).
#if EDGESPEC_PACKED_AVX512
inline constexpr int kPackedTilePos = 8;
inline constexpr int kPackedTilePosF16 = 6;  // 4 accumulators per position: 24 of the 32 registers
#else
inline constexpr int kPackedTilePosF16 = 4;
inline constexpr int kPackedTilePos = 4;
#endif

// Activations of n positions prepared for the packed kernels, block-major: the n positions' values of one block
// are adjacent, so a tile reaches its P positions at fixed offsets from one pointer per array, advanced by a
// block at a time (position-major, a tile of 8 positions needed 24 pointers: more than the general registers).
//   q (nb, n, 32) int8 | d (nb, n) f32 | seed (nb, n) int32 = -offset * sum(q) per block (128 Q8_0, 8 Q4_0,
//   16 Q5_0)
//   Q4_1, Q5_1 (Q8_1 activations): d = f16(d_x), and s (nb, n) f32 = f16(d_x sum(q)) instead of a seed
struct PackedActs {
  const std::int8_t* q;
  const float* d;
  const std::int32_t* seed;  // Q8_0, Q4_0, Q5_0
  std::int64_t n;
  const float* s = nullptr;  // Q4_1, Q5_1
};

// Activations of one position prepared for the row-major kernels: (cols,) int8, then per block d_x and the
// dpbusd seed -offset * sum(x) (offset 128 for Q8_0, 8 for Q4_0).
struct PackedX {
  const std::int8_t* q;   // (cols,)
  const float* d;         // (nb,)
  const std::int32_t* seed;  // (nb,)
};

#if EDGESPEC_PACKED_AVX512
[[nodiscard]] inline __m512i broadcast4(const std::int8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// One group (16 rows) @ positions [j, j + P) of xs -> y[p * ys + (0..16)]. Every (row, position) output is the same
// operation sequence whatever P, so batched results equal single-position ones bit for bit.
// (The full-mask maskz conversions avoid GCC 12's false -Wmaybe-uninitialized on the unmasked forms.)
template <DType T, int P>
inline void packed_tile(const unsigned char* group, std::int64_t nb, const PackedActs& xs, std::int64_t j,
                        float* y, std::int64_t ys) noexcept {
  constexpr std::int64_t kPair = packed_pair_bytes(T);
  constexpr bool kMin = packed_has_min(T);      // no seed; m_w s_x per block
  constexpr bool kFifth = packed_has_fifth(T);  // nibbles | fifth bits << 4
  const std::int8_t* xq = xs.q + j * kQK;  // block b of position j + p: xq + p * 32, xd[p], xseed[p] (xs_[p])
  const float* xd = xs.d + j;
  const std::int32_t* xseed = kMin ? nullptr : xs.seed + j;
  const float* xs_ = kMin ? xs.s + j : nullptr;
  auto seed = [&](int p) {  // the integer dot's start: -offset * sum(x), 0 with a minimum
    if constexpr (kMin) return _mm512_setzero_si512();
    else return _mm512_set1_epi32(xseed[p]);
  };
  __m512 acc[P];
  for (int p = 0; p < P; ++p) acc[p] = _mm512_setzero_ps();
  for (std::int64_t b = 0; b < nb; ++b) {
    const unsigned char* q = group + packed_quant_offset(T, b);
    if constexpr (kPackedPrefetchBytes<T, P> > 0)
      if (b % 2 == 0)
        for (std::int64_t line = 0; line < kPair; line += 64)
          _mm_prefetch(reinterpret_cast<const char*>(q + kPackedPrefetchBytes<T, P> + line), _MM_HINT_T0);
    const __m512 dw = _mm512_maskz_cvtph_ps(
        0xffff, _mm256_load_si256(reinterpret_cast<const __m256i*>(group + packed_scale_offset(T, b))));
    __m512 mw = _mm512_setzero_ps();  // the 16 rows' minima
    if constexpr (kMin)
      mw = _mm512_maskz_cvtph_ps(0xffff,
                                 _mm256_load_si256(reinterpret_cast<const __m256i*>(group + packed_min_offset(T, b))));
    if constexpr (T == DType::Q8_0) {
      __m512i w[8];
      for (int k = 0; k < 8; ++k) w[k] = _mm512_load_si512(q + k * 64);
      if constexpr (P <= 2) {  // two chains of dependent vpdpbusd per position
        for (int p = 0; p < P; ++p) {
          const std::int8_t* x = xq + p * kQK;
          __m512i a0 = seed(p), a1 = _mm512_setzero_si512();
          for (int k = 0; k < 8; k += 2) {
            a0 = _mm512_dpbusd_epi32(a0, w[k], broadcast4(x + 4 * k));
            a1 = _mm512_dpbusd_epi32(a1, w[k + 1], broadcast4(x + 4 * k + 4));
          }
          const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(xd[p]));
          acc[p] = _mm512_fmadd_ps(d, _mm512_maskz_cvtepi32_ps(0xffff, _mm512_add_epi32(a0, a1)), acc[p]);
        }
      } else {  // one chain per position, the P chains interleaved (chunk k of every position in turn)
        __m512i a[P];
        for (int p = 0; p < P; ++p) a[p] = seed(p);
        for (int k = 0; k < 8; ++k)
          for (int p = 0; p < P; ++p) a[p] = _mm512_dpbusd_epi32(a[p], w[k], broadcast4(xq + p * kQK + 4 * k));
        for (int p = 0; p < P; ++p) {
          const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(xd[p]));
          acc[p] = _mm512_fmadd_ps(d, _mm512_maskz_cvtepi32_ps(0xffff, a[p]), acc[p]);
        }
      }
    } else {
      const __m512i mask = _mm512_set1_epi8(0x0f);
      __m512i lo[4], hi[4];
      for (int k = 0; k < 4; ++k) {
        const __m512i v = _mm512_load_si512(q + k * 64);
        lo[k] = _mm512_and_si512(v, mask);
        hi[k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
      }
      if constexpr (kFifth) {  // bit k (low nibbles of chunk k) or 4 + k (high) of each byte -> 0x10
        const __m512i h = _mm512_load_si512(group + packed_fifth_offset(T, b));
        const __m512i bit4 = _mm512_set1_epi8(0x10);
        for (int k = 0; k < 4; ++k) {
          lo[k] = _mm512_or_si512(lo[k], _mm512_and_si512(_mm512_maskz_slli_epi32(0xffff, h, 4 - k), bit4));
          hi[k] = _mm512_or_si512(hi[k], _mm512_and_si512(_mm512_maskz_srli_epi32(0xffff, h, k), bit4));
        }
      }
      if constexpr (P <= 2) {
        for (int p = 0; p < P; ++p) {
          const std::int8_t* x = xq + p * kQK;
          __m512i a0 = seed(p), a1 = _mm512_setzero_si512();
          for (int k = 0; k < 4; ++k) {
            a0 = _mm512_dpbusd_epi32(a0, lo[k], broadcast4(x + 4 * k));
            a1 = _mm512_dpbusd_epi32(a1, hi[k], broadcast4(x + 16 + 4 * k));
          }
          const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(xd[p]));
          acc[p] = _mm512_fmadd_ps(d, _mm512_maskz_cvtepi32_ps(0xffff, _mm512_add_epi32(a0, a1)), acc[p]);
          if constexpr (kMin) acc[p] = _mm512_fmadd_ps(mw, _mm512_set1_ps(xs_[p]), acc[p]);
        }
      } else {
        __m512i a[P];
        for (int p = 0; p < P; ++p) a[p] = seed(p);
        for (int k = 0; k < 4; ++k) {
          for (int p = 0; p < P; ++p) a[p] = _mm512_dpbusd_epi32(a[p], lo[k], broadcast4(xq + p * kQK + 4 * k));
          for (int p = 0; p < P; ++p) a[p] = _mm512_dpbusd_epi32(a[p], hi[k], broadcast4(xq + p * kQK + 16 + 4 * k));
        }
        for (int p = 0; p < P; ++p) {
          const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(xd[p]));
          acc[p] = _mm512_fmadd_ps(d, _mm512_maskz_cvtepi32_ps(0xffff, a[p]), acc[p]);
          if constexpr (kMin) acc[p] = _mm512_fmadd_ps(mw, _mm512_set1_ps(xs_[p]), acc[p]);
        }
      }
    }
    xq += xs.n * kQK;
    xd += xs.n;
    if constexpr (kMin) xs_ += xs.n;
    else xseed += xs.n;
  }
  for (int p = 0; p < P; ++p) _mm512_storeu_ps(y + p * ys, acc[p]);
}

// One F16 group (16 rows, cols % 4 == 0) @ P positions x (P, cols) f32, rows xs apart -> y[p * ys + (0..16)],
// with the same operation sequence whatever P.
template <int P>
inline void packed_tile_f16(const unsigned char* group, std::int64_t cols, const float* x, std::int64_t xs,
                            float* y, std::int64_t ys) noexcept {
  constexpr std::int64_t kAhead = kPackedPrefetchBytes<DType::F16, P>;
  __m512 acc[P][4];
  for (int p = 0; p < P; ++p)
    for (int k = 0; k < 4; ++k) acc[p][k] = _mm512_setzero_ps();
  for (std::int64_t c = 0; c < cols; c += 4) {
    const unsigned char* col = group + c * 2 * kPackRows;  // 4 columns: two cache lines
    if constexpr (kAhead > 0) {
      _mm_prefetch(reinterpret_cast<const char*>(col + kAhead), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(col + kAhead + 64), _MM_HINT_T0);
    }
    for (int k = 0; k < 4; ++k) {
      const __m512 w = _mm512_maskz_cvtph_ps(0xffff, _mm256_load_si256(reinterpret_cast<const __m256i*>(col + 32 * k)));
      for (int p = 0; p < P; ++p) acc[p][k] = _mm512_fmadd_ps(w, _mm512_set1_ps(x[p * xs + c + k]), acc[p][k]);
    }
  }
  for (int p = 0; p < P; ++p)
    _mm512_storeu_ps(y + p * ys, _mm512_add_ps(_mm512_add_ps(acc[p][0], acc[p][1]), _mm512_add_ps(acc[p][2], acc[p][3])));
}
#elif EDGESPEC_PACKED_KERNELS
// AVX2: a 256-bit load is half of a 16-row chunk, rows [8h, 8h + 8) (h = 0, 1), and one vector of 8 lanes holds
// those rows' partial sums. Without vpdpbusd the integer dot is vpmaddubsw (u8 x s8 -> int16 pairs, saturating)
// and vpmaddwd (int16 pairs -> int32):
//
//   Q4_0  lo/hi nibbles (u8 0..15) . x: every int16 pair sum |.| <= 2 * 15 * 128, so all 8 products of a block
//         (4 chunks x lo, hi) add up in int16 (<= 30720) before one vpmaddwd; dot = that + seed (-8 sum(x));
//         Q4_1 the same without the seed
//   Q5_0  5-bit values (u8 0..31): a chunk's lo + hi pair sums (<= 4 * 31 * 128) fit int16, one vpmaddwd per
//         chunk; seed -16 sum(x); Q5_1 the same without the seed
//   Q8_0  the stored u8 = q + 128 would overflow int16 (2 * 255 * 127), so q = u ^ 0x80 and
//         |q| . sign(x, q) per chunk (<= 2 * 128 * 127), one vpmaddwd each
//
// All give exactly the integer dot of the AVX-512 kernel, then the same y_r += (d_w,r * d_x) * float(dot) (and y_r +=
// m_w,r s_x) per block, so packed results are the same floats on both targets. One position (decode) runs the group's
// two halves in one pass (one sequential read); 2-4 positions run them as two passes (the second from L1/L2), so that
// P positions' accumulators and the chunk's operands fit the 16 vector registers.

[[nodiscard]] inline __m256i broadcast4(const std::int8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Rows [8 h0, 8 (h0 + H)) of one group @ P prepared positions -> y[p * ys + (8 h0 ..)].
template <DType T, int P, int H>
inline void packed_rows(const unsigned char* group, int h0, std::int64_t nb, const PackedActs& xs, std::int64_t j,
                        float* y, std::int64_t ys) noexcept {
  constexpr bool kMin = packed_has_min(T);      // no seed; m_w s_x per block
  constexpr bool kFifth = packed_has_fifth(T);  // nibbles | fifth bits << 4
  const std::int8_t* xq = xs.q + j * kQK;  // block b of position j + p: xq + p * 32, xd[p], xseed[p] (xs_[p])
  const float* xd = xs.d + j;
  const std::int32_t* xseed = kMin ? nullptr : xs.seed + j;
  const float* xs_ = kMin ? xs.s + j : nullptr;
  constexpr std::int64_t kAhead = kPackedPrefetchBytes<T, P>;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc[H][P];
  for (int h = 0; h < H; ++h)
    for (int p = 0; p < P; ++p) acc[h][p] = _mm256_setzero_ps();
  // Software prefetch kAhead bytes ahead, one line per 64-byte chunk as it is read (and a pair's scale line
  // with its second block), in the first half's pass only: the second finds the group in cache.
  auto prefetch = [h0](const unsigned char* line) {
    if (kAhead > 0 && h0 == 0) _mm_prefetch(reinterpret_cast<const char*>(line + kAhead), _MM_HINT_T0);
  };
  for (std::int64_t b = 0; b < nb; ++b) {
    const unsigned char* q = group + packed_quant_offset(T, b) + 32 * h0;
    if (b % 2 == 1)  // the pair's scale lines (Q4_1, Q5_0, Q5_1: and their minima or fifth bits)
      for (std::int64_t line = packed_scale_offset(T, b - 1); line < (b / 2 + 1) * packed_pair_bytes(T); line += 64)
        prefetch(group + line);
    __m256i dot[H][P];
    if constexpr (T == DType::Q8_0) {
      for (int h = 0; h < H; ++h)
        for (int p = 0; p < P; ++p) dot[h][p] = _mm256_setzero_si256();
      for (int k = 0; k < 8; ++k) {
        prefetch(q + 64 * k);
        for (int h = 0; h < H; ++h) {
          const __m256i w = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(q + 64 * k + 32 * h)),
                                             _mm256_set1_epi8(-128));
          const __m256i aw = _mm256_abs_epi8(w);
          for (int p = 0; p < P; ++p) {
            const __m256i sx = _mm256_sign_epi8(broadcast4(xq + p * kQK + 4 * k), w);
            dot[h][p] = _mm256_add_epi32(dot[h][p], _mm256_madd_epi16(_mm256_maddubs_epi16(aw, sx), ones));
          }
        }
      }
    } else if constexpr (!kFifth) {  // Q4_0, Q4_1
      const __m256i mask = _mm256_set1_epi8(0x0f);
      __m256i s[H][P];  // int16 pair sums of the block
      for (int h = 0; h < H; ++h)
        for (int p = 0; p < P; ++p) s[h][p] = _mm256_setzero_si256();
      for (int k = 0; k < 4; ++k) {
        prefetch(q + 64 * k);
        for (int h = 0; h < H; ++h) {
          const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 64 * k + 32 * h));
          const __m256i lo = _mm256_and_si256(v, mask), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
          for (int p = 0; p < P; ++p) {
            const std::int8_t* x = xq + p * kQK + 4 * k;
            s[h][p] = _mm256_add_epi16(s[h][p], _mm256_add_epi16(_mm256_maddubs_epi16(lo, broadcast4(x)),
                                                                 _mm256_maddubs_epi16(hi, broadcast4(x + 16))));
          }
        }
      }
      for (int h = 0; h < H; ++h)
        for (int p = 0; p < P; ++p) {
          dot[h][p] = _mm256_madd_epi16(s[h][p], ones);
          if constexpr (!kMin) dot[h][p] = _mm256_add_epi32(dot[h][p], _mm256_set1_epi32(xseed[p]));
        }
    } else {  // Q5_0, Q5_1: values 0..31, so a chunk's int16 pair sums (<= 4 * 31 * 127) go to int32 each chunk
      const __m256i mask = _mm256_set1_epi8(0x0f), bit4 = _mm256_set1_epi8(0x10);
      for (int h = 0; h < H; ++h)
        for (int p = 0; p < P; ++p) {
          if constexpr (kMin) dot[h][p] = _mm256_setzero_si256();
          else dot[h][p] = _mm256_set1_epi32(xseed[p]);  // -16 sum(x)
        }
      const unsigned char* fifth = group + packed_fifth_offset(T, b) + 32 * h0;
      for (int k = 0; k < 4; ++k) {
        prefetch(q + 64 * k);
        for (int h = 0; h < H; ++h) {
          const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(q + 64 * k + 32 * h));
          const __m256i hb = _mm256_load_si256(reinterpret_cast<const __m256i*>(fifth + 32 * h));
          const __m256i lo =
              _mm256_or_si256(_mm256_and_si256(v, mask), _mm256_and_si256(_mm256_slli_epi32(hb, 4 - k), bit4));
          const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(v, 4), mask),
                                             _mm256_and_si256(_mm256_srli_epi32(hb, k), bit4));
          for (int p = 0; p < P; ++p) {
            const std::int8_t* x = xq + p * kQK + 4 * k;
            const __m256i pairs = _mm256_add_epi16(_mm256_maddubs_epi16(lo, broadcast4(x)),
                                                   _mm256_maddubs_epi16(hi, broadcast4(x + 16)));
            dot[h][p] = _mm256_add_epi32(dot[h][p], _mm256_madd_epi16(pairs, ones));
          }
        }
      }
    }
    const unsigned char* scales = group + packed_scale_offset(T, b) + 16 * h0;
    for (int h = 0; h < H; ++h) {
      const __m256 dw = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(scales + 16 * h)));
      __m256 mw = _mm256_setzero_ps();
      if constexpr (kMin)
        mw = _mm256_cvtph_ps(
            _mm_load_si128(reinterpret_cast<const __m128i*>(group + packed_min_offset(T, b) + 16 * (h0 + h))));
      for (int p = 0; p < P; ++p) {
        const __m256 d = _mm256_mul_ps(dw, _mm256_set1_ps(xd[p]));
        acc[h][p] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot[h][p]), acc[h][p]);
        if constexpr (kMin) acc[h][p] = _mm256_fmadd_ps(mw, _mm256_set1_ps(xs_[p]), acc[h][p]);
      }
    }
    xq += xs.n * kQK;
    xd += xs.n;
    if constexpr (kMin) xs_ += xs.n;
    else xseed += xs.n;
  }
  for (int h = 0; h < H; ++h)
    for (int p = 0; p < P; ++p) _mm256_storeu_ps(y + p * ys + 8 * (h0 + h), acc[h][p]);
}

// One group (16 rows) @ positions [j, j + P) of xs -> y[p * ys + (0..16)], the same operation sequence whatever P.
template <DType T, int P>
inline void packed_tile(const unsigned char* group, std::int64_t nb, const PackedActs& xs, std::int64_t j,
                        float* y, std::int64_t ys) noexcept {
  if constexpr (P == 1) {
    packed_rows<T, 1, 2>(group, 0, nb, xs, j, y, ys);
  } else {
    packed_rows<T, P, 1>(group, 0, nb, xs, j, y, ys);
    packed_rows<T, P, 1>(group, 1, nb, xs, j, y, ys);
  }
}

// Rows [8 h0, 8 (h0 + H)) of one F16 group @ P positions: per row and position two accumulators, even and
// odd columns, added at the end.
template <int P, int H>
inline void packed_rows_f16(const unsigned char* group, int h0, std::int64_t cols, const float* x, std::int64_t xs,
                            float* y, std::int64_t ys) noexcept {
  constexpr std::int64_t kAhead = kPackedPrefetchBytes<DType::F16, P>;
  __m256 acc[H][P][2];
  for (int h = 0; h < H; ++h)
    for (int p = 0; p < P; ++p) acc[h][p][0] = acc[h][p][1] = _mm256_setzero_ps();
  for (std::int64_t c = 0; c < cols; c += 2) {
    const unsigned char* col = group + c * 2 * kPackRows + 16 * h0;  // 2 columns: one cache line
    if constexpr (kAhead > 0)
      if (h0 == 0) _mm_prefetch(reinterpret_cast<const char*>(col + kAhead), _MM_HINT_T0);
    for (int k = 0; k < 2; ++k)
      for (int h = 0; h < H; ++h) {
        const __m256 w = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(col + 32 * k + 16 * h)));
        for (int p = 0; p < P; ++p) acc[h][p][k] = _mm256_fmadd_ps(w, _mm256_broadcast_ss(x + p * xs + c + k), acc[h][p][k]);
      }
  }
  for (int h = 0; h < H; ++h)
    for (int p = 0; p < P; ++p) _mm256_storeu_ps(y + p * ys + 8 * (h0 + h), _mm256_add_ps(acc[h][p][0], acc[h][p][1]));
}

// One F16 group (16 rows, cols % 4 == 0) @ P positions x (P, cols) f32, rows xs apart -> y[p * ys + (0..16)],
// with the same operation sequence whatever P.
template <int P>
inline void packed_tile_f16(const unsigned char* group, std::int64_t cols, const float* x, std::int64_t xs,
                            float* y, std::int64_t ys) noexcept {
  if constexpr (P == 1) {
    packed_rows_f16<1, 2>(group, 0, cols, x, xs, y, ys);
  } else {
    packed_rows_f16<P, 1>(group, 0, cols, x, xs, y, ys);
    packed_rows_f16<P, 1>(group, 1, cols, x, xs, y, ys);
  }
}
#endif

}  // namespace detail

}  // namespace edgespec
