// Row-interleaved ("packed") Q8_0/Q4_0/F16 weights: the layout the CPU matmul streams.
//
// Row-major, a Q8_0 row is its blocks [d (f16) | qs (32 x int8)] one after another, so a kernel computing 16
// rows at once follows 16 separate streams and shuffles 16 scales per block. Packed, 16 rows form a group
// whose bytes are one sequential stream (same size as the rows it replaces, up to 64 bytes of padding):
//
//   group g = rows [16g, 16g + 16), nb = cols / 32 blocks per row, as ceil(nb / 2) pairs of blocks
//     pair    [quants of block 2i | quants of block 2i+1 | scales of both]     Q8_0 1088 B, Q4_0 576 B
//     quants  Q8_0: 8 chunks k: [16 rows x 4 bytes] = qs[r][4k .. 4k+4) + 128 (as u8)                512 B
//             Q4_0: 4 chunks k: [16 rows x 4 bytes] = qs[r][4k .. 4k+4) as stored                     256 B
//                   (byte j: low nibble = column 4k+j, high nibble = column 16+4k+j)
//     scales  per block [16 rows x f16 d]                                                            32 B
//     (an odd last block is a pair whose second half is zero; every pair is a whole number of 64-byte
//      lines, so one group, and one matrix, is a single sequential stream of cache lines)
//
// so one 512-bit load is chunk k of a block for all 16 rows and, with the activation's 4 bytes of that chunk
// broadcast, vpdpbusd accumulates the 16 rows' partial dot products in its 16 int32 lanes:
//
//   Q8_0  dot_r = sum_k dpbusd(qs_k + 128, x_k) - 128 sum(x)           (x: the block's Q8_0 activations)
//   Q4_0  dot_r = sum_k dpbusd(lo_k, x_k) + dpbusd(hi_k, x_{k+4}) - 8 sum(x)
//   y_r += (d_w,r * d_x) * float(dot_r)                                  per block, in block order
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

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/runtime/thread_pool.hpp"

namespace edgespec {

// Whether this build has the packed kernels (AVX-512 with VNNI); without them nothing is packed.
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VNNI__)
#define EDGESPEC_PACKED_KERNELS 1
inline constexpr bool kPackedKernels = true;
#else
#define EDGESPEC_PACKED_KERNELS 0
inline constexpr bool kPackedKernels = false;
#endif

inline constexpr int kPackRows = 16;

// Whether a type has a packed layout, and whether a (rows, cols) matrix of it can take it.
[[nodiscard]] constexpr bool packable(DType t) noexcept {
  return t == DType::Q8_0 || t == DType::Q4_0 || t == DType::F16;
}
[[nodiscard]] constexpr bool packable(DType t, std::int64_t cols) noexcept {
  return packable(t) && cols % (t == DType::F16 ? 4 : block_values(t)) == 0;
}

// Bytes of the quants of one block of a group (all 16 rows).
[[nodiscard]] constexpr std::int64_t packed_block_quant_bytes(DType t) noexcept {
  return kPackRows * (block_bytes(t) - 2);
}

// Bytes of one pair of blocks of a group: two blocks' quants, then their scales (a 64-byte multiple).
[[nodiscard]] constexpr std::int64_t packed_pair_bytes(DType t) noexcept {
  return 2 * packed_block_quant_bytes(t) + 2 * kPackRows * 2;
}

// Offsets of block b's quants and scales from the start of its group.
[[nodiscard]] constexpr std::int64_t packed_quant_offset(DType t, std::int64_t b) noexcept {
  return b / 2 * packed_pair_bytes(t) + b % 2 * packed_block_quant_bytes(t);
}
[[nodiscard]] constexpr std::int64_t packed_scale_offset(DType t, std::int64_t b) noexcept {
  return b / 2 * packed_pair_bytes(t) + 2 * packed_block_quant_bytes(t) + b % 2 * kPackRows * 2;
}

// Bytes of one group of 16 rows of nb blocks (F16: nb = cols).
[[nodiscard]] constexpr std::int64_t packed_group_bytes(DType t, std::int64_t nb) noexcept {
  return t == DType::F16 ? kPackRows * 2 * nb : (nb + 1) / 2 * packed_pair_bytes(t);
}

// Bytes of the packed part of a (rows, cols) matrix: its whole groups.
[[nodiscard]] constexpr std::int64_t packed_bytes(DType t, std::int64_t rows, std::int64_t cols) noexcept {
  return rows / kPackRows * packed_group_bytes(t, cols / block_values(t));
}

// An uninitialized 64-byte aligned buffer shared by the views into it.
[[nodiscard]] inline std::shared_ptr<std::byte> allocate_aligned(std::size_t bytes) {
  const std::size_t size = std::max<std::size_t>(64, (bytes + 63) / 64 * 64);
  void* p = std::aligned_alloc(64, size);
  if (p == nullptr) throw std::bad_alloc();
  return {static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); }};
}

