// Skip-set search (planning/skip_search.hpp): teacher-forced agreement is the verdict a greedy self-speculative
// pipeline reaches at every position it drafts, the search's bookkeeping, the Pareto front, and bad input.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <sstream>
#include <thread>

#include <edgespec/edgespec.hpp>

#include "golden.hpp"

namespace {

using namespace edgespec;
using Tokens = std::vector<std::int32_t>;

// The model, or null after a SKIPPED warning when the model directory lacks it.
std::shared_ptr<const LlamaWeights> load_or_skip(const char* rel) {
  const std::string path = test::model_path(rel);
  if (!std::filesystem::exists(path)) {
    WARN("SKIPPED: " << path << " is not in the model directory (EDGESPEC_MODEL_DIR)");
    return nullptr;
  }
  return std::make_shared<const LlamaWeights>(load_weights(path));
}

std::vector<Tokens> golden_prompts(const char* file, std::size_t count) {
  std::vector<Tokens> prompts;
  for (const test::GoldenCase& g : test::load_golden(file))
    if (prompts.size() < count) prompts.push_back(g.prompt_tokens);
  return prompts;
}

// The pipeline's statistics predicted from the verdicts m_j of one text (positions 0 .. of the continuation):
// a greedy round starting at position j drafts gamma tokens, tests them in order until one disagrees, and emits
// the accepted ones and the target's token after them (correction or bonus); the next round starts past it.
struct Predicted {
  int rounds = 0, drafted = 0, accepted = 0, rejections = 0;
};
Predicted predict(std::span<const std::uint8_t> m, int n_tokens, int gamma) {
  Predicted p;
  for (int j = 0; j < n_tokens;) {
    ++p.rounds;
    p.drafted += gamma;
    int k = 0;
    while (k < gamma && m[static_cast<std::size_t>(j + k)] != 0) ++k;
    p.accepted += k;
    if (k < gamma) ++p.rejections;
    j += k + 1;
  }
  return p;
}

std::string str(std::span<const int> layers) {
  std::ostringstream os;
  os << "{";
  for (std::size_t i = 0; i < layers.size(); ++i) os << (i > 0 ? "," : "") << layers[i];
  os << "}";
  return os.str();
}

SkipCandidate cand(std::vector<int> layers, double agreement, double cost) {
  SkipCandidate c;
  c.layers = std::move(layers);
  c.agreement = agreement;
  c.cost = cost;
  return c;
}

}  // namespace

TEST_CASE("the reference is the target's greedy continuation, and no skipped layer agrees everywhere", "[skip]") {
  auto w = load_or_skip("gguf/stories260K-f32.gguf");
  if (!w) return;
  ThreadPool pool(2);
  const auto golden = test::load_golden("stories260K-greedy.jsonl");
  std::vector<Tokens> prompts;
  for (const auto& g : golden) prompts.push_back(g.prompt_tokens);
  constexpr int C = 32;
  const SkipReference ref = make_skip_reference(w, pool, prompts, C);
  REQUIRE(ref.texts.size() == golden.size());
  CHECK(ref.positions() == static_cast<std::int64_t>(golden.size()) * C);
  for (std::size_t i = 0; i < golden.size(); ++i) {
    INFO("prompt: " << golden[i].prompt);
    const Tokens continuation(ref.texts[i].end() - C, ref.texts[i].end());
    CHECK(Tokens(ref.texts[i].begin(), ref.texts[i].end() - C) == golden[i].prompt_tokens);
    CHECK(continuation == Tokens(golden[i].greedy_tokens.begin(), golden[i].greedy_tokens.begin() + C));  // llama.cpp's
    CHECK(ref.target_argmax[i] == continuation);  // the teacher-forced forward argmax = the generated tokens
  }
  Transformer<> model(w, pool, ref.longest_input());
  CHECK(skip_agreement(model, ref, {}) == 1.0);
  CHECK(skip_cost(*w, {}) == 1.0);
  // Every layer skipped: only the embedding and the classifier are left.
  const std::vector<int> all = {0, 1, 2, 3, 4};
  const double a = skip_agreement(model, ref, all);
  CHECK(a < 0.5);
  const double bare = skip_cost(*w, all);
  CHECK(bare > 0.0);
  CHECK(bare < 0.5);
  // The model's own cache is not used, and no layer is left skipped.
  CHECK(model.position() == 0);
  CHECK(skip_agreement(model, ref, {}) == 1.0);
}

