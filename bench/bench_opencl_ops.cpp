// Each op of the forward pass on the OpenCL device against the CPU backend's, in one run, at SmolLM2-135M's
// shapes (dim 576, 9 query / 3 KV heads of 64, ffn 1536, vocab 49152; its weights requantized in memory):
//
//   BM_op_matmul/<type>/<matrix>/n   y (n, rows) = x (n, cols) W^T for ffn_up (1536 x 576) and the classifier
//                                    (49152 x 576), F32 / F16 / Q8_0 / Q4_0, n = 1, 4, 8, 16
//   BM_op_attention/<context>/n      one layer's grouped-query attention of n queries over an f16 KV cache
//                                    holding `context` positions
//   BM_op_rmsnorm/n, BM_op_rope/n, BM_op_swiglu/n   the element-wise ops over n positions
//
//   counters: gpu_ms, cpu_ms per op (the device's to queue.finish(), the CPU backend's kernels on
//             EDGESPEC_BENCH_THREADS threads, default 1), gpu_vs_cpu = cpu_ms / gpu_ms, interleaved
//
// The emulated SoC (docs/opencl.md): POCL_MAX_PTHREAD_COUNT=1 EDGESPEC_BENCH_THREADS=1, one core each. Where the
// forward's time goes on a device: compare gpu_ms here with bench_opencl's whole forwards.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <map>
#include <random>

#include <edgespec/edgespec.hpp>
#include <edgespec/opencl/transformer.hpp>

#include "bench_common.hpp"

