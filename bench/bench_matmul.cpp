// matmul at decode (n = 1) against the read-bandwidth probe, and the cost of a batch of n positions.
//
//   bench_matmul --benchmark_filter=decode     GB/s of weights per type, layout and thread count, and
//                                              ratio = median over rounds of GB/s / probe GB/s, each round
//                                              one probe pass and one sweep over the copies, back to back
//   bench_matmul --benchmark_filter=batch      time per call and per position for n in {1,2,3,4,5,8,16}, and
//                                              cost_vs_n1 = time(n) / time(n = 1) (weights read once: -> 1)
//
// The 2048 x 8192 matrix is replicated to >= 512 MiB and the copies are used in turn, so every call reads
// its weights from DRAM as a decode step does (a single copy would sit in the 32 MiB L3); "hot" cases use
// one copy. Q8_0/Q4_0/F16 run row-major ("rows") and packed (kernels/packed.hpp, as load_weights gives them).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "bandwidth.hpp"
#include "edgespec/kernels/matmul.hpp"

using namespace edgespec;

namespace {

constexpr std::int64_t kRows = 2048, kCols = 8192;
constexpr std::size_t kProbeBytes = std::size_t{512} << 20;
const DType kTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_1, DType::Q5_0,
                        DType::Q5_1};

ThreadPool& pool_for(int threads) {
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<ThreadPool>(threads);
  return *p;
}

// Copies of one random kRows x kCols matrix of type t, each 64-byte aligned, with their packed copies when
// `packed` (then matmul reads only those).
struct MatrixSet {
  DType type;
  bool packed;
  std::size_t bytes;  // of one copy
  std::vector<std::unique_ptr<unsigned char, decltype(&std::free)>> copies;
  std::vector<std::shared_ptr<std::byte>> packed_copies;

  [[nodiscard]] MatrixView view(std::size_t c) const {
    return {type, kRows, kCols, copies[c].get(), packed ? packed_copies[c].get() : nullptr};
  }
};

