// Q4_1, Q5_0, Q5_1 and IQ4_NL weight rows (32-value blocks, layouts in core/dtype.hpp), and the Q8_1 / Q8_0
// activation quantizers llama.cpp's CPU backend uses for products with them.
//
// STUB: the interface below is fixed (kernels/quantize.hpp and kernels/matmul.hpp call it); the bodies are being
// written. Weight rows may be at any alignment (memory-mapped tensors): read them with memcpy.
#pragma once

#include <cstdint>

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/kernels/fp16.hpp"

namespace edgespec {

// x (k,) f32 -> k/32 blocks at dst (k a multiple of 32).
inline void quantize_row_q4_1(const float*, void*, std::int64_t) { throw_error("Q4_1 quantizer: not written yet"); }
inline void quantize_row_q5_0(const float*, void*, std::int64_t) { throw_error("Q5_0 quantizer: not written yet"); }
inline void quantize_row_q5_1(const float*, void*, std::int64_t) { throw_error("Q5_1 quantizer: not written yet"); }
inline void quantize_row_iq4_nl(const float*, void*, std::int64_t) { throw_error("IQ4_NL quantizer: not written yet"); }

// k/32 blocks at src -> y (k,) f32.
inline void dequantize_row_q4_1(const void*, float*, std::int64_t) { throw_error("Q4_1: not written yet"); }
inline void dequantize_row_q5_0(const void*, float*, std::int64_t) { throw_error("Q5_0: not written yet"); }
inline void dequantize_row_q5_1(const void*, float*, std::int64_t) { throw_error("Q5_1: not written yet"); }
inline void dequantize_row_iq4_nl(const void*, float*, std::int64_t) { throw_error("IQ4_NL: not written yet"); }

// Activations: x (k,) f32 -> k/32 Q8_1 blocks, as llama.cpp's CPU quantize_row_q8_1 computes them.
inline void quantize_row_q8_1(const float*, BlockQ8_1*, std::int64_t) { throw_error("Q8_1: not written yet"); }

}  // namespace edgespec
