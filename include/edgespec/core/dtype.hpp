// Weight element types, numbered as GGML/GGUF numbers them, with their block layouts (ggml-common.h).
// x = value, d/m/dmin = f16 scales, q = quant. "32-blocks" hold 32 values, "K-quants" super-blocks of 256.
//
//   F32    4 bytes per value;  F16: IEEE half;  BF16: bfloat16 (upper half of an f32)
//   Q8_0   { d; i8 qs[32] }                          x[i] = d * qs[i]                               34 B / 32
//   Q4_0   { d; u8 qs[16] }                          x[i] = d * ((qs[i] & 15) - 8),  x[i+16] with >> 4   18 B / 32
//   Q4_1   { d; m; u8 qs[16] }                       x[i] = d * (qs[i] & 15) + m,    x[i+16] with >> 4   20 B / 32
//   Q5_0   { d; u8 qh[4]; u8 qs[16] }                q = nibble | bit j of qh (as u32) << 4, x = d * (q - 16);
//                                                    value j < 16: low nibble of qs[j], bit j; value j+16: high
//                                                    nibble, bit j+16                                22 B / 32
//   Q5_1   { d; m; u8 qh[4]; u8 qs[16] }             q as Q5_0, x = d * q + m                        24 B / 32
//   IQ4_NL { d; u8 qs[16] }                          nibbles as Q4_0, x = d * kIq4nlValues[nibble]    18 B / 32
//   Q8_1   { d; s; i8 qs[32] }   (activations only)  x = d * qs, s = d * sum(qs)                     36 B / 32
//   Q2_K   { u8 scales[16]; u8 qs[64]; d; dmin }     16 sub-blocks of 16: sc = scales & 15, mn = scales >> 4,
//                                                    x = d * sc * q - dmin * mn, q 2-bit             84 B / 256
//   Q3_K   { u8 hmask[32]; u8 qs[64]; u8 scales[12]; d }
//                                                    16 sub-blocks of 16, 6-bit signed scales (- 32), q = 2 low
//                                                    bits | high bit from hmask, x = d * sc * (q - 4 if the high
//                                                    bit is clear else q)                          110 B / 256
//   Q4_K   { d; dmin; u8 scales[12]; u8 qs[128] }    8 sub-blocks of 32, 6-bit scale and min each,
//                                                    x = d * sc * q - dmin * mn, q 4-bit            144 B / 256
//   Q5_K   { d; dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }  as Q4_K with a 5th bit from qh       176 B / 256
//   Q6_K   { u8 ql[128]; u8 qh[64]; i8 scales[16]; d }  16 sub-blocks of 16, x = d * sc * (q - 32), q 6-bit
//                                                                                                 210 B / 256
//   Q8_K   { f32 d; i8 qs[256]; i16 bsums[16] }  (activations only) x = d * qs, bsums = sums of 16  292 B / 256
//
// The exact bit positions inside the K-quant blocks are documented beside their dequantizers
// (kernels/quants_k.hpp); docs/formats.md has the whole table.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "edgespec/core/error.hpp"

namespace edgespec {

enum class DType : std::uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, IQ4_NL = 20, BF16 = 30
};

inline constexpr int kQK = 32;    // values per 32-block (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, IQ4_NL)
inline constexpr int kQKK = 256;  // values per K-quant super-block (Q2_K .. Q6_K, Q8_K)
inline constexpr int kKScaleSize = 12;  // bytes of packed 6-bit scales/mins in Q3_K, Q4_K, Q5_K

