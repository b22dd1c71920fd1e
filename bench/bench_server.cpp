// The batched verification forward of the SLED server (Transformer::forward_batch): one forward over S
// sessions x (g + 1) positions against S separate forwards of g + 1 positions, measured interleaved in one run.
//
//   counters: ms_batched, ms_separate (per verification round of all S sessions), speedup = separate / batched,
//             positions (S (g + 1))
//
// Model: EDGESPEC_BENCH_MODEL (any GGUF), else SmolLM2-135M-Instruct from the model directory requantized to
// EDGESPEC_BENCH_TYPE (default q8_0) in memory. Each session holds a 64-token context; every round is rolled
// back, so all rounds see the same context length.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <vector>

#include "bench_common.hpp"

namespace {

using namespace edgespec;

std::shared_ptr<const LlamaWeights> bench_model() {
  static std::shared_ptr<const LlamaWeights> w = [] {
    const std::string file = bench::env_or("EDGESPEC_BENCH_MODEL", "");
    if (!file.empty()) return std::make_shared<const LlamaWeights>(load_weights(file));
    ThreadPool pool(2);
    auto src = std::make_shared<const LlamaWeights>(
        load_weights((bench::model_dir() / "gguf/smollm2-135m-instruct-q4_1.gguf").string()));
    return std::make_shared<const LlamaWeights>(
        requantize(src, parse_dtype(bench::env_or("EDGESPEC_BENCH_TYPE", "q8_0")), &pool));
  }();
  return w;
}

void BM_batched_verify(benchmark::State& state) {
  const int sessions = static_cast<int>(state.range(0));
  const int g = static_cast<int>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  ThreadPool pool(threads);
  Transformer<> model(bench_model(), pool, 1);
  const int vocab = model.vocab_size();
  constexpr int kContext = 64;
  std::vector<KvCache> caches;
  std::vector<std::vector<std::int32_t>> rounds;
  for (int s = 0; s < sessions; ++s) {
    caches.push_back(model.make_cache(kContext + 32));
    std::vector<std::int32_t> prompt(kContext);
    for (int i = 0; i < kContext; ++i) prompt[static_cast<std::size_t>(i)] = (1 + 37 * s + 101 * i) % vocab;
    const SequenceInput in{&caches.back(), prompt, 0};
    model.forward_batch(std::span<const SequenceInput>(&in, 1));
    std::vector<std::int32_t> r(static_cast<std::size_t>(g + 1));
    for (int i = 0; i <= g; ++i) r[static_cast<std::size_t>(i)] = (7 + 13 * s + 29 * i) % vocab;
    rounds.push_back(std::move(r));
  }
  std::vector<SequenceInput> batch;
  for (int s = 0; s < sessions; ++s) batch.push_back({&caches[static_cast<std::size_t>(s)], rounds[static_cast<std::size_t>(s)], g + 1});
  using clock = std::chrono::steady_clock;
  double batched = 0.0, separate = 0.0;
  for (auto _ : state) {
    auto t0 = clock::now();
    benchmark::DoNotOptimize(model.forward_batch(batch).data());
    batched += std::chrono::duration<double>(clock::now() - t0).count();
    for (auto& c : caches) c.truncate(kContext);
    t0 = clock::now();
    for (const SequenceInput& in : batch) benchmark::DoNotOptimize(model.forward_batch(std::span<const SequenceInput>(&in, 1)).data());
    separate += std::chrono::duration<double>(clock::now() - t0).count();
    for (auto& c : caches) c.truncate(kContext);
  }
  const auto n = static_cast<double>(state.iterations());
  state.counters["ms_batched"] = batched / n * 1e3;
  state.counters["ms_separate"] = separate / n * 1e3;
  state.counters["speedup"] = separate / batched;
  state.counters["positions"] = sessions * (g + 1);
}

void args(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2})
    for (int g : {0, 3, 7})
      for (int s : {1, 2, 4, 8, 16}) b->Args({s, g, threads});
  b->ArgNames({"sessions", "g", "threads"});
}

}  // namespace

BENCHMARK(BM_batched_verify)->Apply(args)->Iterations(6)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
