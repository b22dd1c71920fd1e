// The K-quant quantizers' search (kernels/quants_k.hpp packs its results into blocks). It minimizes the plain
// squared error sum (x - x')^2 of the dequantized values x' of one super-block of 256 values:
//
//   affine    (Q2_K, Q4_K, Q5_K)  x' = d * sc_j * q - dmin * m_j    q in 0..kQmax, codes sc_j, m_j in 0..kCodeMax
//   symmetric (Q3_K, Q6_K)        x' = d * sc_j * q                 q in kQlo..kQhi, codes sc_j in kCodeLo..kCodeHi
//
// in three steps:
//   1. per sub-block j, real (s_j, m_j) or s_j: a grid of scales around range / levels, each refined twice by
//      [least-squares fit of the scale (and min) for the rounded levels, rounding again], the best kept;
//   2. f16 super-scales from the largest s_j (and m_j) as llama.cpp takes them (the largest s_j at the extreme
//      code; symmetric: also at the most positive code; a subnormal f16 scale: also the next f16 up), then per
//      sub-block the best of the 3 x 3 (affine) or 3 codes around the rounded ones, each with its levels rounded
//      again: the error is measured on exactly the values the dequantizer will produce;
//   3. a least-squares fit of the super-scales for the chosen codes and levels, rounded to f16, and step 2
//      again; kept if the error went down.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/kernels/fp16.hpp"

