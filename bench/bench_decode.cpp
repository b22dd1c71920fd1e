// Decode throughput of synthetic Llama-3.2-1B-shaped models (random weights, real shapes) per weight type and
// thread count, with the effective weight bandwidth next to a read-bandwidth probe measured in the same run,
// and the verification cost curve: time of one forward over n positions / time of a forward over 1.
//
//   bench_decode [--benchmark_filter=...]
//   EDGESPEC_BENCH_DIR     where the synthetic models are written once (default: ./bench-models)
//   EDGESPEC_BENCH_SHAPE   shape name for edgespec-synth (default llama-3.2-1b)
//   EDGESPEC_BENCH_LAYERS  override the layer count (quick runs); 0 = the shape's
//   EDGESPEC_BENCH_MODEL   also measure this GGUF file as it is (BM_decode/file, BM_verify/file)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>

#include <edgespec/edgespec.hpp>
#include <edgespec/io/gguf_export.hpp>

#include "bandwidth.hpp"
#include "bench_common.hpp"

namespace {

using namespace edgespec;

using bench::env_or;

// What a case runs: the synthetic model of one weight type, written on first use and kept in
// EDGESPEC_BENCH_DIR, loaded as load_weights does by default (Q8_0/Q4_0/F16, with AVX-512 VNNI also Q4_K/Q6_K, packed) or, with pack = false, with
// row-major matrices only; or, with `file` set (EDGESPEC_BENCH_MODEL), that GGUF file as it is (all its types).
struct Source {
  DType type = DType::F32;
  bool pack = true;
  std::string file;

