// Speculative decoding end to end: Pipeline<...> instantiations each generating a fixed number of tokens, with
// the acceptance statistics and the speedup over target-only decoding of the same target, measured in the
// same run (same weights, prompt, token count, sampling, threads and KV-cache type).
//
//   bench_pipeline [--benchmark_filter=...]
//   EDGESPEC_MODEL_DIR               the reference models (default: ../shared/models above the working directory)
//   EDGESPEC_BENCH_DIR               where the synthetic models are written once (default: ./bench-models)
//   EDGESPEC_BENCH_PIPELINE_SHAPE    shape of the synthetic "cost only" target (default stories110m)
//   EDGESPEC_BENCH_PIPELINE_TYPE     its weight type (default f32); the drafter is its Q4_0 requantized copy
//   EDGESPEC_BENCH_PIPELINE_LAYERS   override its layer count (quick runs); 0 = the shape's
//
// Counters (per case, over all iterations):
//   tok/s              generated tokens / decode seconds, over all iterations (Pipeline: all its rounds)
//   target_tok/s       the same for target-only decoding (Transformer + generate(), built once per target) of
//                      the same target, prompt, token count and sampling, run between the pipeline's iterations
//   speedup            tok/s / target_tok/s
//   alpha              accepted / drafted            alpha_trial   accepted / (accepted + rejections)
//   tokens_per_round   emitted tokens per round      gamma         mean draft tokens per round
//   c, v               one draft token, and one verification forward (gamma + 1 positions), in target-only tokens
//   draft_ms/round, verify_ms/round, target_ms/token   the "cost only" synthetic cases: random weights make
//                      acceptance meaningless there, so they report what a round costs, not a speedup.
//
// SmolLM2-135M-Instruct (the "smollm2/..." cases): the real-model case. The F16 target is the distributed Q4_1
// file converted in memory (requantize); drafters are its Q8_0 / Q6_K / Q4_K / Q4_0 copies or the target with layers
// skipped; the prompt is a translation request wrapped by its chat template; 2 threads; greedy, 128 tokens.
//
// The reference pair (stories260K, llama2xs) has 0.27M parameters: a forward is tens of microseconds, so call
// and thread overhead dominate and these cases run on 1 thread; they measure the mechanism, not the hardware.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <edgespec/edgespec.hpp>

#include "bench_common.hpp"

