// The n-gram lookup drafter (speculative/ngram.hpp, Draft<NGram<N>>): the lookup itself, greedy output equal to
// llama.cpp's golden continuations, point-mass stochastic verification, and the target's exact distribution.
#include <catch2/catch.hpp>

#include <cmath>

#include <edgespec/edgespec.hpp>

#include "chi_square.hpp"
#include "golden.hpp"

namespace {

using namespace edgespec;
using Tokens = std::vector<std::int32_t>;

Tokens lookup(const NGramLookup& l, const Tokens& context, int count) {
  Tokens out;
  const int n = l.draft(context, count, out);
  CHECK(n == static_cast<int>(out.size()));
  return out;
}

std::shared_ptr<const LlamaWeights> load(const char* rel) {
  return std::make_shared<const LlamaWeights>(load_weights(test::model_path(rel)));
}

PipelineOptions greedy_options(int draft_len) {
  PipelineOptions o;
  o.max_seq = 256;
  o.draft_len = draft_len;
  return o;
}

template <class P>
concept has_draft_model = requires(P& p) { p.draft(); };

struct Acceptance {
  int drafted = 0, accepted = 0, rejections = 0;
  [[nodiscard]] double per_trial() const {
    return accepted + rejections > 0 ? double(accepted) / (accepted + rejections) : 0.0;
  }
};

// Every golden prompt through pipeline P: the 64 tokens must be llama.cpp's.
template <class P>
Acceptance check_golden(P& pipeline, const std::vector<test::GoldenCase>& golden) {
  Acceptance a;
  for (const test::GoldenCase& g : golden) {
    INFO("prompt: " << g.prompt);
    const SpeculativeResult r = pipeline.generate(g.prompt_tokens, static_cast<int>(g.greedy_tokens.size()));
    CHECK(r.tokens == g.greedy_tokens);
    a.drafted += r.stats.drafted;
    a.accepted += r.stats.accepted;
    a.rejections += r.stats.rejections;
  }
  return a;
}

}  // namespace

TEST_CASE("NGramLookup drafts what followed the latest earlier occurrence of the last n tokens", "[ngram]") {
  const NGramLookup l3{3, 1};
  // "1 2 3" occurred at the start: the draft is what followed it.
  CHECK(lookup(l3, {1, 2, 3, 9, 8, 7, 5, 1, 2, 3}, 3) == Tokens{9, 8, 7});
  // the latest earlier occurrence wins
  CHECK(lookup(NGramLookup{2, 1}, {1, 2, 5, 1, 2, 6, 1, 2}, 1) == Tokens{6});
  CHECK(lookup(NGramLookup{2, 1}, {1, 2, 5, 1, 2, 6, 1, 2}, 2) == Tokens{6, 1});
  // the longest n that matches wins over a later match of a shorter one
  CHECK(lookup(l3, {1, 2, 3, 4, 9, 3, 5, 1, 2, 3}, 1) == Tokens{4});
  CHECK(lookup(NGramLookup{1, 1}, {1, 2, 3, 4, 9, 3, 5, 1, 2, 3}, 1) == Tokens{5});
  // no match for "5 6 3" or "6 3": falls back to "3"
  CHECK(lookup(l3, {1, 3, 7, 2, 3, 8, 5, 6, 3}, 2) == Tokens{8, 5});
  // ... unless min_n forbids it
  CHECK(lookup(NGramLookup{3, 2}, {1, 3, 7, 2, 3, 8, 5, 6, 3}, 2).empty());
  // no match at all, and contexts too short to have one
  CHECK(lookup(l3, {1, 2, 3, 4}, 4).empty());
  CHECK(lookup(l3, {}, 4).empty());
  CHECK(lookup(l3, {7}, 4).empty());
  // count limits: 0 drafts nothing
  CHECK(lookup(l3, {1, 2, 3, 9, 8, 7, 5, 1, 2, 3}, 0).empty());
  CHECK(lookup(l3, {1, 2, 3, 9, 8, 7, 5, 1, 2, 3}, 64) == Tokens{9, 8, 7, 5, 1, 2, 3});
  // the continuation runs at most to the end of the context (the match may overlap the tail)
  CHECK(lookup(l3, {5, 5, 5}, 8) == Tokens{5});
  CHECK(lookup(l3, {1, 2, 1, 2}, 8) == Tokens{1, 2});
  // draft() appends
  Tokens out{42};
  CHECK(l3.draft(Tokens{1, 2, 3, 1, 2}, 2, out) == 2);
  CHECK(out == Tokens{42, 3, 1});
}

