// Dot products of Q4_1, Q5_0, Q5_1 and IQ4_NL weight rows with quantized activations, for kernels/matmul.hpp.
//
//   R rows of W (nb blocks each) . one position's activations -> out (R,)            dot_rows
//   R rows . P positions' activations -> y (P, R): each block unpacked once per row      dot_rows_tile
//
//   Q5_0, IQ4_NL x Q8_0:  sum_b (d_w d_x) * isum_b                     isum_b = sum_j q_j x_j (integer)
//   Q4_1, Q5_1   x Q8_1:  sum_b (d_w d_x) * isum_b  +  sum_b m_w s_x   (s_x = f16(d_x sum_j x_j), from the block)
//
// as llama.cpp's ggml_vec_dot_{q5_0,iq4_nl}_q8_0 / {q4_1,q5_1}_q8_1 compute them.
//
// AVX2 (+FMA, F16C): isum_b stays in 8 int32 lanes of 4 columns (vpmaddubsw + vpmaddwd: an unsigned byte operand
// times a signed one), each lane goes into an 8-lane f32 accumulator per block, (d_w d_x) * lane + acc, and the
// lanes are added at the end; m_w s_x is summed apart and added last. That is the order of llama.cpp's AVX2
// kernels: Q4_1, Q5_0 and Q5_1 give its floats (the test's recorded values and SmolLM2's tensors: identical);
// IQ4_NL differs by summation order (llama.cpp alternates two accumulators). The byte operands:
//
//   Q4_1    nibble . x                      Q5_1  (nibble | bit << 4) . x
//   Q5_0    (nibble | bit << 4) . x - 16 sum(x), the second term once per activation block for all rows
//   IQ4_NL  |x| . (v sign(x)), v = kIq4nlValues[nibble] by one vpshufb, |x| once per activation block
//
//   loop nest: for pass of <= 4 rows (R = 8: two passes; 8 accumulators and the masks would not fit the 16
//              registers)
//                for block b: load x_b, its shared terms          (one activation load for the pass's rows)
//                  for row r: prefetch row r + R's block b, dot, accumulate
//
// The prefetch reads the next pass's rows one pass ahead: when a decode step streams each matrix from memory
// (SmolLM2's shapes cycling through 128 MB of copies, 1 thread) it took 576 x 1536 from ~145 to ~85 us (llama.cpp's
// loop of vec_dot: ~90 us); when the matrix is in cache it costs ~3%.
//
// Scalar: per block an int32 sum, then sumf += (d_w d_x) * isum (+ m_w s_x). Every row's operation sequence is
// the same whatever R is, so results do not depend on the tiling, the thread count or the batch.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define EDGESPEC_LEGACY_SIMD 1
#include <immintrin.h>
#else
#define EDGESPEC_LEGACY_SIMD 0
#endif
#if EDGESPEC_LEGACY_SIMD && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__)
#define EDGESPEC_LEGACY_AVX512 1  // tiles of positions in pairs, one per 512-bit register
#else
#define EDGESPEC_LEGACY_AVX512 0
#endif

#include "edgespec/core/dtype.hpp"
#include "edgespec/kernels/fp16.hpp"
#include "edgespec/kernels/packed.hpp"  // detail::PackedX
#include "edgespec/kernels/quants_legacy.hpp"

namespace edgespec::detail {

namespace legacy {

// Positions per tile of dot_rows_tile: 8 in 512-bit pairs, else 4.
inline constexpr int kLegacyTilePos = EDGESPEC_LEGACY_AVX512 ? 8 : 4;

[[nodiscard]] inline float half_at(const unsigned char* p) noexcept {
  std::uint16_t h;
  std::memcpy(&h, p, 2);
  return half_to_float(h);
}

// Byte offsets of the parts of a block: scale, minimum, fifth bits, nibbles (-1: none).
template <DType T>
struct Layout;
template <>
struct Layout<DType::Q4_1> {
  static constexpr int kM = 2, kQh = -1, kQs = 4;
};
template <>
struct Layout<DType::Q5_0> {
  static constexpr int kM = -1, kQh = 2, kQs = 6;
};
template <>
struct Layout<DType::Q5_1> {
  static constexpr int kM = 2, kQh = 4, kQs = 8;
};
template <>
struct Layout<DType::IQ4_NL> {
  static constexpr int kM = -1, kQh = -1, kQs = 2;
};

#if EDGESPEC_LEGACY_SIMD
// 16 bytes of nibbles -> 32 bytes 0..15: low nibbles (values 0..15), then high nibbles (16..31)
// (the 16 bytes in both halves, the upper half shifted right by 4 per 32-bit lane, then masked)
[[nodiscard]] inline __m256i nibbles(const unsigned char* qs) noexcept {
  const __m256i t = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs)));
  return _mm256_and_si256(_mm256_srlv_epi32(t, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)), _mm256_set1_epi8(0x0f));
}