namespace {

using namespace edgespec;
namespace fs = std::filesystem;

using bench::env_or;
using bench::model_dir;

using WeightsPtr = std::shared_ptr<const LlamaWeights>;

// Weights by key, loaded (or made) once per run.
template <class Make>
WeightsPtr cached(const std::string& key, Make make) {
  static std::map<std::string, WeightsPtr> cache;
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  return cache[key] = make();
}
WeightsPtr reference(const std::string& rel) {
  return cached(rel, [&] { return std::make_shared<const LlamaWeights>(load_weights((model_dir() / rel).string())); });
}
WeightsPtr requantized(const std::string& key, const WeightsPtr& source, DType type) {
  return cached(key + "@" + std::string(name(type)), [&] {
    ThreadPool pool(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    return std::make_shared<const LlamaWeights>(requantize(source, type, &pool));
  });
}

// ---- the reference pair ----

constexpr const char* kTarget = "llama2c/stories260K.bin";
constexpr const char* kDraft = "llama2c/llama2xs.bin";
constexpr int kTokens = 64;  // as the golden continuations
constexpr int kMaxSeq = 256;  // llama2xs's context

// "Once upon a time" with BOS, tokenized with tok512.bin: {1, 403, 407, 261, 378}.
const std::vector<std::int32_t>& story_prompt() {
  static const std::vector<std::int32_t> ids =
      Tokenizer(load_llama2c_tokenizer((model_dir() / "llama2c/tok512.bin").string(), 512))
          .encode("Once upon a time", /*add_bos=*/true);
  return ids;
}

// ---- SmolLM2-135M-Instruct ----

constexpr const char* kSmolLM2 = "gguf/smollm2-135m-instruct-q4_1.gguf";

WeightsPtr smollm2_f16() {
  return cached("smollm2-f16", [] {
    ThreadPool pool(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    return std::make_shared<const LlamaWeights>(requantize(reference(kSmolLM2), DType::F16, &pool));
  });
}

// The chat prompt of the demo (scripts/demo) and of the golden chat case, as llama.cpp tokenizes it.
const std::vector<std::int32_t>& smollm2_prompt() {
  static const std::vector<std::int32_t> ids = [] {
    const LlamaWeights& w = *reference(kSmolLM2);
    const Tokenizer tok(vocab_from_gguf(*w.gguf));
    const ChatTemplate t = resolve_chat_template(w.gguf->get_string("tokenizer.chat_template"), std::nullopt);
    const std::vector<ChatMessage> chat{{"user", "Translate to French: Good morning, how are you?"}};
    return tok.encode(apply_chat_template(t, chat, true), /*add_special=*/true, /*parse_special=*/true);
  }();
  return ids;
}

// ---- the synthetic "cost only" target ----

struct Synth {
  std::string key;
  WeightsPtr target, draft_q4;
};

const Synth& synth() {
  static const Synth s = [] {
    const std::string shape = env_or("EDGESPEC_BENCH_PIPELINE_SHAPE", "stories110m");
    const DType type = parse_dtype(env_or("EDGESPEC_BENCH_PIPELINE_TYPE", "f32"));
    const int layers = std::atoi(env_or("EDGESPEC_BENCH_PIPELINE_LAYERS", "0").c_str());
    const std::string path = bench::synthetic_model(shape, type, layers, 1024);
    ThreadPool pool(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    Synth r;
    r.key = fs::path(path).filename().string();
    r.target = std::make_shared<const LlamaWeights>(load_weights(path));
    r.draft_q4 = std::make_shared<const LlamaWeights>(requantize(r.target, DType::Q4_0, &pool));
    return r;
  }();
  return s;
}

const std::vector<std::int32_t>& synth_prompt() {
  static const std::vector<std::int32_t> ids = {1, 450, 4996, 17354, 1701, 432, 17204, 975};
  return ids;
}

// ---- target-only decoding, the denominator of every speedup ----

// Transformer<Arch> + generate() over a target, with its own pool: built and warmed up once per (target, Arch,
// threads, context) and shared by every case over that target.
template <class Arch>
struct TargetOnly {
  ThreadPool pool;
  Transformer<Arch> model;
  TargetOnly(WeightsPtr w, int threads, int max_seq) : pool(threads), model(std::move(w), pool, max_seq) {}
  GenerationResult run(std::span<const std::int32_t> prompt, int n_tokens, const SamplingParams& sp) {
    Sampler sampler(sp);
    GenerationOptions go;
    go.n_tokens = n_tokens;
    return generate(model, prompt, sampler, go);
  }
};
template <class Arch>
TargetOnly<Arch>& target_only(const std::string& key, const WeightsPtr& w, int threads, int max_seq) {
  static std::map<std::string, std::unique_ptr<TargetOnly<Arch>>> cache;
  const std::string id = key + "|" + std::to_string(threads) + "t|ctx" + std::to_string(max_seq);
  auto& slot = cache[id];
  if (!slot) slot = std::make_unique<TargetOnly<Arch>>(w, threads, max_seq);
  return *slot;
}

// ---- one case ----

struct Case {
  std::string key;                  // the target's identity, for the baseline cache
  WeightsPtr target, draft;         // draft == target for self-speculative pipelines
  std::vector<std::int32_t> prompt;
  int n_tokens = kTokens;
  int threads = 1;
  PipelineOptions opt;
  bool cost_only = false;           // random weights: report per-round costs instead of a speedup
  std::string label;
  std::function<void(Case&)> prepare;  // loads or makes the models when the case runs (not when filtered out)
};

// Each iteration runs the pipeline, then target-only generate() over the same target, prompt, token count and
// sampling (its time is not the iteration's). Interleaving the two makes both see the same load on a shared
// machine, so their ratio holds even when other processes take a varying share of the cores.
template <class P>
void BM_pipeline(benchmark::State& state, Case c) {
  if (c.prepare) c.prepare(c);
  ThreadPool pool(c.threads);
  P pipeline(c.target, c.draft, pool, c.opt);
  auto& base = target_only<typename P::target_arch>(c.key, c.target, c.threads, c.opt.max_seq);
  const bool greedy = c.opt.sampling.greedy();
  SamplingParams sp = c.opt.sampling;
  auto reseed = [&](std::uint64_t i) {  // stochastic cases: a new random stream per iteration, same for both
    sp.seed = c.opt.sampling.seed + i;
    if constexpr (requires { pipeline.set_seed(sp.seed); }) pipeline.set_seed(sp.seed);
  };
  {  // warm-up, and the exactness check of greedy pipelines
    const SpeculativeResult warm = pipeline.generate(c.prompt, c.n_tokens);
    if (greedy && warm.tokens != base.run(c.prompt, c.n_tokens, sp).tokens) {
      state.SkipWithError("greedy speculative output differs from target-only greedy decoding");
      return;
    }
  }
  SpeculativeStats sum;
  double base_seconds = 0.0;
  long base_tokens = 0;
  std::uint64_t iteration = 0;
  for (auto _ : state) {
    if (!greedy) reseed(++iteration);
    const SpeculativeResult r = pipeline.generate(c.prompt, c.n_tokens);
    const SpeculativeStats& s = r.stats;
    state.SetIterationTime(s.gen.decode_seconds);
    sum.rounds += s.rounds;
    sum.drafted += s.drafted;
    sum.accepted += s.accepted;
    sum.rejections += s.rejections;
    sum.gen.generated_tokens += s.gen.generated_tokens;
    sum.gen.decode_seconds += s.gen.decode_seconds;
    sum.draft_seconds += s.draft_seconds;
    sum.verify_seconds += s.verify_seconds;
    const GenerationResult b = base.run(c.prompt, c.n_tokens, sp);
    base_seconds += b.stats.decode_seconds;
    base_tokens += b.stats.generated_tokens;
  }
  const double tok_s = sum.gen.decode_tokens_per_second();
  const double base_tok_s = static_cast<double>(base_tokens) / base_seconds;
  state.counters["tok/s"] = tok_s;
  state.counters["target_tok/s"] = base_tok_s;
  state.counters["alpha"] = sum.acceptance_rate();
  state.counters["alpha_trial"] = sum.acceptance_per_trial();
  state.counters["tokens_per_round"] = sum.tokens_per_round();
  state.counters["gamma"] = sum.rounds > 0 ? double(sum.drafted) / sum.rounds : 0.0;
  // c: one draft token over one target-only token; v: one verification forward (gamma + 1 positions) over one
  // target-only token. A round yields (1 - a^(g+1)) / (1 - a) tokens for g c + v target-token times.
  const double target_ms = 1e3 / base_tok_s;
  state.counters["c"] = 1e3 * sum.draft_seconds / sum.drafted / target_ms;
  state.counters["v"] = 1e3 * sum.verify_seconds / sum.rounds / target_ms;
  if (c.cost_only) {
    state.counters["draft_ms/round"] = 1e3 * sum.draft_seconds / sum.rounds;
    state.counters["verify_ms/round"] = 1e3 * sum.verify_seconds / sum.rounds;
    state.counters["target_ms/token"] = target_ms;
  } else {
    state.counters["speedup"] = tok_s / base_tok_s;
  }
  state.SetLabel(c.label + ", " + std::to_string(c.threads) + " thread(s)" + (c.cost_only ? ", COST ONLY" : ""));
}

template <class P>
void add(const std::string& name, Case c, int iterations = 0) {
  auto* b = benchmark::RegisterBenchmark(name.c_str(), [c](benchmark::State& s) { BM_pipeline<P>(s, c); });
  b->UseManualTime()->Unit(benchmark::kMillisecond);
  if (iterations > 0) b->Iterations(iterations);
  else b->MinTime(1.0);
}

Case pair_case(const std::string& label) {
  Case c;
  c.key = kTarget;
  c.opt.max_seq = kMaxSeq;
  c.label = label;
  c.prepare = [](Case& c) {
    c.target = reference(kTarget);
    c.draft = reference(kDraft);
    c.prompt = story_prompt();
  };
  return c;
}

// Runs `then` after `c`'s own preparation.
void then_prepare(Case& c, std::function<void(Case&)> then) {
  c.prepare = [first = c.prepare, then = std::move(then)](Case& c) {
    if (first) first(c);
    then(c);
  };
}

void register_all() {
  // ---- the reference pair: llama2xs drafts for stories260K, greedy ----
  add<Pipeline<Draft<>, Target<>, DraftLen<2>>>("pair/DraftLen<2>", pair_case("llama2xs -> stories260K, greedy"));
  add<Pipeline<Draft<>, Target<>, DraftLen<4>>>("pair/DraftLen<4>", pair_case("llama2xs -> stories260K, greedy"));
  add<Pipeline<Draft<>, Target<>, DraftLen<8>>>("pair/DraftLen<8>", pair_case("llama2xs -> stories260K, greedy"));
  add<Pipeline<Draft<>, Target<>, AdaptiveDraftLen<1, 8>>>("pair/AdaptiveDraftLen<1,8>",
                                                           pair_case("llama2xs -> stories260K, greedy"));
  add<Pipeline<Draft<>, Target<>, DraftLen<8>, EarlyStop<30>>>("pair/DraftLen<8>,EarlyStop<30>",
                                                               pair_case("llama2xs -> stories260K, greedy"));
  // Fixed target dimensions (kernels specialized for dim 64, ffn 172); the baseline is Transformer<Stories260K>.
  add<Pipeline<Draft<AnyLlama>, Target<Stories260K>, DraftLen<4>>>(
      "pair/fixed/Draft<AnyLlama>,Target<Stories260K>,DraftLen<4>", pair_case("llama2xs -> stories260K, greedy"));

  // ---- self-speculative: stories260K with layers 1 and 3 skipped drafts for itself ----
  {
    Case c = pair_case("stories260K skipping layers 1,3 -> stories260K, greedy");
    then_prepare(c, [](Case& c) { c.draft = c.target; });
    add<Pipeline<Draft<SkipLayers<1, 3>>, Target<Stories260K>, DraftLen<4>>>("self/SkipLayers<1,3>,DraftLen<4>", c);
  }
  // ---- quantized drafter: a Q8_0 copy of the target (w2, width 172, falls back to F16) ----
  {
    Case c = pair_case("Q8_0 copy -> F32 stories260K, greedy");
    then_prepare(c, [](Case& c) { c.draft = requantized(kTarget, c.target, DType::Q8_0); });
    add<Pipeline<Draft<Stories260K>, Target<Stories260K>, DraftLen<4>>>("q8_0-copy/DraftLen<4>", c);
  }
  // ---- stochastic: temperature 0.8, verification by rejection sampling ----
  {
    Case c = pair_case("llama2xs -> stories260K, temperature 0.8");
    c.opt.sampling.temperature = 0.8f;
    c.opt.sampling.seed = 42;
    add<Pipeline<Draft<>, Target<>, DraftLen<4>>>("pair/T=0.8/DraftLen<4>", c);
  }

  // ---- SmolLM2-135M-Instruct, F16 target, 2 threads, greedy, 128 tokens ----
  auto smollm2_case = [](std::string label, std::function<void(Case&)> draft) {
    Case c;
    c.key = "smollm2-f16";
    c.n_tokens = 128;
    c.threads = 2;
    c.opt.max_seq = 256;
    c.label = "SmolLM2-135M-Instruct F16, drafter " + label;
    c.prepare = [draft = std::move(draft)](Case& c) {
      c.target = smollm2_f16();
      c.prompt = smollm2_prompt();
      draft(c);
    };
    return c;
  };
  for (const DType t : {DType::Q8_0, DType::Q6_K, DType::Q4_K, DType::Q4_0}) {
    std::string lower(name(t));
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    auto copy = [t](Case& c) { c.draft = requantized("smollm2-f16", c.target, t); };
    add<Pipeline<Draft<>, Target<>, DraftLen<3>>>("smollm2/" + lower + "-copy/DraftLen<3>",
                                                  smollm2_case(lower + " copy", copy), 4);
    if (t != DType::Q4_K) {
      add<Pipeline<Draft<>, Target<>, DraftLen<2>>>("smollm2/" + lower + "-copy/DraftLen<2>",
                                                    smollm2_case(lower + " copy", copy), 4);
      add<Pipeline<Draft<>, Target<>, DraftLen<4>>>("smollm2/" + lower + "-copy/DraftLen<4>",
                                                    smollm2_case(lower + " copy", copy), 4);
    }
  }
  // Self-speculative skip sets (the target itself, some of its 30 layers skipped).
  const std::vector<std::pair<std::string, std::vector<int>>> skips = {
      {"odd layers", {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29}},
      {"layers 20-27", {20, 21, 22, 23, 24, 25, 26, 27}},
      {"every third layer", {2, 5, 8, 11, 14, 17, 20, 23, 26}},
      {"layer 28", {28}},
  };
  for (const auto& [what, layers] : skips) {
    auto self = [layers](Case& c) {
      c.draft = c.target;
      c.opt.skip_layers = layers;
    };
    add<Pipeline<Draft<SkipLayers<>>, Target<>, DraftLen<3>>>("smollm2/skip " + what + "/DraftLen<3>",
                                                              smollm2_case("self, skipping " + what, self), 4);
  }

  // ---- compute-realistic shapes with random weights: COST ONLY ----
  // The models are made, and the labels name them, when a case first runs.
  auto synth_case = [](std::function<void(Case&)> then) {
    Case c;
    c.n_tokens = 24;
    c.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    c.opt.max_seq = 256;
    c.cost_only = true;
    c.prompt = synth_prompt();
    c.prepare = [then = std::move(then)](Case& c) {
      const Synth& s = synth();
      c.key = s.key;
      c.target = s.target;
      then(c);
    };
    return c;
  };
  auto q4_copy = [](Case& c) {
    c.draft = synth().draft_q4;
    c.label = c.key + ": Q4_0 copy -> " + std::string(name(c.target->config.weight_type)) + ", greedy";
  };
  add<Pipeline<Draft<>, Target<>, DraftLen<4>>>("synth/q4_0-copy/DraftLen<4>", synth_case(q4_copy), 3);
  // Self-speculative: every other layer skipped, the skip set given at run time.
  auto skip_odd = [](Case& c) {
    c.draft = c.target;
    for (int l = 1; l < c.target->config.n_layers; l += 2) c.opt.skip_layers.push_back(l);
    c.label = c.key + ": skipping odd layers -> itself, greedy";
  };
  add<Pipeline<Draft<SkipLayers<>>, Target<>, DraftLen<4>>>("synth/self/SkipLayers<>(odd),DraftLen<4>",
                                                            synth_case(skip_odd), 2);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  try {
    register_all();
  } catch (const std::exception& e) {
    std::cerr << "bench_pipeline: " << e.what() << "\n";
    return 1;
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