TEST_CASE("skip_cost counts the bytes of the kept layers, the classifier and one embedding row", "[skip]") {
  auto w = load_or_skip("gguf/llama2xs-q8_0.gguf");
  if (!w) return;
  const std::int64_t d = w->config.dim;
  auto bytes = [](const MatrixView& m) { return row_bytes(m.type, m.cols) * m.rows; };
  std::vector<std::int64_t> layer;
  for (const LayerWeights& L : w->layers)
    layer.push_back(bytes(L.wq) + bytes(L.wk) + bytes(L.wv) + bytes(L.wo) + bytes(L.w1) + bytes(L.w2) + bytes(L.w3) +
                    2 * d * 4);
  const std::int64_t fixed = row_bytes(w->tok_embd.type, d) + bytes(w->output) + d * 4;
  const std::int64_t all = fixed + std::accumulate(layer.begin(), layer.end(), std::int64_t{0});
  const std::vector<int> s = {1, 3};
  CHECK(skip_cost(*w, s) == Approx(double(all - layer[1] - layer[3]) / double(all)).epsilon(1e-12));
  // the same layers in any order, repeated or not, cost the same
  const std::vector<int> s2 = {3, 1, 3};
  CHECK(skip_cost(*w, s2) == skip_cost(*w, s));
  CHECK(skip_cost(*w, std::vector<int>{2}) < 1.0);
  const std::vector<int> bad = {5};
  CHECK_THROWS_WITH(skip_cost(*w, bad), Catch::Contains("skip layer 5 is out of range [0, 5)"));
}

// With greedy verification a pipeline's verdict at every position it drafts is the teacher-forced one, bit for
// bit (logits do not depend on how positions are batched). Its accepted / drafted is NOT skip_agreement() in
// general: with DraftLen<1> an accepted draft is followed by the target's bonus token, which is never drafted,
// so the pipeline averages m_j over {0} and every j after a rejection or two past an acceptance, a subset chosen
// by m itself. What must be exact is its statistics predicted from m: rounds, drafted, accepted, rejections.
TEST_CASE("a greedy self-speculative pipeline accepts exactly the drafts skip_matches predicts", "[skip]") {
  auto w = load_or_skip("gguf/stories260K-f32.gguf");
  if (!w) return;
  ThreadPool pool(2);
  const auto prompts = golden_prompts("stories260K-greedy.jsonl", 8);
  constexpr int C = 48, kMaxGamma = 4;
  // positions up to C + gamma - 2 are drafted by the last round of a DraftLen<gamma> pipeline
  const SkipReference ref = make_skip_reference(w, pool, prompts, C + kMaxGamma - 1);
  const int R = ref.continuation;
  Transformer<> model(w, pool, ref.longest_input());
  const std::vector<std::vector<int>> sets = {{1}, {2}, {3}, {1, 3}, {1, 2, 3}};
  for (const std::vector<int>& skip : sets) {
    const std::vector<std::uint8_t> m = skip_matches(model, ref, skip);
    PipelineOptions o;
    o.max_seq = 256;
    o.skip_layers = skip;
    Pipeline<Draft<SkipLayers<>>, Target<>, DraftLen<1>, GreedyVerify> p1(w, pool, o);
    Pipeline<Draft<SkipLayers<>>, Target<>, DraftLen<4>, GreedyVerify> p4(w, pool, o);
    int drafted = 0, accepted = 0;
    double over_all = 0.0;  // mean m_j over positions 0 .. C-1 of every text
    for (std::size_t t = 0; t < prompts.size(); ++t) {
      INFO("skip " << str(skip) << ", text " << t);
      const std::span<const std::uint8_t> mt = std::span<const std::uint8_t>(m).subspan(t * R, R);
      const Tokens want(ref.texts[t].end() - R, ref.texts[t].end() - R + C);
      const SpeculativeResult r1 = p1.generate(prompts[t], C);
      REQUIRE(r1.tokens == want);
      const Predicted e1 = predict(mt, C, 1);
      CHECK(r1.stats.rounds == e1.rounds);
      CHECK(r1.stats.drafted == e1.drafted);
      CHECK(r1.stats.accepted == e1.accepted);
      CHECK(r1.stats.rejections == e1.rejections);
      drafted += r1.stats.drafted;
      accepted += r1.stats.accepted;
      over_all += std::accumulate(mt.begin(), mt.begin() + C, 0.0);
      // longer drafts: the draft's later tokens follow its own accepted ones, which are the target's
      const SpeculativeResult r4 = p4.generate(prompts[t], C);
      REQUIRE(r4.tokens == want);
      const Predicted e4 = predict(mt, C, 4);
      CHECK(r4.stats.rounds == e4.rounds);
      CHECK(r4.stats.drafted == e4.drafted);
      CHECK(r4.stats.accepted == e4.accepted);
      CHECK(r4.stats.rejections == e4.rejections);
    }
    over_all /= static_cast<double>(prompts.size() * C);
    const double pipeline_rate = double(accepted) / drafted;
    WARN("stories260K skipping " << str(skip) << ": teacher-forced agreement " << over_all << ", DraftLen<1> pipeline accepted / "
                                 << "drafted " << pipeline_rate << " (" << accepted << "/" << drafted << ")");
  }
}