// qh (u32 at p) -> 32 bytes, 0x10 where bit j is set (byte j)
[[nodiscard]] inline __m256i fifth_bits(const unsigned char* p) noexcept {
  std::int32_t h;
  std::memcpy(&h, p, 4);
  // byte j gets byte j / 8 of qh, then is tested against its own bit 1 << (j % 8)
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(h), _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0));
  const __m256i bit = _mm256_set1_epi64x(static_cast<std::int64_t>(0x8040201008040201ull));
  return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
}

// acc + u (32,) uint8 . s (32,) int8 -> 8 int32, lane i = acc_i + columns 4i..4i+3. One vpdpbusd where AVX-512
// VNNI is; else vpmaddubsw + vpmaddwd, whose int16 pair sums every type here keeps in range (|u s| pairs <=
// 2 * 127 * 127), so both give the same integers.
[[nodiscard]] inline __m256i dot_lanes_acc(__m256i acc, __m256i u, __m256i s) noexcept {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
#endif
}
[[nodiscard]] inline __m256i dot_lanes(__m256i u, __m256i s) noexcept {
  return dot_lanes_acc(_mm256_setzero_si256(), u, s);
}

// f16 d (and m) at the start of a block -> [d, m, 0, 0] (one 32-bit load; without a minimum lane 1 is junk from
// the next field, and unused)
[[nodiscard]] inline __m128 scales(const unsigned char* blk) noexcept {
  std::int32_t v;
  std::memcpy(&v, blk, 4);
  return _mm_cvtph_ps(_mm_cvtsi32_si128(v));
}

[[nodiscard]] inline float hsum8(__m256 v) noexcept {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// One activation block and what the R rows share of it: Q5_0 -16 sum(x) per lane, IQ4_NL |x|.
template <DType T>
struct XBlock {
  __m256i x, aux;
  explicit XBlock(const std::int8_t* q) noexcept : x(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q))) {
    if constexpr (T == DType::Q5_0) aux = _mm256_sub_epi32(_mm256_setzero_si256(), dot_lanes(_mm256_set1_epi8(16), x));
    else if constexpr (T == DType::IQ4_NL) aux = _mm256_abs_epi8(x);
    else aux = _mm256_setzero_si256();
  }
  // Q5_0 with its -16 sum(x) lanes computed once per position (q5_0_offsets).
  XBlock(const std::int8_t* q, const std::int32_t* offsets) noexcept
      : x(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q))),
        aux(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(offsets))) {
    static_assert(T == DType::Q5_0, "XBlock: precomputed lanes are Q5_0's");
  }
};

// A weight block's byte operand (the table at the top; IQ4_NL: the values v).
template <DType T>
[[nodiscard]] inline __m256i block_operand(const unsigned char* blk) noexcept {
  using L = Layout<T>;
  const __m256i u = nibbles(blk + L::kQs);
  if constexpr (T == DType::IQ4_NL) {
    return _mm256_shuffle_epi8(
        _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues))), u);
  } else if constexpr (L::kQh >= 0) {
    return _mm256_or_si256(u, fifth_bits(blk + L::kQh));
  } else {
    return u;
  }
}

// Integer dot of an unpacked weight block with the activations, in 8 lanes (IQ4_NL: |x| . v sign(x), so that only
// the sign step is per row; Q5_0: from its -16 sum(x) lanes).
template <DType T>
[[nodiscard]] inline __m256i operand_dot(__m256i u, const XBlock<T>& xb) noexcept {
  if constexpr (T == DType::IQ4_NL) return dot_lanes(xb.aux, _mm256_sign_epi8(u, xb.x));
  else if constexpr (T == DType::Q5_0) return dot_lanes_acc(xb.aux, u, xb.x);
  else return dot_lanes(u, xb.x);
}
template <DType T>
[[nodiscard]] inline __m256i block_dot(const unsigned char* blk, const XBlock<T>& xb) noexcept {
  return operand_dot<T>(block_operand<T>(blk), xb);
}
#endif

