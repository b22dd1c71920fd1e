// K-quant weight rows Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (256-value super-blocks, layouts in core/dtype.hpp), and the
// Q8_K activation quantizer llama.cpp's CPU backend uses for products with them.
//
// STUB: the interface below is fixed (kernels/quantize.hpp and kernels/matmul.hpp call it); the bodies are being
// written. Weight rows may be at any alignment (memory-mapped tensors): read them with memcpy.
#pragma once

#include <cstdint>

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/kernels/fp16.hpp"

namespace edgespec {

// x (k,) f32 -> k/256 super-blocks at dst (k a multiple of 256).
inline void quantize_row_q2_K(const float*, void*, std::int64_t) { throw_error("Q2_K quantizer: not written yet"); }
inline void quantize_row_q3_K(const float*, void*, std::int64_t) { throw_error("Q3_K quantizer: not written yet"); }
inline void quantize_row_q4_K(const float*, void*, std::int64_t) { throw_error("Q4_K quantizer: not written yet"); }
inline void quantize_row_q5_K(const float*, void*, std::int64_t) { throw_error("Q5_K quantizer: not written yet"); }
inline void quantize_row_q6_K(const float*, void*, std::int64_t) { throw_error("Q6_K quantizer: not written yet"); }

// k/256 super-blocks at src -> y (k,) f32.
inline void dequantize_row_q2_K(const void*, float*, std::int64_t) { throw_error("Q2_K: not written yet"); }
inline void dequantize_row_q3_K(const void*, float*, std::int64_t) { throw_error("Q3_K: not written yet"); }
inline void dequantize_row_q4_K(const void*, float*, std::int64_t) { throw_error("Q4_K: not written yet"); }
inline void dequantize_row_q5_K(const void*, float*, std::int64_t) { throw_error("Q5_K: not written yet"); }
inline void dequantize_row_q6_K(const void*, float*, std::int64_t) { throw_error("Q6_K: not written yet"); }

// Activations: x (k,) f32 -> k/256 Q8_K blocks, as llama.cpp's CPU quantize_row_q8_K computes them.
inline void quantize_row_q8_K(const float*, BlockQ8_K*, std::int64_t) { throw_error("Q8_K: not written yet"); }

}  // namespace edgespec