TEST_CASE("NGramLookup::check refuses bad n ranges", "[ngram]") {
  CHECK_NOTHROW(NGramLookup{3, 1}.check());
  CHECK_NOTHROW(NGramLookup{64, 64}.check());
  for (const NGramLookup bad : {NGramLookup{0, 1}, NGramLookup{3, 0}, NGramLookup{2, 3}, NGramLookup{65, 1}}) {
    INFO("max_n " << bad.max_n << " min_n " << bad.min_n);
    CHECK_THROWS_WITH(bad.check(), Catch::Contains("need 1 <= min_n <= max_n <= 64"));
  }
}

TEST_CASE("verify_stochastic_point equals verify_stochastic with one-hot draft distributions", "[ngram]") {
  constexpr std::size_t vocab = 10;
  Rng setup(99);
  for (int trial = 0; trial < 2000; ++trial) {
    const int gamma = trial % 5;  // 0 drafts included
    std::vector<float> p, q(static_cast<std::size_t>(gamma) * vocab, 0.0f);
    for (int i = 0; i <= gamma; ++i) {
      const auto d = test::random_distribution(setup, vocab, trial % 2 == 1);
      p.insert(p.end(), d.begin(), d.end());
    }
    Tokens draft;
    for (int i = 0; i < gamma; ++i) {
      draft.push_back(static_cast<std::int32_t>(setup.next() % vocab));
      q[static_cast<std::size_t>(i) * vocab + static_cast<std::size_t>(draft.back())] = 1.0f;
    }
    Rng a(static_cast<std::uint64_t>(trial)), b(static_cast<std::uint64_t>(trial));
    std::vector<float> ra, rb;
    const VerifyResult dense = verify_stochastic(draft, p, q, vocab, a, ra);
    const VerifyResult point = verify_stochastic_point(draft, p, vocab, b, rb);
    REQUIRE(point.accepted == dense.accepted);
    REQUIRE(point.next_token == dense.next_token);
    REQUIRE(a.next() == b.next());  // the same random numbers were drawn
  }
}

TEST_CASE("Draft<NGram<N>> holds no draft model and checks its options", "[ngram]") {
  using NG = Pipeline<Draft<NGram<3>>, Target<>, DraftLen<4>>;
  static_assert(NG::ngram_drafter && !NG::self_speculative);
  static_assert(sizeof(NG) < sizeof(Pipeline<Draft<>, Target<>, DraftLen<4>>));
  static_assert(!has_draft_model<NG>);
  static_assert(has_draft_model<Pipeline<Draft<>, Target<>, DraftLen<4>>>);
  static_assert(!std::is_constructible_v<NG, std::shared_ptr<const LlamaWeights>, std::shared_ptr<const LlamaWeights>,
                                         ThreadPool&, PipelineOptions>);
  auto target = load("llama2c/stories260K.bin");
  ThreadPool pool(1);
  CHECK(NG(target, pool).ngram().max_n == 3);
  PipelineOptions o;
  o.ngram_max = 5;
  CHECK(Pipeline<Draft<NGram<>>, Target<>>(target, pool, o).ngram().max_n == 5);
  CHECK_THROWS_WITH(NG(target, pool, o), Catch::Contains("Draft<NGram<3>> fixes the longest n-gram"));
  CHECK_THROWS_WITH((Pipeline<Draft<>, Target<>>(target, target, pool, o)),
                    Catch::Contains("ngram_max needs a Draft<NGram<>> pipeline"));
  o.ngram_max = 0;
  CHECK_THROWS_WITH((Pipeline<Draft<NGram<>>, Target<>>(target, pool, o)),
                    Catch::Contains("must be in 1..64 (it is 0)"));
  o.ngram_max = 65;
  CHECK_THROWS_WITH((Pipeline<Draft<NGram<>>, Target<>>(target, pool, o)), Catch::Contains("(it is 65)"));
  o = {};
  o.early_stop = 0.3f;
  CHECK_THROWS_WITH(NG(target, pool, o), Catch::Contains("the n-gram drafter has none"));
  o = {};
  o.skip_layers = {1};
  CHECK_THROWS_WITH(NG(target, pool, o), Catch::Contains("skip_layers needs a Draft<SkipLayers<>> pipeline"));
}