// Row-major Q8_0/Q4_0/F16 rows (rows, cols) at src -> their whole groups at dst (packed_bytes(t, rows, cols)).
inline void pack_rows(DType t, const void* src, std::int64_t rows, std::int64_t cols, void* dst,
                      ThreadPool* pool = nullptr) {
  ES_CHECK(packable(t), "pack_rows: ", name(t), " has no packed layout (only Q8_0, Q4_0 and F16)");
  ES_CHECK(rows >= 0 && cols >= 0 && packable(t, cols), "pack_rows: bad shape (", rows, ", ", cols, ") for ",
           name(t), " (cols must be a multiple of ", t == DType::F16 ? 4 : kQK, ")");
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
      for (std::int64_t g = g0; g < g1; ++g)
        for (int r = 0; r < kPackRows; ++r)
          for (std::int64_t c = 0; c < cols; ++c)
            std::memcpy(out + g * gs + c * 2 * kPackRows + r * 2, in + (g * kPackRows + r) * ws + c * 2, 2);
    });
    return;
  }
  const std::int64_t nb = cols / kQK;
  const std::int64_t block = block_bytes(t), ws = row_bytes(t, cols), gs = packed_group_bytes(t, nb);
  const int chunks = static_cast<int>((block - 2) / 4);
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
          for (int k = 0; k < chunks; ++k) {
            std::uint32_t v;
            std::memcpy(&v, blk + 2 + 4 * k, 4);
            v ^= flip;
            std::memcpy(quants + (k * kPackRows + r) * 4, &v, 4);
          }
        }
      }
    }
  });
}

namespace detail {

// Bytes ahead in a group's stream that packed_tile<T, P> software-prefetches each pair's cache lines; 0 leaves
// the stream to the hardware prefetchers. Measured on the development VM's Zen 5 host (docs/performance.md):
// Q8_0 at one position (decode), the least work per byte, reads more without (0.86 vs 0.81 of the probe at
// 1 thread, interleaved in one process); with more work per byte, Q4_0 (46 vs 28 tok/s at 1 thread) and
// tiles of 2-4 positions (verification) need it. On an earlier host 4 KiB also won for Q8_0 decode.
#ifndef EDGESPEC_PACKED_PREFETCH_BYTES
#define EDGESPEC_PACKED_PREFETCH_BYTES 4096
#endif
#ifndef EDGESPEC_PACKED_PREFETCH_Q8_0_DECODE
#define EDGESPEC_PACKED_PREFETCH_Q8_0_DECODE 0
#endif
template <DType T, int P>
inline constexpr std::int64_t kPackedPrefetchBytes =
    T == DType::Q8_0 && P == 1 ? EDGESPEC_PACKED_PREFETCH_Q8_0_DECODE : EDGESPEC_PACKED_PREFETCH_BYTES;

// Activations of one position prepared for the packed kernels: (cols,) int8, then per block d_x and the
// dpbusd seed -offset * sum(x) (offset 128 for Q8_0, 8 for Q4_0).
struct PackedX {
  const std::int8_t* q;   // (cols,)
  const float* d;         // (nb,)
  const std::int32_t* seed;  // (nb,)
};

#if EDGESPEC_PACKED_KERNELS
[[nodiscard]] inline __m512i broadcast4(const std::int8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// One group (16 rows) @ P prepared positions -> y[p * ys + (0..16)]. Every (row, position) output is the same
// operation sequence whatever P, so batched results equal single-position ones bit for bit.
// (The full-mask maskz conversions avoid GCC 12's false -Wmaybe-uninitialized on the unmasked forms.)
template <DType T, int P>
inline void packed_tile(const unsigned char* group, std::int64_t nb, const PackedX* xs, float* y,
                        std::int64_t ys) noexcept {
  constexpr std::int64_t kPair = packed_pair_bytes(T);
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
    if constexpr (T == DType::Q8_0) {
      __m512i w[8];
      for (int k = 0; k < 8; ++k) w[k] = _mm512_load_si512(q + k * 64);
      for (int p = 0; p < P; ++p) {
        const std::int8_t* x = xs[p].q + b * kQK;
        __m512i a0 = _mm512_set1_epi32(xs[p].seed[b]), a1 = _mm512_setzero_si512();
        for (int k = 0; k < 8; k += 2) {
          a0 = _mm512_dpbusd_epi32(a0, w[k], broadcast4(x + 4 * k));
          a1 = _mm512_dpbusd_epi32(a1, w[k + 1], broadcast4(x + 4 * k + 4));
        }
        const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(xs[p].d[b]));
        acc[p] = _mm512_fmadd_ps(d, _mm512_maskz_cvtepi32_ps(0xffff, _mm512_add_epi32(a0, a1)), acc[p]);
      }
    } else {
      const __m512i mask = _mm512_set1_epi8(0x0f);
      __m512i lo[4], hi[4];
      for (int k = 0; k < 4; ++k) {
        const __m512i v = _mm512_load_si512(q + k * 64);
        lo[k] = _mm512_and_si512(v, mask);
        hi[k] = _mm512_and_si512(_mm512_srli_epi16(v, 4), mask);
      }
      for (int p = 0; p < P; ++p) {
        const std::int8_t* x = xs[p].q + b * kQK;
        __m512i a0 = _mm512_set1_epi32(xs[p].seed[b]), a1 = _mm512_setzero_si512();
        for (int k = 0; k < 4; ++k) {
          a0 = _mm512_dpbusd_epi32(a0, lo[k], broadcast4(x + 4 * k));
          a1 = _mm512_dpbusd_epi32(a1, hi[k], broadcast4(x + 16 + 4 * k));
        }
        const __m512 d = _mm512_mul_ps(dw, _mm512_set1_ps(xs[p].d[b]));
        acc[p] = _mm512_fmadd_ps(d, _mm512_maskz_cvtepi32_ps(0xffff, _mm512_add_epi32(a0, a1)), acc[p]);
      }
    }
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
#endif

}  // namespace detail

}  // namespace edgespec