// isum of one block in scalar code
template <DType T>
[[nodiscard]] inline std::int32_t block_isum(const unsigned char* blk, const std::int8_t* x) noexcept {
  using L = Layout<T>;
  int q[kQK];
  unpack_q(blk + L::kQs, L::kQh >= 0 ? blk + L::kQh : nullptr, q);
  std::int32_t s = 0;
  for (int j = 0; j < kQK; ++j) {
    const int w = T == DType::IQ4_NL ? kIq4nlValues[q[j]] : T == DType::Q5_0 ? q[j] - 16 : q[j];
    s += w * x[j];
  }
  return s;
}

// R rows . nb activation blocks; per block b: x_q (32 int8), d_x, s_x (Q8_1 only).
template <DType T, int R, class Act>
inline void dot_rows(const unsigned char* w, std::int64_t ws, std::int64_t nb, Act act, float* out) noexcept {
  constexpr std::int64_t kBlock = block_bytes(T);
  constexpr bool kMin = Layout<T>::kM >= 0;
#if EDGESPEC_LEGACY_SIMD
  if constexpr (R > 4) {  // 8 accumulators and the masks overflow the 16 ymm registers: two passes of 4 rows
    dot_rows<T, 4>(w, ws, nb, act, out);
    dot_rows<T, R - 4>(w + 4 * ws, ws, nb, act, out + 4);
    return;
  }
  __m256 acc[R];
  __m128 mins[R];  // lane 1: sum_b m_w s_x
  for (int r = 0; r < R; ++r) {
    acc[r] = _mm256_setzero_ps();
    mins[r] = _mm_setzero_ps();
  }
  for (std::int64_t b = 0; b < nb; ++b) {
    float dx, sx;
    const std::int8_t* xq = act(b, dx, sx);
    const XBlock<T> xb(xq);
    const __m128 vdx = _mm_set_ss(dx), vsx = _mm_setr_ps(0.0f, sx, 0.0f, 0.0f);
    for (int r = 0; r < R; ++r) {
      const unsigned char* blk = w + r * ws + b * kBlock;
      __builtin_prefetch(blk + R * ws, 0, 3);  // the same block of the next pass's rows
      const __m128 dm = scales(blk);
      const __m256i dot = block_dot<T>(blk, xb);
      acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_mul_ss(dm, vdx)), _mm256_cvtepi32_ps(dot), acc[r]);
      if constexpr (kMin) mins[r] = _mm_fmadd_ps(dm, vsx, mins[r]);
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hsum8(acc[r]) + _mm_cvtss_f32(_mm_movehdup_ps(mins[r]));
#else
  float acc[R];
  for (int r = 0; r < R; ++r) acc[r] = 0.0f;
  for (std::int64_t b = 0; b < nb; ++b) {
    float dx, sx;
    const std::int8_t* xq = act(b, dx, sx);
    for (int r = 0; r < R; ++r) {
      const unsigned char* blk = w + r * ws + b * kBlock;
      float t = half_at(blk) * dx * static_cast<float>(block_isum<T>(blk, xq));
      if constexpr (kMin) t += half_at(blk + Layout<T>::kM) * sx;
      acc[r] += t;
    }
  }
  for (int r = 0; r < R; ++r) out[r] = acc[r];
#endif
}

// Q5_0's -16 sum(x) lanes (8 per block, as XBlock computes them) of one position's nb Q8_0 blocks at q.
inline void q5_0_offsets(const std::int8_t* q, std::int64_t nb, std::int32_t* lanes) noexcept {
  for (std::int64_t b = 0; b < nb; ++b)
    for (int i = 0; i < 8; ++i) {
      const std::int8_t* c = q + b * kQK + 4 * i;
      lanes[b * 8 + i] = -16 * (c[0] + c[1] + c[2] + c[3]);
    }
}

