// After any accept/reject pattern, both KV caches equal those of a fresh run over the same tokens: rejected
// draft tokens leave no trace. Checked after every round of stochastic generation (which produces all patterns:
// every draft token rejected, some kept, all kept), for a second-model drafter and a self-speculative one.
#include <catch2/catch.hpp>

#include <edgespec/edgespec.hpp>

#include "test_util.hpp"

namespace {

using namespace edgespec;

// Compares the first `n` cache positions of `m` with a fresh model's run over tokens[0, n).
template <class Arch>
void check_cache(const Transformer<Arch>& m, std::span<const std::int32_t> tokens, std::span<const int> skip,
                 ThreadPool& pool) {
  const int n = m.position();
  REQUIRE(n <= static_cast<int>(tokens.size()));
  Transformer<Arch> fresh(m.shared_weights(), pool, m.config().max_seq, KvType::F32);
  fresh.set_skipped_layers(skip);
  if (n > 0) fresh.forward(tokens.first(static_cast<std::size_t>(n)));
  for (int l = 0; l < m.config().n_layers; ++l) {
    if (std::find(skip.begin(), skip.end(), l) != skip.end()) continue;  // a skipped layer has no cache
    for (int p = 0; p < n; ++p) {
      const auto a = m.key(l, p), b = fresh.key(l, p), va = m.value(l, p), vb = fresh.value(l, p);
      // f32 cache: only summation-order differences between batch shapes, relative to the magnitude
      float worst = 0.0f;
      for (std::size_t i = 0; i < a.size(); ++i)
        worst = std::max({worst, std::fabs(a[i] - b[i]) / (1.0f + std::fabs(b[i])),
                          std::fabs(va[i] - vb[i]) / (1.0f + std::fabs(vb[i]))});
      INFO("layer " << l << " position " << p);
      REQUIRE(worst < 1e-4f);
    }
  }
}

}  // namespace

TEST_CASE("KV caches after every round equal a fresh run over the emitted tokens", "[rollback]") {
  auto target = std::make_shared<const LlamaWeights>(load_weights(test::model_path("llama2c/stories260K.bin")));
  auto draft = std::make_shared<const LlamaWeights>(load_weights(test::model_path("llama2c/llama2xs.bin")));
  ThreadPool pool(2);
  PipelineOptions o;
  o.sampling.temperature = 1.0f;
  o.max_seq = 128;
  o.kv_type = KvType::F32;
  const std::vector<std::int32_t> prompt = {1, 291};
  const std::vector<int> no_skip;

  SECTION("second-model drafter") {
    Pipeline<Draft<>, Target<>, DraftLen<4>> p(target, draft, pool, o);
    int none = 0, some = 0, all = 0;
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
      p.set_seed(seed);
      p.begin(prompt);
      while (p.target().position() + 6 < o.max_seq) {
        const int before = p.stats().accepted, drafted_before = p.stats().drafted;
        p.round();
        const int k = p.stats().accepted - before, g = p.stats().drafted - drafted_before;
        (k == 0 ? none : k == g ? all : some)++;
        check_cache(p.target(), p.sequence(), no_skip, pool);
        check_cache(p.draft(), p.sequence(), no_skip, pool);
      }
    }
    WARN("rounds with no draft token kept: " << none << ", some: " << some << ", all: " << all);
    CHECK(none > 0);
    CHECK(some > 0);
    CHECK(all > 0);
  }
  SECTION("self-speculative drafter") {
    o.skip_layers = {0, 2};
    Pipeline<Draft<SkipLayers<>>, Target<>, DraftLen<3>> p(target, pool, o);
    p.set_seed(3);
    p.begin(prompt);
    while (p.target().position() + 5 < o.max_seq) {
      p.round();
      check_cache(p.target(), p.sequence(), no_skip, pool);
      check_cache(p.draft(), p.sequence(), o.skip_layers, pool);
    }
  }
}
