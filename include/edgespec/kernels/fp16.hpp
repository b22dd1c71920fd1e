// Scalar f16 -> f32 through the hardware converter where the build has one (F16C), else dtype.hpp's exact
// software conversion. Both give the same value for every input.
#pragma once

#include <cstdint>

#if defined(__F16C__)
#include <immintrin.h>
#endif

#include "edgespec/core/dtype.hpp"

namespace edgespec::detail {

[[nodiscard]] inline float half_to_float(std::uint16_t h) noexcept {
#if defined(__F16C__)
  return _cvtsh_ss(h);
#else
  return fp16_to_fp32(h);
#endif
}

}  // namespace edgespec::detail