#if EDGESPEC_LEGACY_SIMD
// The P positions' block b, read once for a pass's rows: their int8 values, Q5_0's lanes, and d_x, s_x in lanes
// 0..P-1 (built in registers: a vector load of the floats just stored would wait on store forwarding).
template <int P>
struct TileBlock {
  static_assert(P >= 1 && P <= 8, "TileBlock: 1..8 positions");
  const std::int8_t* xq[P];
  const std::int32_t* offsets[P] = {};
  __m256 dx, sx;
  template <class Act>
  TileBlock(Act& act, std::int64_t b) noexcept {
    float dxs[8] = {}, sxs[8] = {};
    for (int p = 0; p < P; ++p) xq[p] = act(p, b, dxs[p], sxs[p], offsets[p]);
    dx = _mm256_setr_ps(dxs[0], dxs[1], dxs[2], dxs[3], dxs[4], dxs[5], dxs[6], dxs[7]);
    sx = _mm256_setr_ps(sxs[0], sxs[1], sxs[2], sxs[3], sxs[4], sxs[5], sxs[6], sxs[7]);
  }
};
#endif

#if EDGESPEC_LEGACY_AVX512
// dot_rows_tile with positions in pairs: lanes 0-7 of a 512-bit register hold position 2q's 8 lanes, lanes 8-15
// position 2q + 1's (an odd P repeats its last position in the upper half, unused), so one vpdpbusd, one
// conversion and one fused multiply-add serve two positions. Lane for lane the operations of dot_rows.
// (GCC 12's 512-bit broadcasts start from _mm512_undefined_*(), which -Wmaybe-uninitialized reports at every
// inlined call.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
template <DType T, int R, int P, class Act>
inline void dot_rows_tile_pairs(const unsigned char* w, std::int64_t ws, std::int64_t nb, Act act, float* y,
                                std::int64_t ys) noexcept {
  static_assert(T != DType::IQ4_NL, "dot_rows_tile_pairs: IQ4_NL takes the 256-bit tile");
  static_assert(P >= 1 && P <= kLegacyTilePos, "dot_rows_tile_pairs: 1..8 positions");
  constexpr std::int64_t kBlock = block_bytes(T);
  constexpr bool kMin = Layout<T>::kM >= 0;
  constexpr int Q = (P + 1) / 2;
  constexpr int kPassRows = P > 4 ? 2 : 4;  // 2 x 4 or 4 x 2 accumulators of the 32 registers
  if constexpr (R > kPassRows) {
    dot_rows_tile_pairs<T, kPassRows, P>(w, ws, nb, act, y, ys);
    dot_rows_tile_pairs<T, R - kPassRows, P>(w + kPassRows * ws, ws, nb, act, y + kPassRows, ys);
    return;
  }
  const auto pair = [](const void* lo, const void* hi) {
    return _mm512_inserti64x4(_mm512_broadcast_i64x4(_mm256_loadu_si256(static_cast<const __m256i*>(lo))),
                              _mm256_loadu_si256(static_cast<const __m256i*>(hi)), 1);
  };
  __m512i lane_of[Q];  // d_w d_x of positions 2q (lanes 0-7) and 2q + 1 (8-15), from an 8-lane vector
  for (int q = 0; q < Q; ++q)
    lane_of[q] = _mm512_mask_blend_epi32(0xff00, _mm512_set1_epi32(2 * q),
                                         _mm512_set1_epi32(std::min(2 * q + 1, P - 1)));
  __m512 acc[R][Q];
  __m256 mins[R];  // lane p: sum_b m_w s_x of position p
  for (int r = 0; r < R; ++r) {
    for (int q = 0; q < Q; ++q) acc[r][q] = _mm512_setzero_ps();
    mins[r] = _mm256_setzero_ps();
  }
  for (std::int64_t b = 0; b < nb; ++b) {
    const TileBlock<P> tb(act, b);
    __m512i x[Q], seed[Q];  // seed: the integer sums start from Q5_0's -16 sum(x) lanes, else from 0
    for (int q = 0; q < Q; ++q) {
      const int hi = std::min(2 * q + 1, P - 1);
      x[q] = pair(tb.xq[2 * q], tb.xq[hi]);
      if constexpr (T == DType::Q5_0) seed[q] = pair(tb.offsets[2 * q], tb.offsets[hi]);
      else seed[q] = _mm512_setzero_si512();
    }
    for (int r = 0; r < R; ++r) {
      const unsigned char* blk = w + r * ws + b * kBlock;
      __builtin_prefetch(blk + R * ws, 0, 3);  // the same block of the next pass's rows
      const __m128 dm = scales(blk);
      const __m512i u = _mm512_broadcast_i64x4(block_operand<T>(blk));
      // lane p: d_w d_x of position p, the product dot_rows takes with _mm_mul_ss
      const __m512 d = _mm512_castps256_ps512(_mm256_mul_ps(_mm256_broadcastss_ps(dm), tb.dx));
      if constexpr (kMin) mins[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), tb.sx, mins[r]);
      for (int q = 0; q < Q; ++q)
        acc[r][q] = _mm512_fmadd_ps(_mm512_permutexvar_ps(lane_of[q], d),
                                    _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(seed[q], u, x[q])), acc[r][q]);
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(32) float m[8];
    _mm256_store_ps(m, mins[r]);
    for (int q = 0; q < Q; ++q) {
      y[2 * q * ys + r] = hsum8(_mm512_castps512_ps256(acc[r][q])) + m[2 * q];
      if (2 * q + 1 < P)
        y[(2 * q + 1) * ys + r] =
            hsum8(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc[r][q]), 1))) + m[2 * q + 1];
    }
  }
}
#pragma GCC diagnostic pop
#endif

