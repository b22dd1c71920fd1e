// Whole speculative pipelines in every placement of draft and target (OnCPU / OnGPU: the OpenCL device, PoCL
// on the CPU in CI): greedy output equals the golden continuations; the KV rollback and the target's
// distribution hold with the target on the device.
#include <catch2/catch.hpp>

#include <cmath>

#include <edgespec/edgespec.hpp>

#include "chi_square.hpp"
#include "golden.hpp"

namespace {

using namespace edgespec;

std::shared_ptr<const LlamaWeights> load(const char* rel) {
  return std::make_shared<const LlamaWeights>(load_weights(test::model_path(rel)));
}

PipelineOptions greedy(int draft_len) {
  PipelineOptions o;
  o.max_seq = 256;
  o.draft_len = draft_len;
  return o;
}

template <class P>
void check_golden(P& p, const char* golden, std::size_t cases = 99) {
  const auto all = test::load_golden(golden);
  for (std::size_t i = 0; i < std::min(cases, all.size()); ++i) {
    const test::GoldenCase& g = all[i];
    INFO("prompt: " << g.prompt);
    const SpeculativeResult r = p.generate(g.prompt_tokens, static_cast<int>(g.greedy_tokens.size()));
    CHECK(r.tokens == g.greedy_tokens);
  }
}

}  // namespace

TEMPLATE_TEST_CASE("greedy pipelines in every placement equal the golden continuations", "[opencl][pipeline]",
                   (std::pair<OnGPU, OnCPU>), (std::pair<OnCPU, OnGPU>), (std::pair<OnGPU, OnGPU>)) {
  using D = typename TestType::first_type;
  using T = typename TestType::second_type;
  auto target = load("llama2c/stories260K.bin");
  auto draft = load("llama2c/llama2xs.bin");
  ThreadPool pool(1);
  SECTION("a second model drafting") {
    Pipeline<Draft<D>, Target<T>, AdaptiveDraftLen<1, 8>> p(target, draft, pool, greedy(3));
    check_golden(p, "stories260K-greedy.jsonl");
    CHECK(p.stats().accepted > 0);
  }
  SECTION("self-speculative (layers 1 and 3 skipped)") {
    PipelineOptions o = greedy(2);
    o.skip_layers = {1, 3};
    Pipeline<Draft<SkipLayers<>, D>, Target<T>, AdaptiveDraftLen<1, 8>> p(target, pool, o);
    check_golden(p, "stories260K-greedy.jsonl", 3);
  }
  SECTION("a Q8_0 copy drafting, F16 target") {
    auto f16 = load("gguf/llama2xs-f16.gguf");
    auto q8 = load("gguf/llama2xs-q8_0.gguf");
    Pipeline<Draft<D>, Target<T>, DraftLen<4>> p(f16, q8, pool, greedy(0));
    check_golden(p, "llama2xs-greedy.jsonl", 4);
  }
}

TEST_CASE("n-gram drafting with the target on the device equals the golden continuations", "[opencl][pipeline]") {
  auto target = load("llama2c/stories260K.bin");
  ThreadPool pool(1);
  PipelineOptions o = greedy(4);
  o.ngram_max = 3;
  Pipeline<Draft<NGram<>>, Target<OnGPU>, AdaptiveDraftLen<1, 8>> p(target, pool, o);
  check_golden(p, "stories260K-greedy.jsonl");
}

TEST_CASE("rollback with the target on the device: every draft rejected still gives the target's output",
          "[opencl][pipeline]") {
  // A draft that never agrees (a different model with a forced bad temperature would be random; here the
  // self-speculative draft with all but one layer skipped) makes every round roll the device cache back.
  auto target = load("llama2c/stories260K.bin");
  ThreadPool pool(1);
  PipelineOptions o = greedy(6);
  o.skip_layers = {0, 1, 2, 3};
  Pipeline<Draft<SkipLayers<>, OnCPU>, Target<OnGPU>, AdaptiveDraftLen<1, 8>> p(target, pool, o);
  check_golden(p, "stories260K-greedy.jsonl", 4);
  CHECK(p.stats().rejections > 0);
}

TEST_CASE("stochastic verification with the target on the device keeps the target's distribution",
          "[opencl][pipeline][distribution]") {
  auto target = load("llama2c/stories260K.bin");
  auto draft = load("llama2c/llama2xs.bin");
  const std::vector<std::int32_t> prompt = {1, 291};
  SamplingParams sp;
  sp.temperature = 1.0f;
  ThreadPool pool(1);
  opencl::DeviceTransformer<> reference(target, pool, 32);
  const auto logits = reference.forward(prompt);
  std::vector<float> p(logits.size()), q(logits.size());
  std::vector<std::int32_t> scratch;
  distribution(logits, sp, p, scratch);
  Transformer<> draft_model(draft, pool, 32);
  distribution(draft_model.forward(prompt), sp, q, scratch);

  PipelineOptions o;
  o.sampling = sp;
  o.max_seq = 32;
  Pipeline<Draft<OnCPU>, Target<OnGPU>, DraftLen<3>, StochasticVerify> pipeline(target, draft, pool, o);
  constexpr long n = 3000;
  std::vector<long> counts(p.size(), 0);
  for (long s = 0; s < n; ++s) {
    pipeline.set_seed(static_cast<std::uint64_t>(s) + 1);
    pipeline.begin(prompt);
    ++counts[static_cast<std::size_t>(pipeline.round()[0])];
  }
  const test::ChiSquare c = test::chi_square(counts, p, n);
  WARN("target on the device: chi2 " << c.statistic << " df " << c.df << " critical " << c.critical);
  CHECK(c.statistic < c.critical);
  CHECK(test::chi_square(counts, q, n).statistic > c.critical);  // power: the draft's law is rejected
}

