// The OnGPU placement against the CPU backend, in one run: decode steps and verification forwards over n
// positions of SmolLM2-135M-Instruct (requantized in memory to each type) on the OpenCL device and on the CPU,
// interleaved.
//
//   counters: gpu_ms, cpu_ms per forward; gpu_vs_cpu = cpu_ms / gpu_ms (the speed of the device relative to
//             the CPU backend; the goal on the emulated SoC: >= 0.5 for Q8_0 and F16 decode)
//
// The emulated SoC (docs/opencl.md): run with POCL_MAX_PTHREAD_COUNT=1 and EDGESPEC_BENCH_THREADS=1, so the
// OpenCL device (PoCL) and the CPU backend each have one core of this 2-core machine.
#include <benchmark/benchmark.h>

#include <chrono>
#include <map>

#include <edgespec/edgespec.hpp>
#include <edgespec/opencl/transformer.hpp>

#include "bench_common.hpp"

namespace {

using namespace edgespec;

using bench::smollm2;

void BM_ongpu(benchmark::State& state, DType type) {
  const int n = static_cast<int>(state.range(0));
  const int threads = std::stoi(bench::env_or("EDGESPEC_BENCH_THREADS", "1"));
  ThreadPool pool(threads);
  auto w = smollm2(type);
  constexpr int kContext = 64;
  Transformer<> cpu(w, pool, kContext + 32);
  opencl::DeviceTransformer<> gpu(w, opencl::default_device(), kContext + 32);
  std::vector<std::int32_t> prompt(kContext), round(static_cast<std::size_t>(n));
  for (int i = 0; i < kContext; ++i) prompt[static_cast<std::size_t>(i)] = (1 + 101 * i) % w->config.vocab_size;
  for (int i = 0; i < n; ++i) round[static_cast<std::size_t>(i)] = (7 + 29 * i) % w->config.vocab_size;
  cpu.forward(prompt);
  gpu.forward(prompt);
  using clock = std::chrono::steady_clock;
  double g = 0.0, c = 0.0;
  for (auto _ : state) {
    auto t0 = clock::now();
    benchmark::DoNotOptimize(gpu.forward(round, Logits::All).data());
    g += std::chrono::duration<double>(clock::now() - t0).count();
    t0 = clock::now();
    benchmark::DoNotOptimize(cpu.forward(round, Logits::All).data());
    c += std::chrono::duration<double>(clock::now() - t0).count();
    gpu.truncate(kContext);
    cpu.truncate(kContext);
  }
  const auto it = static_cast<double>(state.iterations());
  state.counters["gpu_ms"] = g / it * 1e3;
  state.counters["cpu_ms"] = c / it * 1e3;
  state.counters["gpu_vs_cpu"] = c / g;
  state.SetLabel(opencl::default_device()->info().name + ", CPU " + std::to_string(threads) + " thread(s)");
}

// Sequential against Overlapped on the emulated SoC, in one run: SmolLM2 F16 target and its Q8_0 copy drafting
// (draft length 4, greedy, 64 tokens of a translation prompt through the chat template), with draft and
// target on the placements D and T; counters: tokens/s of each schedule and their ratio.
template <class D, class T>
void BM_schedule(benchmark::State& state) {
  const int threads = std::stoi(bench::env_or("EDGESPEC_BENCH_THREADS", "1"));
  ThreadPool pool(threads);
  auto target = smollm2(DType::F16), draft = smollm2(DType::Q8_0);
  const Tokenizer tok(vocab_from_gguf(*load_weights((bench::model_dir() / "gguf/smollm2-135m-instruct-q4_1.gguf").string()).gguf));
  const std::vector<ChatMessage> chat{{"user", "Translate to French: The weather is nice today and we are going to the beach."}};
  const auto prompt = tok.encode(apply_chat_template(ChatTemplate::Chatml, chat, true), true, true);
  PipelineOptions o;
  o.max_seq = 256;
  Pipeline<Draft<D>, Target<T>, DraftLen<4>, Sequential> seq(target, draft, pool, o);
  Pipeline<Draft<D>, Target<T>, DraftLen<4>, Overlapped> ovl(target, draft, pool, o);
  double ts = 0.0, to = 0.0;
  int reused = 0, rounds = 0;
  for (auto _ : state) {
    const SpeculativeResult a = seq.generate(prompt, 64);
    const SpeculativeResult b = ovl.generate(prompt, 64);
    if (a.tokens != b.tokens) state.SkipWithError("the schedules disagree");
    ts += a.stats.gen.decode_seconds;
    to += b.stats.gen.decode_seconds;
    reused += b.stats.overlapped_rounds;
    rounds += b.stats.rounds;
  }
  const auto it = static_cast<double>(state.iterations());
  state.counters["sequential_tok_s"] = 64 * it / ts;
  state.counters["overlapped_tok_s"] = 64 * it / to;
  state.counters["overlapped_vs_sequential"] = ts / to;
  state.counters["rounds_drafted_ahead"] = static_cast<double>(reused) / rounds;
}

}  // namespace

BENCHMARK_TEMPLATE(BM_schedule, OnGPU, OnCPU)->Name("BM_schedule/draft_gpu/target_cpu")->Iterations(3)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_schedule, OnCPU, OnGPU)->Name("BM_schedule/draft_cpu/target_gpu")->Iterations(3)->Unit(benchmark::kMillisecond);

BENCHMARK_CAPTURE(BM_ongpu, q8_0, DType::Q8_0)->Arg(1)->Arg(4)->Arg(8)->Iterations(20)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ongpu, f16, DType::F16)->Arg(1)->Arg(4)->Arg(8)->Iterations(20)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ongpu, q4_0, DType::Q4_0)->Arg(1)->Arg(4)->Iterations(20)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
