// Dot products of Q4_1, Q5_0, Q5_1 and IQ4_NL weight rows with quantized activations, for kernels/matmul.hpp.
//
// STUB: the interface below is fixed (matmul.hpp's matmul_block calls it); the bodies are being written.
#pragma once

#include <cstdint>

#include "edgespec/core/dtype.hpp"
#include "edgespec/kernels/packed.hpp"  // detail::PackedX
#include "edgespec/kernels/quants_legacy.hpp"

namespace edgespec::detail {

// R rows of W (type T = Q5_0 or IQ4_NL; row i at w + i * ws, nb blocks each) . one position's Q8_0 activations
// x (x.q: nb * 32 int8, x.d: nb f16-rounded scales as f32) -> out[0..R).
template <DType T, int R>
inline void dot_rows_q8_0_acts(const unsigned char*, std::int64_t, const PackedX&, std::int64_t, float* out) noexcept {
  for (int r = 0; r < R; ++r) out[r] = 0.0f;
}

// R rows of W (type T = Q4_1 or Q5_1) . one position's Q8_1 activations x (nb blocks) -> out[0..R).
template <DType T, int R>
inline void dot_rows_q8_1_acts(const unsigned char*, std::int64_t, const BlockQ8_1*, std::int64_t,
                               float* out) noexcept {
  for (int r = 0; r < R; ++r) out[r] = 0.0f;
}

}  // namespace edgespec::detail