struct BlockQ8_0 {
  std::uint16_t d;  // f16 scale
  std::int8_t q[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ4_0 {
  std::uint16_t d;  // f16 scale
  std::uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

struct BlockQ4_1 {
  std::uint16_t d, m;  // f16 scale and minimum
  std::uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

struct BlockQ5_0 {
  std::uint16_t d;
  std::uint8_t qh[4];  // 5th bits, a little-endian u32
  std::uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

struct BlockQ5_1 {
  std::uint16_t d, m;
  std::uint8_t qh[4];
  std::uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

struct BlockQ8_1 {
  std::uint16_t d, s;  // f16 scale, f16 d * sum(q)
  std::int8_t q[kQK];
};
static_assert(sizeof(BlockQ8_1) == 36);

struct BlockIQ4_NL {
  std::uint16_t d;
  std::uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

// IQ4_NL's 16 levels (a non-uniform grid, denser near zero).
inline constexpr std::int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                 1,    13,   25,  38,  53,  69,  89,  113};

struct BlockQ2_K {
  std::uint8_t scales[kQKK / 16];  // per 16 values: low nibble scale, high nibble min
  std::uint8_t qs[kQKK / 4];       // 2-bit quants
  std::uint16_t d, dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

struct BlockQ3_K {
  std::uint8_t hmask[kQKK / 8];  // high bits
  std::uint8_t qs[kQKK / 4];     // low 2 bits
  std::uint8_t scales[kKScaleSize];  // 16 6-bit scales
  std::uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

struct BlockQ4_K {
  std::uint16_t d, dmin;
  std::uint8_t scales[kKScaleSize];  // 8 6-bit scales and 8 6-bit mins
  std::uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

struct BlockQ5_K {
  std::uint16_t d, dmin;
  std::uint8_t scales[kKScaleSize];
  std::uint8_t qh[kQKK / 8];
  std::uint8_t qs[kQKK / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

struct BlockQ6_K {
  std::uint8_t ql[kQKK / 2];  // low 4 bits
  std::uint8_t qh[kQKK / 4];  // high 2 bits
  std::int8_t scales[kQKK / 16];
  std::uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

struct BlockQ8_K {
  float d;
  std::int8_t q[kQKK];
  std::int16_t bsums[kQKK / 16];  // sums of q per 16
};
static_assert(sizeof(BlockQ8_K) == 292);

// Weight types a model file may hold (Q8_1 and Q8_K exist for activations only).
[[nodiscard]] constexpr bool is_supported(std::uint32_t t) noexcept {
  switch (t) {
    case 0: case 1: case 2: case 3: case 6: case 7: case 8:
    case 10: case 11: case 12: case 13: case 14: case 20: case 30: return true;
    default: return false;
  }
}

// Every weight type, in the order tools list them.
inline constexpr DType kWeightTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                                         DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                                         DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::IQ4_NL};

// GGML's names for every type id it defines, so an unsupported one is reported by name.
[[nodiscard]] constexpr std::string_view ggml_type_name(std::uint32_t t) noexcept {
  constexpr std::string_view names[] = {
      "F32",     "F16",    "Q4_0",    "Q4_1",   "Q4_2(removed)", "Q4_3(removed)", "Q5_0",  "Q5_1",
      "Q8_0",    "Q8_1",   "Q2_K",    "Q3_K",   "Q4_K",          "Q5_K",          "Q6_K",  "Q8_K",
      "IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S",  "IQ4_NL",        "IQ3_S",         "IQ2_S", "IQ4_XS",
      "I8",      "I16",    "I32",     "I64",    "F64",           "IQ1_M",         "BF16",  "Q4_0_4_4",
      "Q4_0_4_8", "Q4_0_8_8", "TQ1_0", "TQ2_0"};
  return t < std::size(names) ? names[t] : std::string_view("unknown");
}

[[nodiscard]] constexpr std::string_view name(DType t) noexcept {
  return ggml_type_name(static_cast<std::uint32_t>(t));
}

// K-quants (and Q8_K): super-blocks of 256 values.
[[nodiscard]] constexpr bool is_k_quant(DType t) noexcept {
  return t == DType::Q2_K || t == DType::Q3_K || t == DType::Q4_K || t == DType::Q5_K || t == DType::Q6_K ||
         t == DType::Q8_K;
}
// Block-quantized (everything but F32/F16/BF16).
[[nodiscard]] constexpr bool is_quantized(DType t) noexcept {
  return t != DType::F32 && t != DType::F16 && t != DType::BF16;
}

// Values per block and bytes per block.
[[nodiscard]] constexpr std::int64_t block_values(DType t) noexcept {
  return is_k_quant(t) ? kQKK : is_quantized(t) ? kQK : 1;
}
[[nodiscard]] constexpr std::int64_t block_bytes(DType t) noexcept {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16:
    case DType::BF16: return 2;
    case DType::Q8_0: return sizeof(BlockQ8_0);
    case DType::Q4_0: return sizeof(BlockQ4_0);
    case DType::Q4_1: return sizeof(BlockQ4_1);
    case DType::Q5_0: return sizeof(BlockQ5_0);
    case DType::Q5_1: return sizeof(BlockQ5_1);
    case DType::Q8_1: return sizeof(BlockQ8_1);
    case DType::IQ4_NL: return sizeof(BlockIQ4_NL);
    case DType::Q2_K: return sizeof(BlockQ2_K);
    case DType::Q3_K: return sizeof(BlockQ3_K);
    case DType::Q4_K: return sizeof(BlockQ4_K);
    case DType::Q5_K: return sizeof(BlockQ5_K);
    case DType::Q6_K: return sizeof(BlockQ6_K);
    case DType::Q8_K: return sizeof(BlockQ8_K);
  }
  return 0;
}
// Bytes of one row of n values (n must be a multiple of block_values(t)).
[[nodiscard]] constexpr std::int64_t row_bytes(DType t, std::int64_t n) noexcept {
  return n / block_values(t) * block_bytes(t);
}

// The type llama.cpp quantizes activations to for a product with weights of type t (its vec_dot_type):
// Q8_0 for Q4_0/Q5_0/Q8_0/IQ4_NL, Q8_1 for Q4_1/Q5_1, Q8_K for the K-quants; F16/BF16 round the activations to
// their own type; F32 keeps them.
[[nodiscard]] constexpr DType activation_type(DType t) noexcept {
  switch (t) {
    case DType::Q4_0: case DType::Q5_0: case DType::Q8_0: case DType::IQ4_NL: return DType::Q8_0;
    case DType::Q4_1: case DType::Q5_1: return DType::Q8_1;
    case DType::Q2_K: case DType::Q3_K: case DType::Q4_K: case DType::Q5_K: case DType::Q6_K: return DType::Q8_K;
    default: return t;
  }
}

// Parse "f32", "F16", "q8_0", ... (as the CLI tools take them).
[[nodiscard]] inline DType parse_dtype(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  std::string valid;
  for (DType t : kWeightTypes) {
    if (u == name(t)) return t;
    std::string l(name(t));
    for (char& c : l) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    valid += (valid.empty() ? "" : ", ") + l;
  }
  throw_error("unknown weight type '", s, "' (expected one of ", valid, ")");
}

// ---- scalar conversions (the SIMD kernels use hardware conversion where available) ----

[[nodiscard]] inline float fp16_to_fp32(std::uint16_t h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | static_cast<std::uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 127 - 15) << 23 | mant << 13;
  }
  return std::bit_cast<float>(bits);
}

// Round-to-nearest-even f32 -> f16.
[[nodiscard]] inline std::uint16_t fp32_to_fp16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = (x >> 16) & 0x8000u;
  const std::uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return static_cast<std::uint16_t>(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0u));
  if (ax >= 0x477ff000u) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (ax < 0x38800000u) {                                                   // subnormal or zero in f16
    if (ax < 0x33000000u) return static_cast<std::uint16_t>(sign);
    const std::uint32_t e = ax >> 23;
    const std::uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    const std::uint32_t shift = 126 - e;  // 14 + (113 - e)
    std::uint32_t r = m >> (shift);
    const std::uint32_t rem = m & ((1u << shift) - 1);
    const std::uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return static_cast<std::uint16_t>(sign | r);
  }
  std::uint32_t r = ((ax >> 13) - (112u << 10));
  const std::uint32_t rem = ax & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return static_cast<std::uint16_t>(sign | r);
}

[[nodiscard]] inline float bf16_to_fp32(std::uint16_t h) noexcept {
  return std::bit_cast<float>(static_cast<std::uint32_t>(h) << 16);
}
[[nodiscard]] inline std::uint16_t fp32_to_bf16(float f) noexcept {
  std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>(x >> 16);
}

}  // namespace edgespec
