// Stochastic verification preserves the target's distribution.
//
// Chi-square goodness of fit of emitted tokens against the exact target law, with bins of expected count < 5
// pooled. Each test rejects at the 1 - 1e-7 quantile (Wilson-Hilferty approximation), so with the 9 tests
// below the probability of a false failure is below 1e-6. Each test's power is shown by a control: the law a
// broken verifier would produce (the draft's q) is rejected by the same statistic.
#include <catch2/catch.hpp>

#include <cmath>
#include <map>

#include <edgespec/edgespec.hpp>

#include "chi_square.hpp"
#include "test_util.hpp"

namespace {

using namespace edgespec;

using test::chi_square;
using test::ChiSquare;
using test::random_distribution;

}  // namespace

TEST_CASE("verify_stochastic emits tokens distributed as p (unit level)", "[distribution]") {
  constexpr std::size_t vocab = 12;
  constexpr int gamma = 3;
  constexpr long n = 200000;
  Rng setup(12345);
  const bool with_zeros = GENERATE(false, true);
  std::vector<float> p, q;
  for (int i = 0; i < gamma + 1; ++i) {
    const auto d = random_distribution(setup, vocab, with_zeros);
    p.insert(p.end(), d.begin(), d.end());
  }
  for (int i = 0; i < gamma; ++i) {
    const auto d = random_distribution(setup, vocab, false);
    q.insert(q.end(), d.begin(), d.end());
  }
  Rng rng(7);
  std::vector<float> residual;
  std::vector<long> first(vocab, 0), second(vocab, 0);
  long second_n = 0;
  for (long s = 0; s < n; ++s) {
    std::int32_t draft[gamma];
    for (int i = 0; i < gamma; ++i) draft[i] = draw(std::span<const float>(q).subspan(i * vocab, vocab), rng);
    const VerifyResult r = verify_stochastic(draft, p, q, vocab, rng, residual);
    ++first[static_cast<std::size_t>(r.accepted >= 1 ? draft[0] : r.next_token)];
    if (r.accepted >= 1) {  // the second token, given the first was a kept draft token: law p_2
      ++second[static_cast<std::size_t>(r.accepted >= 2 ? draft[1] : r.next_token)];
      ++second_n;
    }
  }
  const ChiSquare c1 = chi_square(first, std::span<const float>(p).first(vocab), n);
  INFO("first token: chi2 " << c1.statistic << " df " << c1.df << " critical " << c1.critical);
  CHECK(c1.statistic < c1.critical);
  const ChiSquare c2 = chi_square(second, std::span<const float>(p).subspan(vocab, vocab), second_n);
  INFO("second token: chi2 " << c2.statistic << " df " << c2.df << " critical " << c2.critical);
  CHECK(c2.statistic < c2.critical);
  // Power: the same counts are far from q, the law a verifier that always accepted would produce.
  CHECK(chi_square(first, std::span<const float>(q).first(vocab), n).statistic > 10 * c1.critical);
}

TEST_CASE("one speculative round emits the target's exact distribution (model level)", "[distribution]") {
  using namespace edgespec;
  auto target = std::make_shared<const LlamaWeights>(load_weights(test::model_path("llama2c/stories260K.bin")));
  auto draft = std::make_shared<const LlamaWeights>(load_weights(test::model_path("llama2c/llama2xs.bin")));
  // "The": a broad next-token law (46 bins with >= 5 expected at T 0.7, 9 with top-p 0.9), so the test has power.
  const std::vector<std::int32_t> prompt = {1, 291};
  struct Config {
    float temperature;
    int top_k;
    float top_p;
  };
  const Config cfg = GENERATE(Config{1.0f, 0, 1.0f}, Config{0.7f, 0, 1.0f}, Config{1.0f, 20, 1.0f},
                              Config{0.8f, 0, 0.9f}, Config{0.7f, 40, 0.95f});
  INFO("temperature " << cfg.temperature << " top-k " << cfg.top_k << " top-p " << cfg.top_p);
  SamplingParams sp;
  sp.temperature = cfg.temperature;
  sp.top_k = cfg.top_k;
  sp.top_p = cfg.top_p;

  // The exact target law of the first new token.
  ThreadPool pool(1);
  Transformer<> reference(target, pool, 32);
  const auto logits = reference.forward(prompt);
  std::vector<float> p(logits.size());
  std::vector<std::int32_t> scratch;
  distribution(logits, sp, p, scratch);

  // The draft's law at the same position: what a verifier that accepted everything would emit.
  Transformer<> draft_model(draft, pool, 32);
  std::vector<float> q(p.size());
  distribution(draft_model.forward(prompt), sp, q, scratch);

  PipelineOptions o;
  o.sampling = sp;
  o.max_seq = 32;
  Pipeline<Draft<>, Target<>, DraftLen<3>, StochasticVerify> pipeline(target, draft, pool, o);
  constexpr long n = 12000;
  std::vector<long> counts(p.size(), 0);
  long accepted_first = 0;
  for (long s = 0; s < n; ++s) {
    pipeline.set_seed(static_cast<std::uint64_t>(s) + 1);
    pipeline.begin(prompt);
    const auto emitted = pipeline.round();
    ++counts[static_cast<std::size_t>(emitted[0])];
    accepted_first += pipeline.stats().accepted > 0;
  }
  const ChiSquare c = chi_square(counts, p, n);
  WARN("T " << cfg.temperature << " top-k " << cfg.top_k << " top-p " << cfg.top_p << ": chi2 " << c.statistic
            << " df " << c.df << " critical " << c.critical << ", first draft token accepted in " << accepted_first
            << " of " << n);
  INFO("chi2 " << c.statistic << " df " << c.df << " critical " << c.critical << "; first draft token accepted in "
               << accepted_first << " of " << n << " rounds");
  CHECK(c.statistic < c.critical);
  CHECK(accepted_first > n / 10);  // the draft is really used: many first tokens come from it
  // Power: the draft's law q is rejected by the same statistic.
  CHECK(chi_square(counts, q, n).statistic > c.critical);
}