TEST_CASE("SmolLM2 converted to F32 with the target on the device equals llama.cpp's continuations",
          "[opencl][pipeline][smollm2]") {
  ThreadPool pool(2);
  auto f32 = std::make_shared<const LlamaWeights>(
      requantize(load("gguf/smollm2-135m-instruct-q4_1.gguf"), DType::F32, &pool));
  auto q8 = std::make_shared<const LlamaWeights>(requantize(f32, DType::Q8_0, &pool));
  Pipeline<Draft<OnCPU>, Target<OnGPU>, DraftLen<3>> p(f32, q8, pool, greedy(0));
  const auto cases = test::load_golden("smollm2-f32-greedy.jsonl");
  int exact = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    const test::GoldenCase& g = cases[i];
    const std::size_t m = std::min<std::size_t>(16, g.greedy_tokens.size());
    const SpeculativeResult r = p.generate(g.prompt_tokens, static_cast<int>(m));
    const bool same = std::equal(r.tokens.begin(), r.tokens.end(), g.greedy_tokens.begin());
    exact += same;
    WARN("SmolLM2 F32 on the device, " << g.prompt << ": " << (same ? "equal" : "differs") << " over " << m
                                        << " tokens");
  }
  CHECK(exact == 3);
}

TEMPLATE_TEST_CASE("the Overlapped schedule gives the same greedy output and drafts during verification",
                   "[opencl][pipeline][overlapped]", (std::pair<OnGPU, OnCPU>), (std::pair<OnCPU, OnGPU>)) {
  using D = typename TestType::first_type;
  using T = typename TestType::second_type;
  auto target = load("llama2c/stories260K.bin");
  auto draft = load("llama2c/llama2xs.bin");
  ThreadPool pool(1);
  for (int g : {1, 3, 5}) {
    INFO("draft length " << g);
    // Drafting ahead stops when the verification ends, which depends on timing; overlap_min_ahead makes the
    // drafter always draft g + 1 ahead, so every path (kept, discarded) is taken whatever the machine.
    PipelineOptions o = greedy(g);
    o.overlap_min_ahead = g + 1;
    Pipeline<Draft<D>, Target<T>, AdaptiveDraftLen<1, 8>, Overlapped> p(target, draft, pool, o);
    int overlapped = 0, discarded = 0;
    for (const test::GoldenCase& c : test::load_golden("stories260K-greedy.jsonl")) {
      INFO("prompt: " << c.prompt);
      const SpeculativeResult r = p.generate(c.prompt_tokens, static_cast<int>(c.greedy_tokens.size()));
      CHECK(r.tokens == c.greedy_tokens);
      overlapped += r.stats.overlapped_rounds;
      discarded += r.stats.discarded;
    }
    WARN("Overlapped, draft length " << g << ": " << overlapped << " rounds drafted during the previous verify, "
                                     << discarded << " tokens discarded");
    CHECK(overlapped > 0);  // drafting ahead paid off in some rounds
    CHECK(discarded > 0);   // and was thrown away in others
  }
  SECTION("drafting ahead only while verification runs (timing-dependent path): still exact") {
    Pipeline<Draft<D>, Target<T>, AdaptiveDraftLen<1, 8>, Overlapped> p(target, draft, pool, greedy(3));
    check_golden(p, "stories260K-greedy.jsonl", 4);
  }
  SECTION("self-speculative") {
    PipelineOptions o = greedy(2);
    o.overlap_min_ahead = 3;
    o.skip_layers = {1, 3};
    Pipeline<Draft<SkipLayers<>, D>, Target<T>, AdaptiveDraftLen<1, 8>, Overlapped> p(target, pool, o);
    check_golden(p, "stories260K-greedy.jsonl", 3);
  }
}

TEST_CASE("the Overlapped schedule samples valid tokens stochastically", "[opencl][pipeline][overlapped]") {
  auto target = load("llama2c/stories260K.bin");
  auto draft = load("llama2c/llama2xs.bin");
  ThreadPool pool(1);
  PipelineOptions o;
  o.max_seq = 256;
  o.sampling.temperature = 0.8f;
  o.sampling.top_k = 40;
  o.overlap_min_ahead = 4;
  Pipeline<Draft<OnGPU>, Target<OnCPU>, DraftLen<3>, Overlapped> p(target, draft, pool, o);
  const SpeculativeResult r = p.generate(std::vector<std::int32_t>{1, 403, 407}, 100);
  CHECK(r.tokens.size() == 100);
  for (const std::int32_t t : r.tokens) CHECK((t >= 0 && t < 512));
  CHECK(r.stats.overlapped_rounds > 0);
}

