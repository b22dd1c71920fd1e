// Dot products of K-quant weight rows (Q2_K .. Q6_K) with Q8_K activations, for kernels/matmul.hpp.
//
// STUB: the interface below is fixed (matmul.hpp's matmul_block calls it); the bodies are being written.
#pragma once

#include <cstdint>

#include "edgespec/core/dtype.hpp"
#include "edgespec/kernels/quants_k.hpp"

namespace edgespec::detail {

// R rows of W (type T, a K-quant; row i at w + i * ws, nb super-blocks each) . one position's Q8_K activations
// x (nb blocks) -> out[0..R).
template <DType T, int R>
inline void dot_rows_q8_K_acts(const unsigned char*, std::int64_t, const BlockQ8_K*, std::int64_t,
                               float* out) noexcept {
  for (int r = 0; r < R; ++r) out[r] = 0.0f;
}

}  // namespace edgespec::detail
