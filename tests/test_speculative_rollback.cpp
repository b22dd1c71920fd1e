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

// A chat keeps its caches between turns: run() stops mid-round (at n tokens or at a stop token) and drops what the
// round emitted past that point; extend() appends the next turn. Greedy output and caches must equal a fresh
// target-only run over the whole conversation.
TEST_CASE("run() stopping mid-round and extend() continue a sequence exactly", "[rollback][chat]") {
  auto target = std::make_shared<const LlamaWeights>(load_weights(test::model_path("llama2c/stories260K.bin")));
  auto draft = std::make_shared<const LlamaWeights>(load_weights(test::model_path("llama2c/llama2xs.bin")));
  ThreadPool pool(2);
  PipelineOptions o;
  o.max_seq = 200;
  o.kv_type = KvType::F32;
  Pipeline<Draft<>, Target<>, DraftLen<6>> p(target, draft, pool, o);
  std::vector<std::int32_t> all = {1, 291};
  p.begin(all);
  const std::vector<std::vector<std::int32_t>> turns = {{13, 403}, {289}, {1, 378, 261}};
  const std::vector<int> lengths = {7, 13, 5, 9};  // odd lengths end most runs inside a round
  for (std::size_t turn = 0; turn < lengths.size(); ++turn) {
    const SpeculativeResult r = p.run(lengths[turn]);
    REQUIRE(static_cast<int>(r.tokens.size()) == lengths[turn]);
    all.insert(all.end(), r.tokens.begin(), r.tokens.end());
    REQUIRE(std::vector<std::int32_t>(p.sequence().begin(), p.sequence().end()) == all);
    check_cache(p.target(), p.sequence(), {}, pool);
    check_cache(p.draft(), p.sequence(), {}, pool);
    if (turn < turns.size()) {
      p.extend(turns[turn]);
      all.insert(all.end(), turns[turn].begin(), turns[turn].end());
    }
  }
  // Target-only greedy over the same conversation gives the same tokens at every generated position.
  Transformer<AnyLlama> ref(target, pool, o.max_seq, KvType::F32);
  std::size_t pos = 2;
  std::span<const float> logits = ref.forward(std::span<const std::int32_t>(all).first(pos));
  for (std::size_t turn = 0; turn < lengths.size(); ++turn) {
    for (int i = 0; i < lengths[turn]; ++i, ++pos) {
      INFO("turn " << turn << " token " << i);
      REQUIRE(greedy_token(logits) == all[pos]);
      logits = ref.forward(std::span<const std::int32_t>(&all[pos], 1));
    }
    if (turn < turns.size()) {
      logits = ref.forward(std::span<const std::int32_t>(turns[turn]));
      pos += turns[turn].size();
    }
  }
  CHECK_THROWS_WITH(p.extend(std::vector<std::int32_t>(300, 5)), Catch::Contains("do not fit the context"));
}