TEST_CASE("greedy n-gram drafting equals the golden continuations", "[ngram][speculative]") {
  auto target = load("llama2c/stories260K.bin");
  const auto golden = test::load_golden("stories260K-greedy.jsonl");
  ThreadPool pool(2);
  auto fixed = [&]<int K>(std::integral_constant<int, K>) {
    Pipeline<Draft<NGram<3>>, Target<>, DraftLen<K>> p(target, pool, greedy_options(0));
    const Acceptance a = check_golden(p, golden);
    WARN("n-gram (n <= 3), DraftLen<" << K << ">: " << a.accepted << " of " << a.drafted
                                      << " drafts accepted, per-trial alpha " << a.per_trial());
    CHECK(a.drafted > 0);
  };
  fixed(std::integral_constant<int, 1>{});
  fixed(std::integral_constant<int, 4>{});
  fixed(std::integral_constant<int, 8>{});
  for (int gamma = 1; gamma <= 8; ++gamma) {  // run-time lengths, and n from the options
    INFO("draft length " << gamma);
    PipelineOptions o = greedy_options(gamma);
    o.ngram_max = 1 + gamma % 4;
    Pipeline<Draft<NGram<>>, Target<Stories260K>, AdaptiveDraftLen<1, 8>> p(target, pool, o);
    check_golden(p, golden);
  }
  Pipeline<Draft<NGram<3>>, Target<>, AdaptiveDraftLen<1, 8>, GreedyVerify> adaptive(target, pool, greedy_options(0));
  check_golden(adaptive, golden);
}

TEST_CASE("n-gram drafts are accepted on repetitive text, and extend() continues the lookup", "[ngram][speculative]") {
  auto target = load("llama2c/stories260K.bin");
  const auto golden = test::load_golden("stories260K-greedy.jsonl");
  // 'Mom said, "Let's go to the park!"': the continuation repeats the prompt's phrases.
  const test::GoldenCase* g = nullptr;
  for (const auto& c : golden)
    if (c.prompt.rfind("Mom said", 0) == 0) g = &c;
  REQUIRE(g != nullptr);
  ThreadPool pool(2);
  Pipeline<Draft<NGram<3>>, Target<>, DraftLen<4>> p(target, pool, greedy_options(0));
  const SpeculativeResult r = p.generate(g->prompt_tokens, static_cast<int>(g->greedy_tokens.size()));
  CHECK(r.tokens == g->greedy_tokens);
  WARN("n-gram (n <= 3), DraftLen<4>, '" << g->prompt << "': alpha " << r.stats.acceptance_rate() << " ("
       << r.stats.accepted << "/" << r.stats.drafted << "), per trial " << r.stats.acceptance_per_trial() << ", "
       << r.stats.tokens_per_round() << " tokens/round");
  CHECK(r.stats.accepted >= 20);
  CHECK(r.stats.tokens_per_round() > 1.5);
  CHECK(r.stats.rounds < static_cast<int>(g->greedy_tokens.size()));

  // A chat's next turn: the prompt fed in two parts gives the same continuation.
  const auto split = g->prompt_tokens.begin() + 4;
  p.begin(Tokens(g->prompt_tokens.begin(), split));
  p.extend(Tokens(split, g->prompt_tokens.end()));
  CHECK(p.run(static_cast<int>(g->greedy_tokens.size())).tokens == g->greedy_tokens);
}