const MatrixSet& matrices(DType t, bool cold, bool packed = false) {
  static std::unique_ptr<MatrixSet> cached;  // one type and layout at a time: up to 2 x 512 MiB
  const std::size_t rb = static_cast<std::size_t>(row_bytes(t, kCols));
  const std::size_t bytes = rb * kRows;
  const std::size_t want = cold ? (kProbeBytes + bytes - 1) / bytes : 1;
  if (cached && cached->type == t && cached->packed == packed && cached->copies.size() >= want) return *cached;
  cached.reset();
  cached = std::make_unique<MatrixSet>(MatrixSet{t, packed, bytes, {}, {}});
  std::mt19937 rng(1);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> row(kCols);
  auto* first = static_cast<unsigned char*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
  for (std::int64_t r = 0; r < kRows; ++r) {
    for (auto& v : row) v = dist(rng);
    unsigned char* dst = first + static_cast<std::size_t>(r) * rb;
    quantize_row(t, row.data(), dst, kCols);
  }
  cached->copies.emplace_back(first, &std::free);
  for (std::size_t c = 1; c < want; ++c) {
    auto* p = static_cast<unsigned char*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
    std::memcpy(p, first, bytes);
    cached->copies.emplace_back(p, &std::free);
  }
  if (packed)
    for (const auto& copy : cached->copies) {
      cached->packed_copies.push_back(allocate_aligned(static_cast<std::size_t>(packed_bytes(t, kRows, kCols))));
      pack_rows(t, copy.get(), kRows, kCols, cached->packed_copies.back().get());
    }
  return *cached;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// args: type, threads, dram, packed. Each iteration is one round: a probe pass over kProbeBytes, then one
// sweep of matmul calls over the copies (dram) or 64 calls on one copy (hot), timed separately.
void BM_decode(benchmark::State& state) {
  const auto t = static_cast<DType>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  const bool cold = state.range(2) != 0;
  const bool packed = state.range(3) != 0;
  const MatrixSet& m = matrices(t, cold, packed);
  ThreadPool& pool = pool_for(threads);
  bench::ReadProbe probe(pool, kProbeBytes);
  std::vector<float> x(kCols, 0.5f), y(kRows);
  const std::size_t calls = cold ? m.copies.size() : 64;
  std::vector<double> gbs, ratio, probe_gbs;
  for (auto _ : state) {
    const double p = probe.bytes_per_second() / 1e9;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t c = 0; c < calls; ++c) {
      matmul(pool, m.view(cold ? c : 0), x.data(), 1, y.data());
      benchmark::DoNotOptimize(y.data());
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(s);
    gbs.push_back(static_cast<double>(m.bytes * calls) / s / 1e9);
    probe_gbs.push_back(p);
    ratio.push_back(gbs.back() / p);
  }
  state.counters["GB/s"] = median(gbs);
  state.counters["probe_GB/s"] = median(probe_gbs);
  state.counters["ratio"] = median(ratio);
  state.SetLabel(std::string(name(t)) + (packed ? " packed" : packable(t) ? " rows" : "") + (cold ? " dram" : " hot"));
}

// Seconds per call of matmul at n positions, over DRAM-resident copies, for about min_s seconds.
double time_per_call(DType t, bool packed, int threads, std::int64_t n, double min_s) {
  const MatrixSet& m = matrices(t, true, packed);
  ThreadPool& pool = pool_for(threads);
  std::vector<float> x(static_cast<std::size_t>(n * kCols), 0.5f), y(static_cast<std::size_t>(n * kRows));
  std::size_t c = 0;
  std::int64_t calls = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double s = 0.0;
  do {
    matmul(pool, m.view(c), x.data(), n, y.data());
    benchmark::DoNotOptimize(y.data());
    if (++c == m.copies.size()) c = 0;
    ++calls;
    s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (s < min_s);
  return s / static_cast<double>(calls);
}

// args: type, threads, n, packed
void BM_batch(benchmark::State& state) {
  const auto t = static_cast<DType>(state.range(0));
  const int threads = static_cast<int>(state.range(1));
  const std::int64_t n = state.range(2);
  const bool packed = state.range(3) != 0;
  const MatrixSet& m = matrices(t, true, packed);
  ThreadPool& pool = pool_for(threads);
  // n = 1 is timed in the same run, next to the case, so load from other processes hits both alike
  const double t1 = time_per_call(t, packed, threads, 1, 0.05);
  std::vector<float> x(static_cast<std::size_t>(n * kCols), 0.5f), y(static_cast<std::size_t>(n * kRows));
  std::size_t c = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    matmul(pool, m.view(c), x.data(), n, y.data());
    benchmark::DoNotOptimize(y.data());
    if (++c == m.copies.size()) c = 0;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double per_call = s / static_cast<double>(state.iterations());
  state.counters["us/call"] = per_call * 1e6;
  state.counters["us/position"] = per_call * 1e6 / static_cast<double>(n);
  state.counters["cost_vs_n1"] = per_call / t1;
  state.counters["GB/s"] = static_cast<double>(m.bytes) / per_call / 1e9;
  state.SetLabel(std::string(name(t)) + (packed ? " packed" : ""));
}

// The layouts of type t: row-major, and packed where t and this build have it.
std::vector<std::int64_t> layouts(DType t) {
  if (packable(t) && kPackedKernels) return {0, 1};
  return {0};
}

void decode_args(benchmark::internal::Benchmark* b) {
  for (int cold : {1, 0})
    for (DType t : kTypes)
      for (std::int64_t packed : layouts(t))
        for (int threads : {1, 2}) b->Args({static_cast<std::int64_t>(t), threads, cold, packed});
}
void batch_args(benchmark::internal::Benchmark* b) {
  for (DType t : kTypes)
    for (std::int64_t packed : layouts(t))
      for (int threads : {1, 2})
        for (std::int64_t n : {1, 2, 3, 4, 5, 8, 16}) b->Args({static_cast<std::int64_t>(t), threads, n, packed});
}

}  // namespace

BENCHMARK(BM_decode)
    ->Apply(decode_args)
    ->UseManualTime()
    ->Iterations(15)
    ->Unit(benchmark::kMillisecond)
    ->ArgNames({"type", "threads", "dram", "packed"});
BENCHMARK(BM_batch)
    ->Apply(batch_args)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->ArgNames({"type", "threads", "n", "packed"});

BENCHMARK_MAIN();
