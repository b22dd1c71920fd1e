// Memory read bandwidth probe: the ceiling a weight-streaming kernel (matmul at n = 1) is measured against.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <vector>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "edgespec/runtime/thread_pool.hpp"

namespace edgespec::bench {

namespace detail {
// sum of p (n,) f32, n a multiple of 64; 4 independent chains so loads, not adds, are the limit
inline float sum_floats(const float* p, std::int64_t n) noexcept {
#if defined(__AVX512F__)
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (std::int64_t i = 0; i < n; i += 64) {
    a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
  }
  alignas(64) float t[16];
  _mm512_store_ps(t, _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
#elif defined(__AVX2__)
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (std::int64_t i = 0; i < n; i += 32) {
    a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
  }
  alignas(32) float t[8];
  _mm256_store_ps(t, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
#else
  float t[8] = {};
  for (std::int64_t i = 0; i < n; i += 8)
    for (int j = 0; j < 8; ++j) t[j] += p[i + j];
#endif
  float s = 0.0f;
  for (float v : t) s += v;
  return s;
}
}  // namespace detail

// A `bytes` buffer that every thread of pool sums its part of; one pass per bytes_per_second() call, so a
// benchmark can put a probe pass next to each round of the kernel it measures.
class ReadProbe {
 public:
  static constexpr std::int64_t kGrain = 64 * 1024;  // floats per grain (256 KiB)

  ReadProbe(ThreadPool& pool, std::size_t bytes)
      : pool_(&pool),
        n_(std::max<std::int64_t>(kGrain, static_cast<std::int64_t>(bytes / sizeof(float)) / kGrain * kGrain)),
        buf_(static_cast<float*>(std::aligned_alloc(64, static_cast<std::size_t>(n_) * sizeof(float))), &std::free),
        sink_(static_cast<std::size_t>(pool.size())) {
    if (!buf_) throw std::bad_alloc();
    float* p = buf_.get();
    pool.parallel_for(n_, [&](std::int64_t b, std::int64_t e) { std::fill(p + b, p + e, 1.0f); }, kGrain);
  }

  // Bytes per second of one pass over the buffer.
  double bytes_per_second() {
    const float* p = buf_.get();
    const auto t0 = std::chrono::steady_clock::now();
    pool_->run_on_all([&](int t, int nt) {
      const edgespec::detail::Range part = edgespec::detail::split(n_, kGrain, t, nt);
      sink_[static_cast<std::size_t>(t)] += detail::sum_floats(p + part.begin, part.end - part.begin);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    volatile float keep = sink_[0];
    (void)keep;
    return static_cast<double>(n_) * sizeof(float) / s;
  }

 private:
  ThreadPool* pool_;
  std::int64_t n_;
  std::unique_ptr<float, decltype(&std::free)> buf_;
  std::vector<float> sink_;
};

}  // namespace edgespec::bench
