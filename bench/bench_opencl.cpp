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

#include <edgespec/opencl/transformer.hpp>

#include "bench_common.hpp"

namespace {

using namespace edgespec;

std::shared_ptr<const LlamaWeights> smollm2(DType type) {
  static std::map<int, std::shared_ptr<const LlamaWeights>> cache;
  auto& w = cache[static_cast<int>(type)];
  if (!w) {
    ThreadPool pool(2);
    auto src = std::make_shared<const LlamaWeights>(
        load_weights((bench::model_dir() / "gguf/smollm2-135m-instruct-q4_1.gguf").string()));
    w = std::make_shared<const LlamaWeights>(requantize(src, type, &pool));
  }
  return w;
}

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

}  // namespace

BENCHMARK_CAPTURE(BM_ongpu, q8_0, DType::Q8_0)->Arg(1)->Arg(4)->Arg(8)->Iterations(20)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ongpu, f16, DType::F16)->Arg(1)->Arg(4)->Arg(8)->Iterations(20)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ongpu, q4_0, DType::Q4_0)->Arg(1)->Arg(4)->Iterations(20)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
