// A persistent pool of worker threads for the kernels' fork-join loops.
//
// Timeline of one parallel_for / run_on_all (T = size(), caller is thread 0):
//
//   caller:   publish job, ++generation ─┬─ run part 0 ─ wait pending == 0 ─ rethrow first exception
//   worker i: spin/futex on generation ──┴─ run part i ─ --pending (the last one wakes the caller)
//
// The workers are created once. A dispatch costs one atomic increment, plus a condition-variable wake only
// for threads that went to sleep after spinning `spin` without work; a decode step issues ~50 of them back to
// back, so the workers usually catch the next one while still spinning.
//
// Sleeping uses a mutex + condition variable (not std::atomic::wait, which lost wake-ups with libstdc++ 12
// here). A sleeper announces itself (sleepers_ / caller_sleeping_, seq_cst) before re-checking its condition
// under the mutex; the waker changes the condition (seq_cst) before reading the announcement. In the single
// total order of seq_cst operations one of the two sees the other, so no wake-up is lost.
//
// A call made while the pool is busy (from inside a job, or from a second thread) runs inline on the
// calling thread, so nested use is correct, only not parallel.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#endif

#include "edgespec/core/error.hpp"

namespace edgespec {

namespace detail {
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
  _mm_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Part t of T of [0, n) in whole multiples of grain (the last part takes the remainder).
struct Range {
  std::int64_t begin, end;
};
[[nodiscard]] constexpr Range split(std::int64_t n, std::int64_t grain, int t, int T) noexcept {
  const std::int64_t units = (n + grain - 1) / grain;
  const std::int64_t b = units * t / T * grain;
  const std::int64_t e = units * (t + 1) / T * grain;
  return {std::min(b, n), std::min(e, n)};
}
}  // namespace detail

class ThreadPool {
 public:
  // n_threads >= 1: n_threads - 1 workers are started; the calling thread is thread 0.
  // spin: how long an idle worker polls before sleeping on a futex.
  explicit ThreadPool(int n_threads, std::chrono::microseconds spin = std::chrono::microseconds(100))
      : n_threads_(n_threads), spin_(spin) {
    ES_CHECK(n_threads >= 1, "ThreadPool: n_threads must be >= 1 (got ", n_threads, ")");
    workers_.reserve(static_cast<std::size_t>(n_threads - 1));
    for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  }

  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  ~ThreadPool() {
    stop_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    {
      std::lock_guard<std::mutex> lock(sleep_mutex_);
    }
    work_cv_.notify_all();
    for (auto& w : workers_) w.join();
  }

  [[nodiscard]] int size() const noexcept { return n_threads_; }

  // f(thread_index, n_threads) on every thread of the pool; returns when all have returned.
  // The first exception thrown by any f is rethrown here (the other parts still run to completion).
  template <class F>
  void run_on_all(F&& f) {
    if (n_threads_ == 1 || busy_.test_and_set(std::memory_order_acquire)) {
      for (int t = 0; t < n_threads_; ++t) f(t, n_threads_);  // inline: single thread, nested or concurrent
      return;
    }
    struct Release {
      std::atomic_flag& flag;
      ~Release() { flag.clear(std::memory_order_release); }
    } release{busy_};
    using G = std::remove_reference_t<F>;
    job_fn_ = [](void* ctx, int t, int nt) { (*static_cast<G*>(ctx))(t, nt); };
    job_ctx_ = const_cast<void*>(static_cast<const void*>(std::addressof(f)));
    pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_seq_cst);  // publishes job_*, pairs with sleepers_ below
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> lock(sleep_mutex_); }  // a sleeper is either before its check or waiting
      work_cv_.notify_all();
    }

    run_part(0);
    wait_workers();
    if (error_) {
      std::exception_ptr e = std::exchange(error_, nullptr);
      std::rethrow_exception(e);
    }
  }

  // f(begin, end) on contiguous parts of [0, n), one part per thread (static partition); every part but
  // the last is a multiple of grain long. Returns when all parts are done; rethrows the first exception.
  template <class F>
  void parallel_for(std::int64_t n, F&& f, std::int64_t grain = 1) {
    if (n <= 0) return;
    grain = std::max<std::int64_t>(grain, 1);
    if (n_threads_ == 1 || n <= grain) {
      f(std::int64_t{0}, n);
      return;
    }
    const int T = static_cast<int>(std::min<std::int64_t>(n_threads_, (n + grain - 1) / grain));
    run_on_all([&](int t, int) {
      if (t >= T) return;
      const detail::Range r = detail::split(n, grain, t, T);
      if (r.begin < r.end) f(r.begin, r.end);
    });
  }

 private:
  void run_part(int t) noexcept {
    try {
      job_fn_(job_ctx_, t, n_threads_);
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex_);
      if (!error_) error_ = std::current_exception();
    }
  }

  void wait_workers() {
    const auto deadline = std::chrono::steady_clock::now() + spin_;
    for (int i = 0; pending_.load(std::memory_order_acquire) != 0; ++i) {
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) {
        std::unique_lock<std::mutex> lock(sleep_mutex_);
        caller_sleeping_.store(true, std::memory_order_seq_cst);
        done_cv_.wait(lock, [&] { return pending_.load(std::memory_order_seq_cst) == 0; });
        caller_sleeping_.store(false, std::memory_order_relaxed);
        return;
      }
      detail::cpu_relax();
    }
  }

  void worker_loop(int t) {
    std::uint32_t seen = 0;  // not a load: a worker that starts late must still take the first job
    for (;;) {
      const auto deadline = std::chrono::steady_clock::now() + spin_;
      for (int i = 0; generation_.load(std::memory_order_acquire) == seen; ++i) {
        if ((i & 63) == 63 && std::chrono::steady_clock::now() > deadline) {
          std::unique_lock<std::mutex> lock(sleep_mutex_);
          sleepers_.fetch_add(1, std::memory_order_seq_cst);
          work_cv_.wait(lock, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
          sleepers_.fetch_sub(1, std::memory_order_relaxed);
        } else {
          detail::cpu_relax();
        }
      }
      seen = generation_.load(std::memory_order_acquire);
      if (stop_.load(std::memory_order_relaxed)) return;
      run_part(t);
      if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1 && caller_sleeping_.load(std::memory_order_seq_cst)) {
        { std::lock_guard<std::mutex> lock(sleep_mutex_); }
        done_cv_.notify_one();
      }
    }
  }

  int n_threads_;
  std::chrono::microseconds spin_;
  std::vector<std::thread> workers_;

  void (*job_fn_)(void*, int, int) = nullptr;
  void* job_ctx_ = nullptr;
  std::exception_ptr error_;
  std::mutex error_mutex_;

  std::atomic_flag busy_;
  std::atomic<bool> stop_{false};
  alignas(64) std::atomic<std::uint32_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};
  alignas(64) std::atomic<int> sleepers_{0};
  std::atomic<bool> caller_sleeping_{false};
  std::mutex sleep_mutex_;
  std::condition_variable work_cv_;   // workers wait here for a new generation
  std::condition_variable done_cv_;   // the caller waits here for pending_ == 0
};

}  // namespace edgespec
