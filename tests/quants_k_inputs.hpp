// Deterministic rows for the K-quant tests (test_quants_k.cpp). The llama.cpp figures recorded there were computed
// by a separate program from these same rows, so the arithmetic here is exact (integers times powers of two,
// bit patterns): every compiler and flag set produces the same floats.
#pragma once

#include <bit>
#include <cstdint>
#include <vector>

namespace edgespec::test {

inline std::uint64_t splitmix64(std::uint64_t& s) noexcept {
  std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Signed integer in [-2^(bits-1), 2^(bits-1)).
inline std::int64_t signed_bits(std::uint64_t& s, int bits) noexcept {
  return static_cast<std::int64_t>(splitmix64(s) >> (64 - bits)) - (std::int64_t{1} << (bits - 1));
}

// Bell-shaped (sum of four uniforms), standard deviation about 0.009, like trained weights.
inline float bell(std::uint64_t& s) noexcept {
  std::int64_t v = 0;
  for (int i = 0; i < 4; ++i) v += signed_bits(s, 20);
  return static_cast<float>(v) * 0x1p-26f;
}

// Row kinds, each a distribution the quantizers must handle.
enum RowKind : int {
  kBell,      // bell-shaped
  kOutliers,  // bell, one value in 64 times 16
  kShifted,   // bell + 1/64: mostly positive, the mins clip at zero
  kSparse,    // bell with three values in four exactly zero
  kTiny,      // bell times 2^-10: f16 super-scales become subnormal
  kVarying,   // bell times 2^-(j % 5) for sub-block j of 16: scales spread over the codes
  kUniform,   // flat in [-1/32, 1/32)
  kRowKinds
};

inline std::vector<float> quant_row(int kind, std::uint64_t seed, std::int64_t k) {
  std::uint64_t s = seed * 0x100000001b3ull + static_cast<std::uint64_t>(kind);
  std::vector<float> x(static_cast<std::size_t>(k));
  for (std::int64_t i = 0; i < k; ++i) {
    float v = bell(s);
    switch (kind) {
      case kOutliers: v *= (splitmix64(s) & 63) == 0 ? 16.0f : 1.0f; break;
      case kShifted: v += 0x1p-6f; break;
      case kSparse: v = (splitmix64(s) & 3) != 0 ? 0.0f : v; break;
      case kTiny: v *= 0x1p-10f; break;
      case kVarying: v *= std::bit_cast<float>(static_cast<std::uint32_t>(127 - (i / 16) % 5) << 23); break;
      case kUniform: v = static_cast<float>(signed_bits(s, 24)) * 0x1p-28f; break;
      default: break;
    }
    x[static_cast<std::size_t>(i)] = v;
  }
  return x;
}

// Blocks of 256 for the Q8_K activation quantizer's special cases, one after another:
//   0 bell   1 all zero   2 halves: q = x exactly, so nearest_int's ties to even decide   3 the largest |x| twice,
//   with both signs (the first wins)   4 NaNs with payloads among bell values   5 an inf   6 a subnormal
//   maximum (-127 / max overflows to -inf)   7 -0.0 and subnormals only
inline std::vector<float> q8_K_special_rows() {
  std::vector<float> x;
  std::uint64_t s = 77;
  auto block = [&](auto f) {
    for (int i = 0; i < 256; ++i) x.push_back(f(i));
  };
  block([&](int) { return bell(s); });
  block([](int) { return 0.0f; });
  block([](int i) { return i == 7 ? 127.0f : static_cast<float>(i % 255 - 127) * 0.5f; });
  block([&](int i) { return i == 5 ? -0.25f : i == 200 ? 0.25f : bell(s); });
  block([&](int i) {
    return i % 37 == 3 ? std::bit_cast<float>(0x7fc00000u | static_cast<std::uint32_t>(i * 99991) % 0x400000u)
                       : bell(s);
  });
  block([&](int i) { return i == 100 ? -std::bit_cast<float>(0x7f800000u) : bell(s); });
  block([&](int i) {
    return std::bit_cast<float>(static_cast<std::uint32_t>(i * 977) % 0x100u + (i == 9 ? 0x200u : 0u));
  });
  block([](int i) { return i % 2 == 0 ? -0.0f : std::bit_cast<float>(static_cast<std::uint32_t>(i)); });
  return x;
}

}  // namespace edgespec::test