TEST_CASE("a target split across the CPU and the device gives the golden continuations", "[opencl][pipeline][split]") {
  auto target = load("llama2c/stories260K.bin");
  auto draft = load("llama2c/llama2xs.bin");
  ThreadPool pool(1);
  for (int cut : {0, 2, 4, 5}) {  // 5 = n_layers: only the classifier on the second device
    INFO("layers [0, " << cut << ") first");
    PipelineOptions o = greedy(3);
    o.target_split = cut;
    Pipeline<Draft<OnCPU>, Target<Split<OnCPU, OnGPU>>, AdaptiveDraftLen<1, 8>> a(target, draft, pool, o);
    check_golden(a, "stories260K-greedy.jsonl", 3);
    Pipeline<Draft<OnGPU>, Target<Split<OnGPU, OnCPU>>, AdaptiveDraftLen<1, 8>> b(target, draft, pool, o);
    check_golden(b, "stories260K-greedy.jsonl", 3);
    CHECK(a.target().cut() == cut);
  }
  // The split model's logits against the CPU backend's, and its KV rows from the part that holds each layer.
  PipelineOptions o = greedy(3);
  o.target_split = 2;
  Pipeline<Draft<OnCPU>, Target<Split<OnGPU, OnCPU>>, DraftLen<3>> p(target, draft, pool, o);
  Transformer<> cpu(target, pool, 64);
  const std::vector<std::int32_t> t = {1, 403, 407, 261, 378};
  const auto c = cpu.forward(t, Logits::All);
  const std::vector<float> want(c.begin(), c.end());
  const auto g = p.target().forward(t, Logits::All);
  double err = 0.0, scale = 1e-12;
  for (std::size_t i = 0; i < want.size(); ++i) {
    err = std::max(err, static_cast<double>(std::fabs(g[i] - want[i])));
    scale = std::max(scale, static_cast<double>(std::fabs(want[i])));
  }
  CHECK(err / scale < 1e-3);
  // Layer 4 runs on the CPU part, layer 0 on the device part: both hold their rows (f16, so close).
  for (int layer : {0, 4}) {
    const std::vector<float> a = p.target().key(layer, 2), b = cpu.key(layer, 2);
    double e = 0.0, m = 1e-12;
    for (std::size_t i = 0; i < a.size(); ++i) {
      e = std::max(e, static_cast<double>(std::fabs(a[i] - b[i])));
      m = std::max(m, static_cast<double>(std::fabs(b[i])));
    }
    CHECK(e / m < 1e-2);
  }
  PipelineOptions bad = greedy(3);
  bad.target_split = 6;
  CHECK_THROWS_WITH((Pipeline<Draft<OnCPU>, Target<Split<OnCPU, OnGPU>>, DraftLen<3>>(target, draft, pool, bad)),
                    Catch::Contains("target split: layer 6 is out of range [0, 5]"));
}

TEST_CASE("the statistics give each device's busy time and the split target's hand-over", "[opencl][pipeline][stats]") {
  auto target = load("llama2c/stories260K.bin");
  auto draft = load("llama2c/llama2xs.bin");
  ThreadPool pool(1);
  const std::vector<std::int32_t> prompt = {1, 403, 407};
  {  // drafts on the device, target on the CPU, in turn: each device's time is within the decode time
    Pipeline<Draft<OnGPU>, Target<OnCPU>, DraftLen<3>> p(target, draft, pool, greedy(3));
    const SpeculativeStats s = p.generate(prompt, 40).stats;
    CHECK(s.gpu_seconds > 0.0);
    CHECK(s.cpu_seconds > 0.0);
    CHECK(s.gpu_seconds <= s.draft_seconds);
    CHECK(s.cpu_seconds <= s.verify_seconds);
    CHECK(s.cpu_seconds + s.gpu_seconds <= s.gen.decode_seconds);
    CHECK(s.handover_seconds == 0.0);
  }
  {  // all on the CPU: nothing on the device
    Pipeline<Draft<OnCPU>, Target<OnCPU>, DraftLen<3>> p(target, draft, pool, greedy(3));
    const SpeculativeStats s = p.generate(prompt, 40).stats;
    CHECK(s.gpu_seconds == 0.0);
    CHECK(s.cpu_seconds > 0.0);
  }
  {  // a split target: its parts on their devices, the hand-over counted, all within the verification time
    PipelineOptions o = greedy(3);
    o.target_split = 2;
    Pipeline<Draft<OnCPU>, Target<Split<OnCPU, OnGPU>>, DraftLen<3>> p(target, draft, pool, o);
    const SpeculativeStats s = p.generate(prompt, 40).stats;
    CHECK(s.gpu_seconds > 0.0);
    CHECK(s.handover_seconds > 0.0);
    CHECK(s.gpu_seconds + s.handover_seconds <= s.verify_seconds);
    CHECK(s.cpu_seconds > s.draft_seconds * 0.5);  // the draft's forwards and the target's first part
  }
}