TEST_CASE("the search tries every allowed layer at each step and keeps the best", "[skip]") {
  auto w = load_or_skip("gguf/stories260K-f32.gguf");
  if (!w) return;
  ThreadPool pool(2);
  const SkipReference ref = make_skip_reference(w, pool, golden_prompts("stories260K-greedy.jsonl", 4), 24);
  Transformer<> model(w, pool, ref.longest_input());
  struct Case {
    SkipSearchOptions opt;
    std::vector<int> allowed;
    int steps;  // K
  };
  const Case cases[] = {
      {{}, {1, 2, 3}, 3},                // default: n_layers - 1 = 4, but only 3 layers may be skipped
      {{2, true}, {1, 2, 3}, 2},
      {{-1, false}, {0, 1, 2, 3, 4}, 4},
      {{0, true}, {1, 2, 3}, 0},
  };
  for (const Case& c : cases) {
    INFO("max_skipped " << c.opt.max_skipped << " keep_first_last " << c.opt.keep_first_last);
    const int A = static_cast<int>(c.allowed.size());
    int total = 1;
    for (int k = 1; k <= c.steps; ++k) total += A - k + 1;
    std::vector<std::pair<int, int>> calls;
    const auto all = search_skip_sets(model, ref, c.opt, [&](int done, int n) { calls.emplace_back(done, n); });
    REQUIRE(static_cast<int>(all.size()) == total);
    REQUIRE(calls.size() == all.size());
    for (std::size_t i = 0; i < calls.size(); ++i) CHECK(calls[i] == std::make_pair(static_cast<int>(i) + 1, total));
    // S_0 first, then step k's |A| - k + 1 sets of k layers, each an allowed layer added to S_{k-1}
    CHECK(all[0].layers.empty());
    CHECK(all[0].agreement == 1.0);
    CHECK(all[0].cost == 1.0);
    CHECK(all[0].on_path);
    std::vector<SkipCandidate> path = {all[0]};
    std::size_t at = 1;
    for (int k = 1; k <= c.steps; ++k) {
      const std::size_t end = at + static_cast<std::size_t>(A - k + 1);
      const std::vector<int> prev = path.back().layers;
      int kept = 0;
      double best = -1.0;
      for (std::size_t i = at; i < end; ++i) {
        const SkipCandidate& s = all[i];
        REQUIRE(static_cast<int>(s.layers.size()) == k);
        CHECK(std::is_sorted(s.layers.begin(), s.layers.end()));
        CHECK(std::includes(s.layers.begin(), s.layers.end(), prev.begin(), prev.end()));
        for (int l : s.layers) CHECK(std::find(c.allowed.begin(), c.allowed.end(), l) != c.allowed.end());
        CHECK(s.cost == skip_cost(*w, s.layers));
        best = std::max(best, s.agreement);
        if (s.on_path) {
          ++kept;
          path.push_back(s);
        }
      }
      REQUIRE(kept == 1);
      CHECK(path.back().agreement == best);
      at = end;
    }
    // the path: one more layer per step, strictly cheaper
    for (std::size_t k = 1; k < path.size(); ++k) CHECK(path[k].cost < path[k - 1].cost);
    // a recorded agreement is skip_agreement's
    CHECK(all.back().agreement == skip_agreement(model, ref, all.back().layers));
  }
}

