// Chi-square goodness of fit for the distribution tests (test_speculative_distribution.cpp,
// test_speculative_ngram.cpp): emitted-token counts against an exact law, bins of expected count < 5 pooled,
// rejected at the 1 - 1e-7 quantile (Wilson-Hilferty approximation).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include <edgespec/sampling/sampler.hpp>

namespace edgespec::test {

struct ChiSquare {
  double statistic = 0.0;
  int df = 0;
  double critical = 0.0;
};

// counts (vocab) against probabilities p (vocab) for n samples.
inline ChiSquare chi_square(const std::vector<long>& counts, std::span<const float> p, long n) {
  ChiSquare c;
  double pooled_expected = 0.0, pooled_observed = 0.0;
  int bins = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    const double e = static_cast<double>(p[i]) * static_cast<double>(n);
    if (e < 5.0) {
      pooled_expected += e;
      pooled_observed += static_cast<double>(counts[i]);
      continue;
    }
    c.statistic += (counts[i] - e) * (counts[i] - e) / e;
    ++bins;
  }
  if (pooled_expected > 0.0) {
    c.statistic += (pooled_observed - pooled_expected) * (pooled_observed - pooled_expected) / std::max(pooled_expected, 1e-9);
    ++bins;
  }
  c.df = std::max(bins - 1, 1);
  const double z = 5.199;  // one-sided standard normal quantile of 1 - 1e-7
  const double k = 2.0 / (9.0 * c.df);
  c.critical = c.df * std::pow(1.0 - k + z * std::sqrt(k), 3.0);
  return c;
}

// A random distribution over n tokens with some zero entries (as top-k/top-p produce).
inline std::vector<float> random_distribution(Rng& rng, std::size_t n, bool with_zeros) {
  std::vector<float> p(n);
  double sum = 0.0;
  for (float& x : p) {
    x = with_zeros && rng.uniform() < 0.25 ? 0.0f : static_cast<float>(-std::log(1.0 - rng.uniform()));
    sum += x;
  }
  for (float& x : p) x = static_cast<float>(x / sum);
  return p;
}

}  // namespace edgespec::test