// As tests/test_speculative_distribution.cpp, for point-mass drafts: a prompt whose last two tokens occurred
// earlier, so the lookup drafts d_1 d_2 d_3 (what followed them), and the first two emitted tokens must follow
// the target's own laws p_1 (after the prompt) and p_2 (after the prompt and d_1, given d_1 was kept).
TEST_CASE("stochastic n-gram drafting emits the target's exact distribution", "[ngram][distribution]") {
  auto target = load("llama2c/stories260K.bin");
  const auto golden = test::load_golden("stories260K-greedy.jsonl");
  const test::GoldenCase* sam = nullptr;  // "Sam had a red ball. He" -> " wanted to play with ... ."
  for (const auto& c : golden)
    if (c.prompt.rfind("Sam had", 0) == 0) sam = &c;
  REQUIRE(sam != nullptr);
  // "Sam had a red ball. He wanted to play with it all day. He": ". He" occurred before, so the drafts are
  // " wanted to play"; the target gives " wanted" about 0.3 at temperature 1 (over 30 bins with >= 5 expected).
  Tokens prompt = sam->prompt_tokens;
  prompt.insert(prompt.end(), sam->greedy_tokens.begin(), sam->greedy_tokens.begin() + 10);
  prompt.push_back(sam->prompt_tokens.back());
  Tokens drafts;
  NGramLookup{3, 1}.draft(prompt, 3, drafts);
  REQUIRE(drafts.size() == 3);
  const std::int32_t d1 = drafts[0];

  struct Config {
    float temperature;
    int top_k;
    float top_p;
  };
  const Config cfg = GENERATE(Config{1.0f, 0, 1.0f}, Config{0.7f, 0, 1.0f}, Config{0.8f, 40, 0.95f});
  INFO("temperature " << cfg.temperature << " top-k " << cfg.top_k << " top-p " << cfg.top_p);
  SamplingParams sp;
  sp.temperature = cfg.temperature;
  sp.top_k = cfg.top_k;
  sp.top_p = cfg.top_p;

  ThreadPool pool(1);
  Transformer<> reference(target, pool, 64);
  std::vector<std::int32_t> scratch;
  auto law = [&](const Tokens& context) {
    reference.reset();
    const auto logits = reference.forward(context);
    std::vector<float> p(logits.size());
    distribution(logits, sp, p, scratch);
    return p;
  };
  const std::vector<float> p1 = law(prompt);
  Tokens after_d1 = prompt;
  after_d1.push_back(d1);
  const std::vector<float> p2 = law(after_d1);

  PipelineOptions o;
  o.sampling = sp;
  o.max_seq = 64;
  Pipeline<Draft<NGram<3>>, Target<>, DraftLen<3>, StochasticVerify> pipeline(target, pool, o);
  constexpr long n = 8000;
  std::vector<long> first(p1.size(), 0), second(p2.size(), 0);
  long second_n = 0, drafted_first = 0;
  for (long s = 0; s < n; ++s) {
    pipeline.set_seed(static_cast<std::uint64_t>(s) + 1);
    pipeline.begin(prompt);
    const auto emitted = pipeline.round();
    REQUIRE(pipeline.stats().drafted == 3);
    ++first[static_cast<std::size_t>(emitted[0])];
    if (pipeline.stats().accepted >= 1) {  // d_1 kept: the next token follows p_2
      REQUIRE(emitted[0] == d1);
      ++drafted_first;
      ++second[static_cast<std::size_t>(emitted[1])];
      ++second_n;
    }
  }
  const test::ChiSquare c1 = test::chi_square(first, p1, n);
  const test::ChiSquare c2 = test::chi_square(second, p2, second_n);
  WARN("T " << cfg.temperature << " top-k " << cfg.top_k << " top-p " << cfg.top_p << ": p1(d1) " << p1[d1]
            << ", d1 emitted in " << drafted_first << " of " << n << "; chi2 first " << c1.statistic << " (df " << c1.df
            << ", critical " << c1.critical << "), second " << c2.statistic << " (df " << c2.df << ", critical "
            << c2.critical << ")");
  CHECK(c1.statistic < c1.critical);
  CHECK(c2.statistic < c2.critical);
  CHECK(drafted_first > n / 10);
  CHECK(second_n > 1000);
  // Power: the law of a verifier that never accepted d_1 (p_1 without d_1) is rejected; one that always did
  // would emit d_1 every time.
  std::vector<float> never = p1;
  never[d1] = 0.0f;
  for (float& x : never) x /= 1.0f - p1[d1];
  CHECK(test::chi_square(first, never, n).statistic > c1.critical);
  CHECK(drafted_first < n - n / 10);
}