TEST_CASE("pareto_front keeps the undominated candidates by cost", "[skip]") {
  CHECK(pareto_front({}).empty());
  const auto front = pareto_front({
      cand({1}, 0.90, 0.80),
      cand({2}, 0.95, 0.80),     // same cost, more agreement: dominates {1}
      cand({}, 1.00, 1.00),
      cand({3}, 0.95, 0.85),     // more cost, same agreement as {2}: dominated
      cand({1, 2}, 0.70, 0.60),
      cand({2, 3}, 0.70, 0.60),  // equal to {1, 2} in both: the first one given is kept
      cand({1, 3}, 0.60, 0.60),  // same cost, less agreement: dominated by {1, 2}
      cand({0, 1, 3}, 0.65, 0.40),
      cand({1, 2, 3}, 0.65, 0.45),  // the agreement of {0, 1, 3} for more cost: dominated
      cand({0, 1, 2, 3}, 0.10, 0.20),
  });
  std::vector<std::vector<int>> layers;
  for (const auto& c : front) layers.push_back(c.layers);
  CHECK(layers == std::vector<std::vector<int>>{{0, 1, 2, 3}, {0, 1, 3}, {1, 2}, {2}, {}});
  for (std::size_t i = 1; i < front.size(); ++i) {
    CHECK(front[i].cost > front[i - 1].cost);
    CHECK(front[i].agreement > front[i - 1].agreement);
  }
  // ties: equal candidates collapse to the first; a lone candidate is its own front
  const auto tie = pareto_front({cand({2}, 0.5, 0.5), cand({1}, 0.5, 0.5)});
  REQUIRE(tie.size() == 1);
  CHECK(tie[0].layers == std::vector<int>{2});
  CHECK(pareto_front({cand({4}, 0.0, 0.3)}).size() == 1);
  // equal cost, the better agreement wins whichever comes first
  CHECK(pareto_front({cand({1}, 0.4, 0.5), cand({2}, 0.6, 0.5)}).front().layers == std::vector<int>{2});
  CHECK(pareto_front({cand({2}, 0.6, 0.5), cand({1}, 0.4, 0.5)}).size() == 1);
  CHECK_THROWS_WITH(pareto_front({cand({1}, std::nan(""), 0.5)}), Catch::Contains("must be finite"));
}