// R rows . P positions (y[p * ys + r]); act(p, b, d_x, s_x, offsets) gives position p's block b (offsets: Q5_0's
// lanes for it). Each weight block is unpacked once for the P positions; per (row, position) the operations, and
// so the floats, are dot_rows's.
template <DType T, int R, int P, class Act>
inline void dot_rows_tile(const unsigned char* w, std::int64_t ws, std::int64_t nb, Act act, float* y,
                          std::int64_t ys) noexcept {
  static_assert(P >= 1 && P <= kLegacyTilePos, "dot_rows_tile: 1..kLegacyTilePos positions");
  constexpr std::int64_t kBlock = block_bytes(T);
  constexpr bool kMin = Layout<T>::kM >= 0;
#if EDGESPEC_LEGACY_AVX512
  if constexpr (T != DType::IQ4_NL && P >= 2) {
    dot_rows_tile_pairs<T, R, P>(w, ws, nb, act, y, ys);
    return;
  }
#endif
#if EDGESPEC_LEGACY_SIMD
  if constexpr (R > 2) {  // passes of 2 rows: 2 x P accumulators fit the 16 ymm registers of AVX2 (P <= 4)
    dot_rows_tile<T, 2, P>(w, ws, nb, act, y, ys);
    dot_rows_tile<T, R - 2, P>(w + 2 * ws, ws, nb, act, y + 2, ys);
    return;
  }
  __m256 acc[R][P];
  __m256 mins[R];  // lane p: sum_b m_w s_x of position p (lane 1 of dot_rows's fused multiply-adds)
  for (int r = 0; r < R; ++r) {
    for (int p = 0; p < P; ++p) acc[r][p] = _mm256_setzero_ps();
    mins[r] = _mm256_setzero_ps();
  }
  for (std::int64_t b = 0; b < nb; ++b) {
    const TileBlock<P> tb(act, b);
    for (int r = 0; r < R; ++r) {
      const unsigned char* blk = w + r * ws + b * kBlock;
      __builtin_prefetch(blk + R * ws, 0, 3);  // the same block of the next pass's rows
      const __m128 dm = scales(blk);
      const __m256i u = block_operand<T>(blk);
      // lane p: d_w d_x of position p, the product dot_rows takes with _mm_mul_ss
      const __m256 d = _mm256_mul_ps(_mm256_broadcastss_ps(dm), tb.dx);
      if constexpr (kMin) mins[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(dm)), tb.sx, mins[r]);
      for (int p = 0; p < P; ++p) {
        const XBlock<T> xb = [&] {
          if constexpr (T == DType::Q5_0) return XBlock<T>(tb.xq[p], tb.offsets[p]);
          else return XBlock<T>(tb.xq[p]);
        }();
        acc[r][p] = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d, _mm256_set1_epi32(p)),
                                    _mm256_cvtepi32_ps(operand_dot<T>(u, xb)), acc[r][p]);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    alignas(32) float m[8];
    _mm256_store_ps(m, mins[r]);
    for (int p = 0; p < P; ++p) y[p * ys + r] = hsum8(acc[r][p]) + m[p];
  }
