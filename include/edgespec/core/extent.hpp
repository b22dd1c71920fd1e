// Sizes known at compile time or read from a file, in one type (as Eigen's Dynamic, std::dynamic_extent).
//
//   Extent<4096> e(n);   // checks n == 4096 once; e.value() is the constant 4096 the compiler can unroll on
//   Extent<dynamic_extent> e(n);  // stores n
#pragma once

#include <cstdint>

#include "edgespec/core/error.hpp"

namespace edgespec {

inline constexpr int dynamic_extent = -1;

template <int N>
struct Extent {
  static_assert(N >= 0, "Extent<N>: N must be a non-negative size or edgespec::dynamic_extent");
  constexpr Extent(std::int64_t runtime) {  // NOLINT: implicit on purpose, as a size converts to it
    ES_CHECK(runtime == N, "size mismatch: compiled for a fixed extent of ", N, ", called with ", runtime);
  }
  [[nodiscard]] static constexpr std::int64_t value() noexcept { return N; }
  static constexpr bool is_static = true;
};

template <>
struct Extent<dynamic_extent> {
  constexpr Extent(std::int64_t runtime) noexcept : v(runtime) {}  // NOLINT
  [[nodiscard]] constexpr std::int64_t value() const noexcept { return v; }
  static constexpr bool is_static = false;
  std::int64_t v;
};

}  // namespace edgespec