TEST_CASE("bad skip-search input is refused with a message that names it", "[skip]") {
  auto w = load_or_skip("gguf/stories260K-f32.gguf");
  if (!w) return;
  ThreadPool pool(1);
  const std::vector<Tokens> one = {{1, 403, 407}};
  CHECK_THROWS_WITH(make_skip_reference(w, pool, {}, 8), Catch::Contains("no prompts"));
  CHECK_THROWS_WITH(make_skip_reference(nullptr, pool, one, 8), Catch::Contains("no target model"));
  CHECK_THROWS_WITH(make_skip_reference(w, pool, one, 0), Catch::Contains("continuation length 0 must be >= 1"));
  const std::vector<Tokens> empty = {{1, 2}, {}};
  CHECK_THROWS_WITH(make_skip_reference(w, pool, empty, 8), Catch::Contains("prompt 1 has no tokens"));
  CHECK_THROWS_WITH(make_skip_reference(w, pool, one, 126),  // the GGUF file's context is 128
                    Catch::Contains("prompt 0 (3 tokens) + 126 continuation tokens exceed the context of 128"));
  CHECK_NOTHROW(make_skip_reference(w, pool, one, 125));

  const SkipReference ref = make_skip_reference(w, pool, one, 8);
  Transformer<> model(w, pool, ref.longest_input());
  CHECK(ref.longest_input() == 10);
  const std::vector<int> out_of_range = {1, 5};
  CHECK_THROWS_WITH(skip_agreement(model, ref, out_of_range), Catch::Contains("skip layer 5 is out of range [0, 5)"));
  const std::vector<int> negative = {-1};
  CHECK_THROWS_WITH(skip_agreement(model, ref, negative), Catch::Contains("skip layer -1 is out of range"));
  CHECK(skip_agreement(model, ref, {}) == 1.0);  // a failed call leaves no layer skipped
  Transformer<> short_context(w, pool, 9);
  CHECK_THROWS_WITH(skip_agreement(short_context, ref, {}),
                    Catch::Contains("text 0 runs 10 tokens, more than the context of 9"));
  CHECK_THROWS_WITH(skip_agreement(model, SkipReference{}, {}), Catch::Contains("the reference has no texts"));
  SkipReference broken = ref;
  broken.target_argmax[0].pop_back();
  CHECK_THROWS_WITH(skip_agreement(model, broken, {}), Catch::Contains("text 0 has 7 target argmax ids, expected"));

  for (const int k : {-2, 5}) {
    INFO("max_skipped " << k);
    CHECK_THROWS_WITH(search_skip_sets(model, ref, {k, true}),
                      Catch::Contains("max_skipped " + std::to_string(k) + " is out of range [0, 4]"));
  }
}

// Timing and front of a full search on SmolLM2-135M (30 layers): ./test_skip_search "[.smollm2]"
TEST_CASE("SmolLM2 skip-set search: timing and front", "[.smollm2]") {
  auto w = load_or_skip("gguf/smollm2-135m-instruct-q4_1.gguf");
  if (!w) return;
  const int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  std::vector<Tokens> prompts;
  for (const test::GoldenCase& g : test::load_golden("smollm2-q4_1-greedy.jsonl"))
    if (g.prompt.rfind("Once upon", 0) == 0 || g.prompt.rfind("def fib", 0) == 0 ||
        g.prompt.rfind("What is the largest", 0) == 0 || g.prompt.rfind("Explain what a CPU", 0) == 0)
      prompts.push_back(g.prompt_tokens);
  REQUIRE(prompts.size() == 4);
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const SkipReference ref = make_skip_reference(w, pool, prompts, 48);
  const auto t1 = clock::now();
  Transformer<> model(w, pool, ref.longest_input());
  const auto all = search_skip_sets(model, ref, {}, [&](int done, int total) {
    if (done % 50 == 0 || done == total)
      WARN(done << "/" << total << " after "
                << std::chrono::duration<double>(clock::now() - t1).count() << " s");
  });
  const double seconds = std::chrono::duration<double>(clock::now() - t1).count();
  std::ostringstream os;
  os << "SmolLM2 Q4_1, " << threads << " threads, 4 prompts x 48 tokens (" << ref.longest_input()
     << " tokens the longest): reference " << std::chrono::duration<double>(t1 - t0).count() << " s, search of "
     << all.size() << " sets " << seconds << " s (" << seconds / all.size() << " s each)\npath:\n";
  for (const auto& c : all)
    if (c.on_path) {
      os << "  k=" << c.layers.size() << " agreement " << c.agreement << " cost " << c.cost << " " << str(c.layers)
         << "\n";
    }
  os << "front:\n";
  for (const auto& c : pareto_front(all)) os << "  agreement " << c.agreement << " cost " << c.cost << " k=" << c.layers.size() << "\n";
  WARN(os.str());
}
