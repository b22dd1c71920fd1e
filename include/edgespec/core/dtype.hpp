// Weight element types, numbered as GGML/GGUF numbers them, with their block layouts.
//
//   F32   4 bytes per value
//   F16   IEEE half, 2 bytes per value
//   BF16  bfloat16 (upper half of an f32), 2 bytes per value
//   Q8_0  blocks of 32: { f16 d; int8 q[32]; }          x[i] = d * q[i]                 (34 bytes / 32 values)
//   Q4_0  blocks of 32: { f16 d; uint8 qs[16]; }        x[i]      = d * ((qs[i] & 15) - 8)   i < 16
//                                                        x[i + 16] = d * ((qs[i] >> 4) - 8)   (18 bytes / 32 values)
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "edgespec/core/error.hpp"

namespace edgespec {

enum class DType : std::uint32_t { F32 = 0, F16 = 1, Q4_0 = 2, Q8_0 = 8, BF16 = 30 };

inline constexpr int kQK = 32;  // values per Q8_0 / Q4_0 block

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

[[nodiscard]] constexpr bool is_supported(std::uint32_t t) noexcept {
  return t == 0 || t == 1 || t == 2 || t == 8 || t == 30;
}

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

// Values per block and bytes per block.
[[nodiscard]] constexpr std::int64_t block_values(DType t) noexcept {
  return (t == DType::Q8_0 || t == DType::Q4_0) ? kQK : 1;
}
[[nodiscard]] constexpr std::int64_t block_bytes(DType t) noexcept {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16:
    case DType::BF16: return 2;
    case DType::Q8_0: return sizeof(BlockQ8_0);
    case DType::Q4_0: return sizeof(BlockQ4_0);
  }
  return 0;
}
// Bytes of one row of n values (n must be a multiple of block_values(t)).
[[nodiscard]] constexpr std::int64_t row_bytes(DType t, std::int64_t n) noexcept {
  return n / block_values(t) * block_bytes(t);
}

// Parse "f32", "F16", "q8_0", ... (as the CLI tools take them).
[[nodiscard]] inline DType parse_dtype(std::string_view s) {
  std::string u(s);
  for (char& c : u) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 32 : c);
  for (DType t : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0})
    if (u == name(t)) return t;
  throw_error("unknown weight type '", s, "' (expected one of f32, f16, bf16, q8_0, q4_0)");
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