#else
  for (int p = 0; p < P; ++p) {
    float out[R];
    dot_rows<T, R>(w, ws, nb, [&](std::int64_t b, float& d, float& s) {
      const std::int32_t* offsets;
      return act(p, b, d, s, offsets);
    }, out);
    for (int r = 0; r < R; ++r) y[p * ys + r] = out[r];
  }
#endif
}

}  // namespace legacy

// R rows of W (type T = Q5_0 or IQ4_NL; row i at w + i * ws, nb blocks each) . one position's Q8_0 activations
// x (x.q: nb * 32 int8, x.d: nb f16-rounded scales as f32) -> out[0..R).
template <DType T, int R>
inline void dot_rows_q8_0_acts(const unsigned char* w, std::int64_t ws, const PackedX& x, std::int64_t nb,
                               float* out) noexcept {
  static_assert(T == DType::Q5_0 || T == DType::IQ4_NL, "dot_rows_q8_0_acts: weights must be Q5_0 or IQ4_NL");
  legacy::dot_rows<T, R>(w, ws, nb,
                         [&x](std::int64_t b, float& d, float& s) {
                           d = x.d[b];
                           s = 0.0f;
                           return x.q + b * kQK;
                         },
                         out);
}

// R rows of W (type T = Q5_0 or IQ4_NL) . P positions' Q8_0 activations xs[0..P) -> y[p * ys + r].
// Q5_0: offsets (P, nb, 8) from legacy::q5_0_offsets.
template <DType T, int R, int P>
inline void dot_rows_q8_0_acts_tile(const unsigned char* w, std::int64_t ws, const PackedX* xs,
                                    const std::int32_t* offsets, std::int64_t nb, float* y, std::int64_t ys) noexcept {
  static_assert(T == DType::Q5_0 || T == DType::IQ4_NL, "dot_rows_q8_0_acts_tile: weights must be Q5_0 or IQ4_NL");
  legacy::dot_rows_tile<T, R, P>(w, ws, nb,
                                 [xs, offsets, nb](int p, std::int64_t b, float& d, float& s, const std::int32_t*& o) {
                                   d = xs[p].d[b];
                                   s = 0.0f;
                                   o = offsets + (p * nb + b) * 8;
                                   return xs[p].q + b * kQK;
                                 },
                                 y, ys);
}

// R rows of W (type T = Q4_1 or Q5_1) . P positions' Q8_1 activations (position p at x + p * xs, nb blocks;
// ds: their (d, s) as floats, 2 per block, same layout) -> y[p * ys + r].
template <DType T, int R, int P>
inline void dot_rows_q8_1_acts_tile(const unsigned char* w, std::int64_t ws, const BlockQ8_1* x, const float* ds,
                                    std::int64_t xs, std::int64_t nb, float* y, std::int64_t ys) noexcept {
  static_assert(T == DType::Q4_1 || T == DType::Q5_1, "dot_rows_q8_1_acts_tile: weights must be Q4_1 or Q5_1");
  legacy::dot_rows_tile<T, R, P>(w, ws, nb,
                                 [x, ds, xs](int p, std::int64_t b, float& d, float& s, const std::int32_t*&) {
                                   const std::int64_t i = p * xs + b;
                                   d = ds[2 * i];
                                   s = ds[2 * i + 1];
                                   return x[i].q;
                                 },
                                 y, ys);
}

// R rows of W (type T = Q4_1 or Q5_1) . one position's Q8_1 activations x (nb blocks) -> out[0..R).
template <DType T, int R>
inline void dot_rows_q8_1_acts(const unsigned char* w, std::int64_t ws, const BlockQ8_1* x, std::int64_t nb,
                               float* out) noexcept {
  static_assert(T == DType::Q4_1 || T == DType::Q5_1, "dot_rows_q8_1_acts: weights must be Q4_1 or Q5_1");
  legacy::dot_rows<T, R>(w, ws, nb,
                         [x](std::int64_t b, float& d, float& s) {
                           d = half_to_float(x[b].d);
                           s = half_to_float(x[b].s);
                           return x[b].q;
                         },
                         out);
}

}  // namespace edgespec::detail