  [[nodiscard]] std::string key() const {
    return file.empty() ? std::string(name(type)) + (pack ? "" : " row-major") : file;
  }
  [[nodiscard]] std::string label(const LlamaWeights& w) const {
    if (file.empty()) return key();
    std::vector<DType> types;  // every matrix type in the file, in order of first use
    auto add = [&](DType t) {
      if (std::find(types.begin(), types.end(), t) == types.end()) types.push_back(t);
    };
    for (const LayerWeights& L : w.layers)
      for (const MatrixView* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) add(m->type);
    add(w.output.type);
    std::string label = std::filesystem::path(file).filename().string() + " (";
    for (std::size_t i = 0; i < types.size(); ++i) label += (i > 0 ? "+" : "") + std::string(name(types[i]));
    return label + ")";
  }
};

Source synthetic(DType type, bool pack = true) {
  Source src;
  src.type = type;
  src.pack = pack;
  return src;
}

std::shared_ptr<const LlamaWeights> model_of(const Source& src) {
  static std::map<std::string, std::shared_ptr<const LlamaWeights>> cache;
  if (auto it = cache.find(src.key()); it != cache.end()) return it->second;
  cache.clear();  // one model in memory at a time
  std::string path = src.file;
  if (path.empty()) {
    const std::string shape = env_or("EDGESPEC_BENCH_SHAPE", "llama-3.2-1b");
    const int layers = std::atoi(env_or("EDGESPEC_BENCH_LAYERS", "0").c_str());
    path = bench::synthetic_model(shape, src.type, layers, 4096);
  }
  auto w = std::make_shared<const LlamaWeights>(load_weights(path, {.pack = src.pack}));
  cache[src.key()] = w;
  return w;
}

constexpr int kCtx = 1024;
constexpr int kRoundTokens = 8;  // decode steps per round; each round is followed by one probe pass

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Decode steps (a forward over one position each, as generation after the prompt), in rounds of
// kRoundTokens timed as one benchmark iteration; after each round one read-probe pass over 1 GiB, untimed.
// weights_GB/s = bytes of weights per token x tok/s; ratio = median over rounds of weights_GB/s / probe_GB/s,
// each round against the probe pass next to it, so drifting load on the machine hits both alike.
void BM_decode(benchmark::State& state, const Source& src) {
  const int threads = static_cast<int>(state.range(0));
  auto w = model_of(src);
  ThreadPool pool(threads);
  bench::ReadProbe probe(pool, std::size_t{1} << 30);
  Transformer<> model(w, pool, kCtx);
  const std::vector<std::int32_t> prompt = {1, 100, 200, 300, 400, 500, 600, 700};
  model.forward(prompt);
  std::int32_t tok = 42;
  const double bytes = static_cast<double>(w->bytes_per_token());
  std::vector<double> tok_s, gbs, probe_gbs, ratio;
  for (auto _ : state) {
    if (model.position() + kRoundTokens > 256) model.truncate(static_cast<int>(prompt.size()));
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kRoundTokens; ++i) {
      const auto logits = model.forward(std::span<const std::int32_t>(&tok, 1));
      tok = greedy_token(logits);
      benchmark::DoNotOptimize(tok);
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    tok_s.push_back(kRoundTokens / s);
    gbs.push_back(bytes * tok_s.back() / 1e9);
    probe_gbs.push_back(probe.bytes_per_second() / 1e9);
    ratio.push_back(gbs.back() / probe_gbs.back());
  }
  state.counters["tok/s"] = median(tok_s);
  state.counters["weights_GB/s"] = median(gbs);
  state.counters["probe_GB/s"] = median(probe_gbs);
  state.counters["ratio"] = median(ratio);
  state.counters["weights_MB"] = bytes / 1e6;
  state.SetLabel(src.label(*w) + ", " + std::to_string(threads) + " thread(s)");
}

// Verification cost: one forward over n positions (all logits), divided by a forward over one position.
void BM_verify(benchmark::State& state, const Source& src) {
  const int n = static_cast<int>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  auto w = model_of(src);
  ThreadPool pool(threads);
  Transformer<> model(w, pool, kCtx);
  std::vector<std::int32_t> prompt(64);
  for (std::size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<std::int32_t>(1 + 37 * i % 1000);
  model.forward(prompt);
  std::vector<std::int32_t> draft(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) draft[static_cast<std::size_t>(i)] = 7 + 13 * i;
  auto time_forward = [&](std::span<const std::int32_t> toks) {
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(model.forward(toks, Logits::All).data());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    model.truncate(64);
    return s;
  };
  // Baseline in the same process and state, interleaved with the case: each iteration times a forward over one
  // position and then the forward over n; best of each, so drifting load on the machine hits both alike.
  double t1 = time_forward(std::span<const std::int32_t>(draft.data(), 1));  // (warm-up, also a sample)
  double best = 1e30;
  for (auto _ : state) {
    t1 = std::min(t1, time_forward(std::span<const std::int32_t>(draft.data(), 1)));
    const double s = time_forward(draft);
    best = std::min(best, s);
    state.SetIterationTime(s);
  }
  state.counters["cost_vs_n1"] = best / t1;
  state.counters["ms_per_forward"] = best * 1e3;
  state.SetLabel(src.label(*w) + ", n=" + std::to_string(n) + ", " + std::to_string(threads) + " thread(s)");
}

// 1 and 2 threads, 12 rounds each
void decode_args(benchmark::internal::Benchmark* b) {
  b->Arg(1)->Arg(2)->UseManualTime()->Iterations(12)->Unit(benchmark::kMillisecond);
}

// BM_verify's timing: the manual (steady_clock) time of each forward over n, 7 of them per (n, threads)
void verify_timing(benchmark::internal::Benchmark* b) {
  b->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(7);
}

// The verification curve of a type: n = 1, 2, 4, 8 at 1 and 2 threads
void verify_curve(benchmark::internal::Benchmark* b) {
  b->ArgsProduct({{1, 2, 4, 8}, {1, 2}})->Apply(verify_timing);
}

}  // namespace

BENCHMARK_CAPTURE(BM_decode, f32, synthetic(DType::F32))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, f16, synthetic(DType::F16))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, q8_0, synthetic(DType::Q8_0))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, q4_0, synthetic(DType::Q4_0))->Apply(decode_args);
// The types of downloaded GGUF files (llama.cpp's presets and their fallbacks), row-major with their own kernels.
BENCHMARK_CAPTURE(BM_decode, q4_1, synthetic(DType::Q4_1))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, q5_0, synthetic(DType::Q5_0))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, q5_1, synthetic(DType::Q5_1))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, iq4_nl, synthetic(DType::IQ4_NL))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, q2_k, synthetic(DType::Q2_K))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, q3_k, synthetic(DType::Q3_K))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, q4_k, synthetic(DType::Q4_K))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, q5_k, synthetic(DType::Q5_K))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, q6_k, synthetic(DType::Q6_K))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, q8_0_row_major, synthetic(DType::Q8_0, false))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_decode, f16_row_major, synthetic(DType::F16, false))->Apply(decode_args);
BENCHMARK_CAPTURE(BM_verify, q8_0, synthetic(DType::Q8_0))
    ->ArgsProduct({{1, 2, 3, 4, 5, 6, 8, 12, 16}, {1, 2}})
    ->Apply(verify_timing);
// The other types users run as targets: F16, Q4_0, and the K-quants of llama.cpp's Q4_K_M files.
BENCHMARK_CAPTURE(BM_verify, f16, synthetic(DType::F16))->Apply(verify_curve);
BENCHMARK_CAPTURE(BM_verify, q4_0, synthetic(DType::Q4_0))
    ->ArgsProduct({{1, 2, 4, 8, 16}, {1, 2}})
    ->Apply(verify_timing);
BENCHMARK_CAPTURE(BM_verify, q4_k, synthetic(DType::Q4_K))->Apply(verify_curve);
BENCHMARK_CAPTURE(BM_verify, q6_k, synthetic(DType::Q6_K))->Apply(verify_curve);

// EDGESPEC_BENCH_MODEL=FILE adds BM_decode/file and BM_verify/file: any GGUF (SmolLM2, a user's download)
// measured the same way, with its weight types as they are.
int main(int argc, char** argv) {
  if (const char* file = std::getenv("EDGESPEC_BENCH_MODEL"); file != nullptr && *file != '\0') {
    Source src;
    src.file = file;
    benchmark::RegisterBenchmark("BM_decode/file", BM_decode, src)->Apply(decode_args);
    benchmark::RegisterBenchmark("BM_verify/file", BM_verify, src)
        ->ArgsProduct({{1, 2, 3, 4, 5, 6, 8}, {1, 2}})
        ->Apply(verify_timing);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
