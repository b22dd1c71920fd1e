#include <catch2/catch.hpp>

#include <atomic>
#include <stdexcept>
#include <vector>

#include "edgespec/runtime/thread_pool.hpp"

using edgespec::ThreadPool;

TEST_CASE("parallel_for covers every index exactly once", "[thread_pool]") {
  for (int threads : {1, 2, 3, 4, 7}) {
    ThreadPool pool(threads);
    REQUIRE(pool.size() == threads);
    for (std::int64_t grain : {1, 4, 32}) {
      for (std::int64_t n : {0, 1, 2, 3, 5, 8, 31, 32, 33, 100, 1000, 4097}) {
        std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
        std::atomic<int> bad_boundary{0};
        pool.parallel_for(
            n,
            [&](std::int64_t b, std::int64_t e) {
              if (b >= e || b % grain != 0) ++bad_boundary;
              for (std::int64_t i = b; i < e; ++i) ++hits[static_cast<std::size_t>(i)];
            },
            grain);
        INFO("threads " << threads << " grain " << grain << " n " << n);
        CHECK(bad_boundary == 0);
        for (auto& h : hits) REQUIRE(h == 1);
      }
    }
  }
}

TEST_CASE("run_on_all calls every thread index once", "[thread_pool]") {
  ThreadPool pool(3);
  std::vector<std::atomic<int>> seen(3);
  pool.run_on_all([&](int t, int nt) {
    REQUIRE(nt == 3);
    ++seen[static_cast<std::size_t>(t)];
  });
  for (auto& s : seen) CHECK(s == 1);
}

TEST_CASE("exceptions reach the caller and the pool stays usable", "[thread_pool]") {
  for (int threads : {1, 2, 4}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 50; ++rep) {
      const std::int64_t throw_at = rep % 100;  // any part, including the caller's
      CHECK_THROWS_AS(pool.parallel_for(100,
                                        [&](std::int64_t b, std::int64_t e) {
                                          if (b <= throw_at && throw_at < e) throw std::runtime_error("boom");
                                        }),
                      std::runtime_error);
      std::atomic<std::int64_t> sum{0};
      pool.parallel_for(100, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) sum += i;
      });
      CHECK(sum == 4950);
    }
  }
}

TEST_CASE("thousands of back-to-back calls", "[thread_pool]") {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads, std::chrono::microseconds(threads == 2 ? 100 : 0));  // also the futex path
    std::vector<std::int64_t> v(256, 0);
    for (int rep = 0; rep < 5000; ++rep)
      pool.parallel_for(static_cast<std::int64_t>(v.size()), [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) v[static_cast<std::size_t>(i)] += i;
      });
    for (std::size_t i = 0; i < v.size(); ++i) REQUIRE(v[i] == 5000 * static_cast<std::int64_t>(i));
  }
}

TEST_CASE("nested calls run inline", "[thread_pool]") {
  ThreadPool pool(2);
  std::atomic<int> total{0};
  pool.parallel_for(8, [&](std::int64_t b, std::int64_t e) {
    for (std::int64_t i = b; i < e; ++i)
      pool.parallel_for(10, [&](std::int64_t b2, std::int64_t e2) { total += static_cast<int>(e2 - b2); });
  });
  CHECK(total == 80);
}

TEST_CASE("n_threads must be positive", "[thread_pool]") {
  CHECK_THROWS_AS(ThreadPool(0), edgespec::Error);
}
