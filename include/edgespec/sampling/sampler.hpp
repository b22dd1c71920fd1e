// Token sampling: greedy, temperature, top-k, top-p (nucleus), seeded and reproducible across platforms.
//
// The sampler is split in two steps so that speculative verification can use the same distributions:
//   distribution(logits) -> p over the FULL vocabulary (zeros outside top-k / top-p), p = softmax(logits / T)
//   draw(p)              -> a token, by inverse CDF with a 53-bit uniform from a splitmix64/xoshiro generator
// temperature <= 0 means greedy (argmax; ties: lowest id).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "edgespec/core/error.hpp"
#include "edgespec/kernels/ops.hpp"

namespace edgespec {

struct SamplingParams {
  float temperature = 0.0f;  // <= 0: greedy
  int top_k = 0;             // <= 0: off
  float top_p = 1.0f;        // >= 1: off
  std::uint64_t seed = 0;

  [[nodiscard]] bool greedy() const noexcept { return temperature <= 0.0f; }
  void validate() const {
    ES_CHECK(std::isfinite(temperature) && temperature >= 0.0f && temperature <= 100.0f, "temperature ", temperature,
             " is out of range [0, 100]");
    ES_CHECK(top_k >= 0, "top-k ", top_k, " must be >= 0 (0 disables it)");
    ES_CHECK(std::isfinite(top_p) && top_p > 0.0f && top_p <= 1.0f, "top-p ", top_p, " is out of range (0, 1]");
  }
};

// xoshiro256** seeded through splitmix64: same stream on every platform and compiler.
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) noexcept {
    std::uint64_t z = seed;
    for (auto& s : s_) {
      z += 0x9e3779b97f4a7c15ull;
      std::uint64_t x = z;
      x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
      x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
      s = x ^ (x >> 31);
    }
  }
  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }
  std::uint64_t s_[4];
};

// Greedy choice: the largest logit, the lowest id on ties.
[[nodiscard]] inline std::int32_t greedy_token(std::span<const float> logits) {
  return static_cast<std::int32_t>(argmax(logits.data(), static_cast<std::int64_t>(logits.size())));
}

// p = softmax(logits / T) restricted to the top-k tokens and then to the smallest prefix (by descending
// probability) whose mass reaches top_p; renormalized. Written into `probs` (vocab entries). For greedy
// params the distribution is one-hot at the argmax.
inline void distribution(std::span<const float> logits, const SamplingParams& sp, std::span<float> probs,
                         std::vector<std::int32_t>& scratch) {
  const auto n = static_cast<std::int32_t>(logits.size());
  ES_CHECK(probs.size() == logits.size(), "distribution: probs has ", probs.size(), " entries, logits ", n);
  if (sp.greedy()) {
    std::fill(probs.begin(), probs.end(), 0.0f);
    probs[static_cast<std::size_t>(greedy_token(logits))] = 1.0f;
    return;
  }
  const float max_l = *std::max_element(logits.begin(), logits.end());
  const float inv_t = 1.0f / sp.temperature;
  const bool truncate = (sp.top_k > 0 && sp.top_k < n) || sp.top_p < 1.0f;
  if (!truncate) {
    double sum = 0.0;
    for (std::int32_t i = 0; i < n; ++i) sum += probs[i] = std::exp((logits[i] - max_l) * inv_t);
    const auto inv = static_cast<float>(1.0 / sum);
    for (float& p : probs) p *= inv;
    return;
  }
  // Order candidates by logit (descending; ties by id), keep top-k, then the top-p prefix. Each kept token's
  // weight exp((l - max) / T) is computed once, into probs, then normalized over the kept ones.
  const std::int32_t k = sp.top_k > 0 ? std::min(sp.top_k, n) : n;
  scratch.resize(static_cast<std::size_t>(n));
  std::iota(scratch.begin(), scratch.end(), 0);
  auto by_logit = [&](std::int32_t a, std::int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(scratch.begin(), scratch.begin() + k, scratch.end(), by_logit);
  std::fill(probs.begin(), probs.end(), 0.0f);
  double sum = 0.0;
  for (std::int32_t r = 0; r < k; ++r) {
    const double w = std::exp(static_cast<double>((logits[scratch[r]] - max_l) * inv_t));
    probs[scratch[r]] = static_cast<float>(w);
    sum += w;
  }
  std::int32_t keep = k;
  double kept = sum;
  if (sp.top_p < 1.0f) {
    double cum = 0.0;
    for (std::int32_t r = 0; r < k; ++r) {
      cum += probs[scratch[r]];
      if (cum >= sp.top_p * sum) {
        keep = r + 1;
        kept = cum;
        break;
      }
    }
  }
  for (std::int32_t r = keep; r < k; ++r) probs[scratch[r]] = 0.0f;
  for (std::int32_t r = 0; r < keep; ++r) probs[scratch[r]] = static_cast<float>(probs[scratch[r]] / kept);
}

// Inverse-CDF draw from a distribution that sums to ~1 (the last nonzero entry absorbs rounding).
[[nodiscard]] inline std::int32_t draw(std::span<const float> probs, Rng& rng) {
  const double u = rng.uniform();
  double cum = 0.0;
  std::int32_t last = -1;
  for (std::size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0.0f) continue;
    cum += probs[i];
    last = static_cast<std::int32_t>(i);
    if (u < cum) return last;
  }
  ES_CHECK(last >= 0, "draw: the distribution is all zeros");
  return last;
}

class Sampler {
 public:
  explicit Sampler(SamplingParams sp) : sp_(sp), rng_(sp.seed) { sp_.validate(); }

  [[nodiscard]] const SamplingParams& params() const noexcept { return sp_; }
  [[nodiscard]] Rng& rng() noexcept { return rng_; }

  std::int32_t sample(std::span<const float> logits) {
    if (sp_.greedy()) return greedy_token(logits);
    probs_.resize(logits.size());
    distribution(logits, sp_, probs_, scratch_);
    return draw(probs_, rng_);
  }

 private:
  SamplingParams sp_;
  Rng rng_;
  std::vector<float> probs_;
  std::vector<std::int32_t> scratch_;
};

}  // namespace edgespec