namespace {

using namespace edgespec;
using clock_type = std::chrono::steady_clock;

using bench::smollm2;

int bench_threads() { return std::stoi(bench::env_or("EDGESPEC_BENCH_THREADS", "1")); }

std::vector<float> random_floats(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// One op on both sides per iteration: gpu() enqueues (timed to queue.finish()), cpu() runs the CPU kernels.
template <class Gpu, class Cpu>
void run_interleaved(benchmark::State& state, opencl::Device& dev, Gpu&& gpu, Cpu&& cpu) {
  gpu();
  dev.queue().finish();  // warm up: first launches
  cpu();
  double g = 0.0, c = 0.0;
  for (auto _ : state) {
    auto t0 = clock_type::now();
    gpu();
    dev.queue().finish();
    g += std::chrono::duration<double>(clock_type::now() - t0).count();
    t0 = clock_type::now();
    cpu();
    c += std::chrono::duration<double>(clock_type::now() - t0).count();
  }
  const auto it = static_cast<double>(state.iterations());
  state.counters["gpu_ms"] = g / it * 1e3;
  state.counters["cpu_ms"] = c / it * 1e3;
  state.counters["gpu_vs_cpu"] = c / g;
  state.SetLabel(dev.info().name + ", CPU " + std::to_string(bench_threads()) + " thread(s)");
}

cl::Buffer device_buffer(opencl::Device& dev, const std::vector<float>& host) {
  cl::Buffer b(dev.context(), CL_MEM_READ_WRITE, host.size() * sizeof(float));
  dev.queue().enqueueWriteBuffer(b, CL_TRUE, 0, host.size() * sizeof(float), host.data());
  return b;
}
cl::Buffer device_ints(opencl::Device& dev, const std::vector<std::int32_t>& host) {
  cl::Buffer b(dev.context(), CL_MEM_READ_WRITE, host.size() * sizeof(std::int32_t));
  dev.queue().enqueueWriteBuffer(b, CL_TRUE, 0, host.size() * sizeof(std::int32_t), host.data());
  return b;
}

void BM_op_matmul(benchmark::State& state, DType type, bool classifier) {
  const int n = static_cast<int>(state.range(0));
  auto w = smollm2(type);
  const MatrixView& m = classifier ? w->output : w->layers[0].w3;
  auto dev = opencl::default_device();
  opencl::Ops<> ops(dev, w->config);
  const opencl::DeviceMatrix dm = opencl::to_device(m, "bench matrix", [&](const void* p, std::size_t bytes) {
    cl::Buffer b(dev->context(), CL_MEM_READ_WRITE, bytes);
    dev->queue().enqueueWriteBuffer(b, CL_TRUE, 0, bytes, p);
    return b;
  });
  const std::vector<float> x = random_floats(static_cast<std::size_t>(n * m.cols), 1);
  std::vector<float> y(static_cast<std::size_t>(n * m.rows));
  const cl::Buffer dx = device_buffer(*dev, x), dy = device_buffer(*dev, y);
  ThreadPool pool(bench_threads());
  run_interleaved(
      state, *dev, [&] { ops.matmul(dm, dx, dy, n); }, [&] { matmul(pool, m, x.data(), n, y.data()); });
}

void BM_op_attention(benchmark::State& state) {
  const int context = static_cast<int>(state.range(0)), n = static_cast<int>(state.range(1));
  auto w = smollm2(DType::F16);
  const ModelConfig& c = w->config;
  const int hd = c.head_dim(), kv = c.kv_dim(), group = c.n_heads / c.n_kv_heads, max_seq = context + n;
  auto dev = opencl::default_device();
  opencl::Ops<> ops(dev, c);
  // the cache (one layer, max_seq, kv) in f16, q (n, dim) at positions context .. context + n - 1
  const std::vector<float> kf = random_floats(static_cast<std::size_t>(max_seq * kv), 2),
                           vf = random_floats(static_cast<std::size_t>(max_seq * kv), 3),
                           q = random_floats(static_cast<std::size_t>(n * c.dim), 4);
  std::vector<std::uint16_t> kh(kf.size()), vh(vf.size());
  for (std::size_t i = 0; i < kf.size(); ++i) {
    kh[i] = fp32_to_fp16(kf[i]);
    vh[i] = fp32_to_fp16(vf[i]);
  }
  std::vector<std::int32_t> pos(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) pos[static_cast<std::size_t>(i)] = context + i;
  cl::Buffer kc(dev->context(), CL_MEM_READ_WRITE, kh.size() * 2), vc(dev->context(), CL_MEM_READ_WRITE, vh.size() * 2);
  dev->queue().enqueueWriteBuffer(kc, CL_TRUE, 0, kh.size() * 2, kh.data());
  dev->queue().enqueueWriteBuffer(vc, CL_TRUE, 0, vh.size() * 2, vh.data());
  const cl::Buffer dq = device_buffer(*dev, q), dpos = device_ints(*dev, pos),
                   dout = device_buffer(*dev, std::vector<float>(static_cast<std::size_t>(n * c.dim))),
                   scores = device_buffer(*dev, std::vector<float>(static_cast<std::size_t>(n * c.n_heads * max_seq)));
  std::vector<float> out(static_cast<std::size_t>(n * c.dim)), s(static_cast<std::size_t>(group * max_seq)),
      buf(static_cast<std::size_t>(16 * hd));
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  auto cpu = [&] {  // as Transformer's attention: per position and KV head, its group of query heads
    for (int i = 0; i < n; ++i) {
      const int len = context + i + 1;
      for (int h = 0; h < c.n_kv_heads; ++h) {
        const float* qi = q.data() + static_cast<std::size_t>(i * c.dim + h * group * hd);
        key_scores(qi, group, kh.data() + h * hd, kv, len, hd, scale, s.data(), max_seq, buf.data());
        for (int g = 0; g < group; ++g) softmax_inplace(s.data() + static_cast<std::size_t>(g * max_seq), len);
        weighted_values(s.data(), max_seq, group, vh.data() + h * hd, kv, len, hd,
                        out.data() + static_cast<std::size_t>(i * c.dim + h * group * hd), buf.data());
      }
    }
  };
  run_interleaved(
      state, *dev, [&] { ops.attention(dq, kc, vc, dout, scores, dpos, 0, max_seq, n); }, cpu);
}

// rmsnorm (n, dim), rope over q (n, 9 heads), swiglu over (n, ffn)
void BM_op_rmsnorm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const ModelConfig& c = smollm2(DType::F16)->config;
  auto dev = opencl::default_device();
  opencl::Ops<> ops(dev, c);
  const std::vector<float> x = random_floats(static_cast<std::size_t>(n * c.dim), 5), wn = random_floats(c.dim, 6);
  std::vector<float> out(x.size());
  const cl::Buffer dx = device_buffer(*dev, x), dw = device_buffer(*dev, wn), dout = device_buffer(*dev, out);
  run_interleaved(
      state, *dev, [&] { ops.rmsnorm(dx, dw, dout, n); },
      [&] {
        for (int i = 0; i < n; ++i)
          rmsnorm(out.data() + i * c.dim, x.data() + i * c.dim, wn.data(), c.dim, c.norm_eps);
      });
}

void BM_op_rope(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const ModelConfig& c = smollm2(DType::F16)->config;
  auto dev = opencl::default_device();
  opencl::Ops<> ops(dev, c);
  std::vector<float> x = random_floats(static_cast<std::size_t>(n * c.dim), 7);
  const std::vector<float> inv = c.rope_inv_freq();
  std::vector<std::int32_t> pos(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) pos[static_cast<std::size_t>(i)] = 100 + i;
  const cl::Buffer dx = device_buffer(*dev, x), dinv = device_buffer(*dev, inv), dpos = device_ints(*dev, pos);
  run_interleaved(
      state, *dev, [&] { ops.rope(dx, dpos, dinv, c.n_heads, n); },
      [&] {
        for (int i = 0; i < n; ++i)
          rope_inplace(x.data() + i * c.dim, c.n_heads, c.head_dim(), 100 + i, inv.data(), c.rope_style);
      });
}

void BM_op_swiglu(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  const ModelConfig& c = smollm2(DType::F16)->config;
  auto dev = opencl::default_device();
  opencl::Ops<> ops(dev, c);
  const std::size_t count = static_cast<std::size_t>(n) * static_cast<std::size_t>(c.ffn_dim);
  std::vector<float> a = random_floats(count, 8);
  const std::vector<float> b = random_floats(count, 9);
  const cl::Buffer da = device_buffer(*dev, a), db = device_buffer(*dev, b);
  run_interleaved(
      state, *dev, [&] { ops.swiglu(da, db, count); },
      [&] { swiglu(a.data(), b.data(), static_cast<std::int64_t>(count)); });
}

}  // namespace

BENCHMARK_CAPTURE(BM_op_matmul, f32/ffn_up, DType::F32, false)->Arg(1)->Arg(4)->Arg(8)->Arg(16)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_op_matmul, f16/ffn_up, DType::F16, false)->Arg(1)->Arg(4)->Arg(8)->Arg(16)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_op_matmul, q8_0/ffn_up, DType::Q8_0, false)->Arg(1)->Arg(4)->Arg(8)->Arg(16)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_op_matmul, q4_0/ffn_up, DType::Q4_0, false)->Arg(1)->Arg(4)->Arg(8)->Arg(16)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_op_matmul, f16/output, DType::F16, true)->Arg(1)->Arg(4)->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_op_matmul, q8_0/output, DType::Q8_0, true)->Arg(1)->Arg(4)->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_op_attention)->ArgsProduct({{128, 512}, {1, 4, 8}})->Unit(benchmark::kMillisecond);
BENCHMARK(BM_op_rmsnorm)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_op_rope)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_op_swiglu)->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
