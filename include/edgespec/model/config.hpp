// Run-time hyperparameters of a Llama-family model, as read from a file (GGUF metadata or a llama2.c header).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include "edgespec/core/dtype.hpp"
#include "edgespec/kernels/ops.hpp"  // RopeStyle

namespace edgespec {

// Llama 3.1+ "rope_type: llama3" frequency scaling: long wavelengths are slowed by `factor`, short ones kept,
// with a smooth ramp between (wavelength in [orig_ctx / high_freq_factor, orig_ctx / low_freq_factor]).
struct RopeScaling {
  float factor = 1.0f;  // 1: no scaling
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_context = 8192;

  [[nodiscard]] constexpr bool enabled() const noexcept { return factor != 1.0f; }
  // Divisor applied to base frequency i (head_dim/2 of them); equals llama.cpp's rope_freqs.weight entries.
  [[nodiscard]] float freq_divisor(float inv_freq) const noexcept {
    if (!enabled()) return 1.0f;
    const float wavelen = 2.0f * std::numbers::pi_v<float> / inv_freq;
    const float low_wavelen = static_cast<float>(original_context) / low_freq_factor;
    const float high_wavelen = static_cast<float>(original_context) / high_freq_factor;
    if (wavelen < high_wavelen) return 1.0f;
    if (wavelen > low_wavelen) return factor;
    const float smooth = (static_cast<float>(original_context) / wavelen - low_freq_factor) /
                         (high_freq_factor - low_freq_factor);
    return 1.0f / ((1.0f - smooth) / factor + smooth);
  }
};

enum class Classifier { Tied, Separate };

struct ModelConfig {
  int dim = 0;          // embedding width
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;   // < n_heads: grouped-query attention
  int ffn_dim = 0;      // SwiGLU hidden width
  int vocab_size = 0;
  int max_seq = 0;      // context length the KV cache is sized for
  float rope_base = 10000.0f;
  RopeStyle rope_style = RopeStyle::Normal;
  RopeScaling rope_scaling{};
  float norm_eps = 1e-5f;
  Classifier classifier = Classifier::Tied;
  DType weight_type = DType::F32;  // type of the layer matrices

  [[nodiscard]] int head_dim() const noexcept { return dim / n_heads; }
  [[nodiscard]] int kv_dim() const noexcept { return head_dim() * n_kv_heads; }

  // inv_freq[i] = base^(-2i/head_dim) / divisor_i  for i < head_dim/2
  [[nodiscard]] std::vector<float> rope_inv_freq() const {
    std::vector<float> f(static_cast<std::size_t>(head_dim() / 2));
    for (std::size_t i = 0; i < f.size(); ++i) {
      const float base = std::pow(rope_base, -2.0f * static_cast<float>(i) / static_cast<float>(head_dim()));
      f[i] = base / rope_scaling.freq_divisor(base);
    }
    return f;
  }
  // Number of parameters in the layer matrices, embedding and classifier.
  [[nodiscard]] std::int64_t n_params() const noexcept {
    const std::int64_t d = dim, kv = kv_dim(), f = ffn_dim, v = vocab_size;
    const std::int64_t layer = d * d * 2 + d * kv * 2 + 3 * d * f + 2 * d;
    return n_layers * layer + v * d * (classifier == Classifier::Tied ? 1 : 2) + d;
  }
};

}  // namespace edgespec