namespace edgespec::detail::kquant {

struct AffineCodes {
  std::uint16_t d = 0, dmin = 0;  // f16
  std::uint8_t sc[16] = {}, m[16] = {};
  std::uint8_t q[kQKK] = {};
};

struct SymmetricCodes {
  std::uint16_t d = 0;  // f16
  int sc[16] = {};
  std::int8_t q[kQKK] = {};
};

// The scale grid of step 1: range / (levels + t), t = -1, -0.8, .., 1. (Steps of 0.1 and three refinements
// instead of two lowered the error by under 0.1% on the test rows, at twice the time.)
inline constexpr int kGridSteps = 11;
[[nodiscard]] constexpr float grid_offset(int t) noexcept { return -1.0f + 0.2f * static_cast<float>(t); }

// Sums over a sub-block are kept in kLanes partial sums (independent chains the compiler can vectorize).
inline constexpr int kLanes = 8;
[[nodiscard]] inline float lane_sum(const float* v) noexcept {
  return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

// f32 -> f16 super-scale; one past the f16 range means values no K-quant can hold.
[[nodiscard]] inline std::uint16_t super_scale(float v, const char* what) {
  const std::uint16_t h = fp32_to_fp16(v);
  ES_CHECK(std::isfinite(half_to_float(h)), "quantize_row_", what, ": a super-block scale of ", v,
           " overflows f16 (the values are too large for this type)");
  return h;
}

// Zero or subnormal (exponent field 0) f16.
[[nodiscard]] constexpr bool is_f16_subnormal(std::uint16_t h) noexcept { return (h & 0x7c00u) == 0; }

// ---------------------------------------------------------------- affine: x' = s * q - m

// x (kN,) -> levels q = clamp(round((x + m) / s), 0, kQmax) (as floats) and the squared error of s * q - m.
template <int kN, int kQmax>
[[nodiscard]] inline float affine_levels(const float* x, float s, float m, float* q) noexcept {
  const float inv = s > 0.0f ? 1.0f / s : 0.0f;
  float err[kLanes] = {};
  for (int i0 = 0; i0 < kN; i0 += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const int i = i0 + l;
      q[i] = std::clamp(std::nearbyint((x[i] + m) * inv), 0.0f, static_cast<float>(kQmax));
      const float e = s * q[i] - m - x[i];
      err[l] += e * e;
    }
  return lane_sum(err);
}

// Least-squares (s, m) for x ~ s * q - m with m >= 0; false when the levels do not determine a scale.
template <int kN>
[[nodiscard]] inline bool affine_fit(const float* x, const float* q, float& s, float& m) noexcept {
  float lq[kLanes] = {}, lqq[kLanes] = {}, lx[kLanes] = {}, lxq[kLanes] = {};
  for (int i0 = 0; i0 < kN; i0 += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const int i = i0 + l;
      lq[l] += q[i];
      lqq[l] += q[i] * q[i];
      lx[l] += x[i];
      lxq[l] += x[i] * q[i];
    }
  const float sq = lane_sum(lq), sqq = lane_sum(lqq), sx = lane_sum(lx), sxq = lane_sum(lxq);
  const float det = kN * sqq - sq * sq;
  if (!(det > 0.0f)) return false;
  s = (kN * sxq - sx * sq) / det;
  const float offset = (sqq * sx - sq * sxq) / det;
  m = -offset;
  if (m < 0.0f) {  // the format's offset is -dmin * m_j <= 0
    m = 0.0f;
    s = sxq / sqq;
  }
  return s > 0.0f;
}

// Step 1 for one affine sub-block x (kN,): real s >= 0, m >= 0.
template <int kN, int kQmax>
inline void fit_affine(const float* x, float& s_out, float& m_out) noexcept {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < kN; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  lo = std::min(lo, 0.0f);
  s_out = 0.0f;
  m_out = -lo;
  if (!(hi > lo)) return;
  float q[kN];
  float best = affine_levels<kN, kQmax>(x, 0.0f, -lo, q);
  for (int t = 0; t < kGridSteps; ++t) {
    float s = (hi - lo) / (static_cast<float>(kQmax) + grid_offset(t)), m = -lo;
    float err = affine_levels<kN, kQmax>(x, s, m, q);
    for (int it = 0; it < 2; ++it) {
      if (err < best) {
        best = err;
        s_out = s;
        m_out = m;
      }
      if (!affine_fit<kN>(x, q, s, m)) break;
      err = affine_levels<kN, kQmax>(x, s, m, q);
    }
    if (err < best) {
      best = err;
      s_out = s;
      m_out = m;
    }
  }
}

// Step 2: codes and levels of every sub-block for super-scales (d, dmin); returns the super-block's error.
template <int kSub, int kQmax, int kCodeMax>
inline float affine_codes(const float* x, const float* s, const float* m, std::uint16_t d16, std::uint16_t dmin16,
                          AffineCodes& c) noexcept {
  constexpr int kNs = kQKK / kSub;
  const float d = half_to_float(d16), dmin = half_to_float(dmin16);
  c.d = d16;
  c.dmin = dmin16;
  float total = 0.0f;
  for (int j = 0; j < kNs; ++j) {
    const float* xj = x + kSub * j;
    const int s0 = d > 0.0f ? std::clamp(static_cast<int>(std::nearbyint(s[j] / d)), 0, kCodeMax) : 0;
    const int m0 = dmin > 0.0f ? std::clamp(static_cast<int>(std::nearbyint(m[j] / dmin)), 0, kCodeMax) : 0;
    float best = std::numeric_limits<float>::infinity(), q[kSub], best_q[kSub] = {};
    for (int cs = std::max(s0 - 1, 0); cs <= std::min(s0 + 1, kCodeMax); ++cs) {
      if (cs != 0 && d == 0.0f) break;
      for (int cm = std::max(m0 - 1, 0); cm <= std::min(m0 + 1, kCodeMax); ++cm) {
        if (cm != 0 && dmin == 0.0f) break;
        const float err =
            affine_levels<kSub, kQmax>(xj, d * static_cast<float>(cs), dmin * static_cast<float>(cm), q);
        if (err < best) {
          best = err;
          c.sc[j] = static_cast<std::uint8_t>(cs);
          c.m[j] = static_cast<std::uint8_t>(cm);
          std::copy(q, q + kSub, best_q);
        }
      }
    }
    for (int i = 0; i < kSub; ++i) c.q[kSub * j + i] = static_cast<std::uint8_t>(best_q[i]);
    total += best;
  }
  return total;
}

// One super-block x (256,) -> codes, levels and f16 super-scales of an affine K-quant.
template <int kSub, int kQmax, int kCodeMax>
[[nodiscard]] inline AffineCodes quantize_affine(const float* x, const char* what) {
  constexpr int kNs = kQKK / kSub;
  float s[kNs], m[kNs], max_s = 0.0f, max_m = 0.0f;
  for (int j = 0; j < kNs; ++j) {
    fit_affine<kSub, kQmax>(x + kSub * j, s[j], m[j]);
    max_s = std::max(max_s, s[j]);
    max_m = std::max(max_m, m[j]);
  }
  AffineCodes best, c;
  const std::uint16_t d0 = super_scale(max_s / kCodeMax, what), dmin0 = super_scale(max_m / kCodeMax, what);
  float best_err = affine_codes<kSub, kQmax, kCodeMax>(x, s, m, d0, dmin0, best);
  if ((is_f16_subnormal(d0) && max_s > 0.0f) || (is_f16_subnormal(dmin0) && max_m > 0.0f)) {
    // few significant bits (or rounded to zero): the next f16 up may serve the codes better
    const float err = affine_codes<kSub, kQmax, kCodeMax>(
        x, s, m, static_cast<std::uint16_t>(d0 + (is_f16_subnormal(d0) && max_s > 0.0f)),
        static_cast<std::uint16_t>(dmin0 + (is_f16_subnormal(dmin0) && max_m > 0.0f)), c);
    if (err < best_err) {
      best_err = err;
      best = c;
    }
  }
  for (int it = 0; it < 2; ++it) {
    // step 3: x ~ d A - dmin B with A = sc_j q, B = m_j
    double aa = 0, ab = 0, bb = 0, xa = 0, xb = 0;
    for (int i = 0; i < kQKK; ++i) {
      const double a = static_cast<double>(best.sc[i / kSub]) * best.q[i], b = best.m[i / kSub];
      aa += a * a;
      ab += a * b;
      bb += b * b;
      xa += x[i] * a;
      xb += x[i] * b;
    }
    const double det = aa * bb - ab * ab;
    double d, dmin;
    if (bb == 0.0) {
      if (!(aa > 0.0)) break;
      d = xa / aa;
      dmin = 0.0;
    } else {
      if (!(det > 0.0)) break;
      d = (xa * bb - ab * xb) / det;
      dmin = (ab * xa - aa * xb) / det;
    }
    if (!(d > 0.0) || dmin < 0.0) break;
    const float err = affine_codes<kSub, kQmax, kCodeMax>(x, s, m, super_scale(static_cast<float>(d), what),
                                                          super_scale(static_cast<float>(dmin), what), c);
    if (!(err < best_err)) break;
    best_err = err;
    best = c;
  }
  return best;
}

// ---------------------------------------------------------------- symmetric: x' = s * q

// x (kN,) -> levels q = clamp(round(x / s), kQlo, kQhi) and the squared error of s * q.
template <int kN, int kQlo, int kQhi>
[[nodiscard]] inline float symmetric_levels(const float* x, float s, float* q) noexcept {
  const float inv = s != 0.0f ? 1.0f / s : 0.0f;
  float err[kLanes] = {};
  for (int i0 = 0; i0 < kN; i0 += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      const int i = i0 + l;
      q[i] = std::clamp(std::nearbyint(x[i] * inv), static_cast<float>(kQlo), static_cast<float>(kQhi));
      const float e = s * q[i] - x[i];
      err[l] += e * e;
    }
  return lane_sum(err);
}

// Step 1 for one symmetric sub-block x (kN,): the real scale s (either sign: the levels are not symmetric).
template <int kN, int kQlo, int kQhi>
[[nodiscard]] inline float fit_symmetric(const float* x) noexcept {
  float amax = 0.0f, a = 0.0f;
  for (int i = 0; i < kN; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      a = x[i];
    }
  }
  if (amax == 0.0f) return 0.0f;
  float q[kN], best = std::numeric_limits<float>::infinity(), best_s = 0.0f;
  for (int side = 0; side < 2; ++side) {
    for (int t = 0; t < kGridSteps; ++t) {
      // a -> level kQlo - t or kQhi + t
      float s = side == 0 ? a / (static_cast<float>(kQlo) - grid_offset(t))
                          : a / (static_cast<float>(kQhi) + grid_offset(t));
      for (int it = 0; it < 2; ++it) {
        const float err = symmetric_levels<kN, kQlo, kQhi>(x, s, q);
        if (err < best) {
          best = err;
          best_s = s;
        }
        float lxq[kLanes] = {}, lqq[kLanes] = {};
        for (int i0 = 0; i0 < kN; i0 += kLanes)
          for (int l = 0; l < kLanes; ++l) {
            lxq[l] += x[i0 + l] * q[i0 + l];
            lqq[l] += q[i0 + l] * q[i0 + l];
          }
        const float sxq = lane_sum(lxq), sqq = lane_sum(lqq);
        if (!(sqq > 0.0f)) break;
        s = sxq / sqq;
      }
    }
  }
  return best_s;
}

// Step 2 for the symmetric types.
template <int kQlo, int kQhi, int kCodeLo, int kCodeHi>
inline float symmetric_codes(const float* x, const float* s, std::uint16_t d16, SymmetricCodes& c) noexcept {
  const float d = half_to_float(d16);
  c.d = d16;
  float total = 0.0f;
  for (int j = 0; j < 16; ++j) {
    const float* xj = x + 16 * j;
    const int c0 = d != 0.0f ? std::clamp(static_cast<int>(std::nearbyint(s[j] / d)), kCodeLo, kCodeHi) : 0;
    float best = std::numeric_limits<float>::infinity(), q[16], best_q[16] = {};
    for (int cs = std::max(c0 - 1, kCodeLo); cs <= std::min(c0 + 1, kCodeHi); ++cs) {
      const float err = symmetric_levels<16, kQlo, kQhi>(xj, d * static_cast<float>(cs), q);
      if (err < best) {
        best = err;
        c.sc[j] = cs;
        std::copy(q, q + 16, best_q);
      }
    }
    for (int i = 0; i < 16; ++i) c.q[16 * j + i] = static_cast<std::int8_t>(best_q[i]);
    total += best;
  }
  return total;
}

// One super-block x (256,) -> codes, levels and the f16 super-scale of a symmetric K-quant (16 sub-blocks of 16).
template <int kQlo, int kQhi, int kCodeLo, int kCodeHi>
[[nodiscard]] inline SymmetricCodes quantize_symmetric(const float* x, const char* what) {
  float s[16], big = 0.0f;
  for (int j = 0; j < 16; ++j) {
    s[j] = fit_symmetric<16, kQlo, kQhi>(x + 16 * j);
    if (std::fabs(s[j]) > std::fabs(big)) big = s[j];
  }
  SymmetricCodes best, c;
  if (big == 0.0f) {  // all zero: d = 0, levels 0
    return best;
  }
  // the largest scale at the most negative code (as llama.cpp), or at the most positive one
  const std::uint16_t d0 = super_scale(big / kCodeLo, what);
  float best_err = symmetric_codes<kQlo, kQhi, kCodeLo, kCodeHi>(x, s, d0, best);
  for (const std::uint16_t d : {super_scale(big / kCodeHi, what), static_cast<std::uint16_t>(d0 + 1)}) {
    if (d == d0 + 1 && !is_f16_subnormal(d0)) break;  // the next f16 up, where d0 has few significant bits
    const float err = symmetric_codes<kQlo, kQhi, kCodeLo, kCodeHi>(x, s, d, c);
    if (err < best_err) {
      best_err = err;
      best = c;
    }
  }
  for (int it = 0; it < 2; ++it) {  // step 3: x ~ d A with A = sc_j q
    double aa = 0, xa = 0;
    for (int i = 0; i < kQKK; ++i) {
      const double a = static_cast<double>(best.sc[i / 16]) * best.q[i];
      aa += a * a;
      xa += x[i] * a;
    }
    if (!(aa > 0.0)) break;
    const float err =
        symmetric_codes<kQlo, kQhi, kCodeLo, kCodeHi>(x, s, super_scale(static_cast<float>(xa / aa), what), c);
    if (!(err < best_err)) break;
    best_err = err;
    best = c;
  }
  return best;
}

}  // namespace edgespec::detail::kquant
