// Verification of one round of draft tokens against the target's distributions.
//
// Inputs (gamma = number of draft tokens):
//   draft  (gamma)              the proposed tokens d_1 .. d_gamma
//   q      (gamma, vocab)       the draft's distributions they were sampled from (after temperature/top-k/top-p)
//   p      (gamma + 1, vocab)   the target's distributions at the same positions, plus one past the last
// Output: k accepted draft tokens and one more token (the correction at position k+1, or the bonus from
// p_{gamma+1} when all were accepted): k + 1 tokens per round.
//
// Stochastic rule (Leviathan et al. 2023, Chen et al. 2023): accept d_i with probability min(1, p_i(d_i)/q_i(d_i));
// at the first rejection emit a sample of normalize(max(0, p_i - q_i)) over the full vocabulary. The emitted
// token then has exactly the distribution p_i: P(x) = q(x) min(1, p(x)/q(x)) + (1 - sum_y min(q(y), p(y)))
// * max(0, p(x) - q(x)) / sum_y max(0, p(y) - q(y)) = min(q, p)(x) + max(0, p - q)(x) = p(x).
// Greedy rule: accept while d_i == argmax p_i; the correction / bonus is the argmax.
// Point-mass drafts (n-gram lookup, no draft distribution): q_i = delta(d_i), so the rule becomes accept d_i with
// probability p_i(d_i), else emit a sample of p_i with d_i removed, renormalized (verify_stochastic_point).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "edgespec/core/error.hpp"
#include "edgespec/sampling/sampler.hpp"

namespace edgespec {

namespace detail {
// A draw from the residual (unnormalized, total `mass`); an empty residual (mass 0: the draft's law equals p up
// to rounding) leaves p itself as the right law.
inline std::int32_t draw_residual(std::vector<float>& residual, double mass, std::span<const float> p, Rng& rng) {
  if (mass <= 0.0) return draw(p, rng);
  const auto inv = static_cast<float>(1.0 / mass);
  for (float& v : residual) v *= inv;
  return draw(residual, rng);
}
}  // namespace detail

struct VerifyResult {
  int accepted = 0;             // k: draft tokens kept
  std::int32_t next_token = 0;  // the correction (k < gamma) or the bonus token (k == gamma)
};

// Greedy verification from target logits rows (gamma + 1, vocab).
[[nodiscard]] inline VerifyResult verify_greedy(std::span<const std::int32_t> draft, std::span<const float> target_logits,
                                                std::size_t vocab) {
  const std::size_t gamma = draft.size();
  ES_CHECK(target_logits.size() == (gamma + 1) * vocab, "verify_greedy: expected ", gamma + 1, " rows of logits");
  VerifyResult r;
  for (std::size_t i = 0; i <= gamma; ++i) {
    const std::int32_t best = greedy_token(target_logits.subspan(i * vocab, vocab));
    if (i == gamma || best != draft[i]) {
      r.next_token = best;
      return r;
    }
    ++r.accepted;
  }
  return r;  // unreachable
}

// Stochastic verification from distributions p (gamma + 1, vocab) and q (gamma, vocab); `residual` is scratch.
[[nodiscard]] inline VerifyResult verify_stochastic(std::span<const std::int32_t> draft, std::span<const float> p,
                                                    std::span<const float> q, std::size_t vocab, Rng& rng,
                                                    std::vector<float>& residual) {
  const std::size_t gamma = draft.size();
  ES_CHECK(p.size() == (gamma + 1) * vocab && q.size() == gamma * vocab, "verify_stochastic: expected ", gamma + 1,
           " target and ", gamma, " draft distributions");
  VerifyResult r;
  for (std::size_t i = 0; i < gamma; ++i) {
    const auto pi = p.subspan(i * vocab, vocab);
    const auto qi = q.subspan(i * vocab, vocab);
    const auto x = static_cast<std::size_t>(draft[i]);
    const double px = pi[x], qx = qi[x];
    // q(x) > 0 because x was drawn from q; accept with probability min(1, p/q).
    if (qx > 0.0 && rng.uniform() * qx < px) {
      ++r.accepted;
      continue;
    }
    residual.resize(vocab);
    double mass = 0.0;
    for (std::size_t v = 0; v < vocab; ++v) mass += residual[v] = std::max(0.0f, pi[v] - qi[v]);
    r.next_token = detail::draw_residual(residual, mass, pi, rng);  // mass 0: p == q up to rounding
    return r;
  }
  r.next_token = draw(p.subspan(gamma * vocab, vocab), rng);  // all accepted: bonus token from p_{gamma+1}
  return r;
}

// Stochastic verification of drafts that were not sampled: each d_i is a point mass, q_i = delta(d_i), which
// the general rule above handles exactly without a dense q. With q(d) = 1 and q(y) = 0 elsewhere:
//   accept d with probability min(1, p(d) / 1) = p(d)
//   residual r = max(0, p - delta(d)) / sum(...) = p with p(d) set to 0, divided by 1 - p(d)
//   P(x) = delta(d)(x) p(d) + (1 - p(d)) r(x) = p(x)
// Draws the same random numbers as verify_stochastic with one-hot rows, so the two agree token for token.
// p (gamma + 1, vocab); `residual` is scratch.
[[nodiscard]] inline VerifyResult verify_stochastic_point(std::span<const std::int32_t> draft, std::span<const float> p,
                                                          std::size_t vocab, Rng& rng, std::vector<float>& residual) {
  const std::size_t gamma = draft.size();
  ES_CHECK(p.size() == (gamma + 1) * vocab, "verify_stochastic_point: expected ", gamma + 1, " target distributions");
  VerifyResult r;
  for (std::size_t i = 0; i < gamma; ++i) {
    const auto pi = p.subspan(i * vocab, vocab);
    const auto x = static_cast<std::size_t>(draft[i]);
    ES_CHECK(x < vocab, "verify_stochastic_point: draft token ", draft[i], " is outside the vocabulary of ", vocab);
    if (rng.uniform() < static_cast<double>(pi[x])) {
      ++r.accepted;
      continue;
    }
    residual.resize(vocab);
    double mass = 0.0;
    for (std::size_t v = 0; v < vocab; ++v) mass += residual[v] = v == x ? 0.0f : std::max(0.0f, pi[v]);
    r.next_token = detail::draw_residual(residual, mass, pi, rng);  // mass 0: p(d) == 1 up to rounding
    return r;
  }
  r.next_token = draw(p.subspan(gamma * vocab, vocab), rng);  // all accepted: bonus token from p_{gamma+1}
  return r;
}

}  // namespace edgespec
