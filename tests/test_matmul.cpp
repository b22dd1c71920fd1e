// matmul against a double-precision reference on the dequantized weights, for every weight type, with
// Q8_0/Q4_0 both row-major and packed (kernels/packed.hpp).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "edgespec/kernels/matmul.hpp"

using namespace edgespec;

namespace {

std::vector<float> randn(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

bool quantized(DType t) { return t == DType::Q8_0 || t == DType::Q4_0; }

enum class Layout { RowMajor, Packed };

// The layouts a (t, cols) matrix runs in: Q8_0/Q4_0/F16 also packed, where this build has the packed kernels.
std::vector<Layout> layouts(DType t, std::int64_t cols) {
  if (packable(t, cols) && kPackedKernels) return {Layout::RowMajor, Layout::Packed};
  return {Layout::RowMajor};
}

// A weight matrix stored one byte past an aligned address, as a memory-mapped tensor may be, and its packed
// copy when asked for.
struct Weights {
  std::vector<unsigned char> bytes;
  std::shared_ptr<std::byte> packed;
  std::vector<float> deq;  // (rows, cols) dequantized
  MatrixView view;
};

Weights make_weights(DType t, std::int64_t rows, std::int64_t cols, unsigned seed,
                     Layout layout = Layout::RowMajor) {
  const auto f = randn(static_cast<std::size_t>(rows * cols), seed);
  Weights w;
  const std::int64_t rb = row_bytes(t, cols);
  w.bytes.assign(static_cast<std::size_t>(1 + rows * rb), 0);
  unsigned char* p = w.bytes.data() + 1;
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* src = f.data() + r * cols;
    unsigned char* dst = p + r * rb;
    quantize_row(t, src, dst, cols);
  }
  w.deq.resize(f.size());
  for (std::int64_t r = 0; r < rows; ++r) dequantize_row(t, p + r * rb, w.deq.data() + r * cols, cols);
  w.view = MatrixView{t, rows, cols, p};
  if (layout == Layout::Packed) {
    w.packed = allocate_aligned(static_cast<std::size_t>(packed_bytes(t, rows, cols)));
    pack_rows(t, p, rows, cols, w.packed.get());
    w.view.packed = w.packed.get();
  }
  return w;
}

// The activations the kernel multiplies: x itself (F32), x rounded to F16/BF16 for those weights, or x through
// the kernel's own Q8_0 activation quantizer (prepare_activations) for Q8_0/Q4_0 weights.
std::vector<float> effective_x(DType t, const std::vector<float>& x, std::int64_t cols) {
  std::vector<float> out(x.size());
  if (t == DType::F32) return x;
  if (t == DType::F16 || t == DType::BF16) {
    for (std::size_t i = 0; i < x.size(); ++i)
      out[i] = t == DType::F16 ? fp16_to_fp32(fp32_to_fp16(x[i])) : bf16_to_fp32(fp32_to_bf16(x[i]));
    return out;
  }
  ThreadPool pool(1);
  const std::int64_t n = static_cast<std::int64_t>(x.size()) / cols;
  std::vector<detail::PackedX> views(static_cast<std::size_t>(n));
  detail::prepare_activations<DType::Q8_0>(pool, x.data(), n, cols, views.data());
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t k = 0; k < cols; ++k)
      out[static_cast<std::size_t>(j * cols + k)] = views[static_cast<std::size_t>(j)].d[k / 32] *
                                                    static_cast<float>(views[static_cast<std::size_t>(j)].q[k]);
  return out;
}

// y (n, rows) against sum_k w[r,k] x[j,k] in double: |err| <= rel * sum_k |w x| + 1e-6
template <int kCols = dynamic_extent>
void check_case(ThreadPool& pool, DType t, std::int64_t rows, std::int64_t cols, std::int64_t n, unsigned seed) {
  for (Layout layout : layouts(t, cols)) check_case<kCols>(pool, t, rows, cols, n, seed, layout);
}

template <int kCols>
void check_case(ThreadPool& pool, DType t, std::int64_t rows, std::int64_t cols, std::int64_t n, unsigned seed,
                Layout layout) {
  const Weights w = make_weights(t, rows, cols, seed, layout);
  const bool packed = layout == Layout::Packed;
  const auto x = randn(static_cast<std::size_t>(n * cols), seed + 1000);
  const auto xe = effective_x(t, x, cols);
  std::vector<float> y(static_cast<std::size_t>(n * rows), NAN);
  matmul<kCols>(pool, w.view, x.data(), n, y.data());

  const double rel = 2e-6 * std::sqrt(static_cast<double>(cols)) + 1e-6;  // f32 accumulation
  double err2 = 0, ref2 = 0;
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t r = 0; r < rows; ++r) {
      double ref = 0, mag = 0, exact = 0;
      for (std::int64_t k = 0; k < cols; ++k) {
        const double wk = w.deq[static_cast<std::size_t>(r * cols + k)];
        ref += wk * xe[static_cast<std::size_t>(j * cols + k)];
        exact += wk * x[static_cast<std::size_t>(j * cols + k)];
        mag += std::fabs(wk * xe[static_cast<std::size_t>(j * cols + k)]);
      }
      const double got = y[static_cast<std::size_t>(j * rows + r)];
      INFO(name(t) << (packed ? " packed" : "") << " rows " << rows << " cols " << cols << " n " << n << " at ("
                   << j << ", " << r << ")");
      REQUIRE(std::fabs(got - ref) <= rel * mag + 1e-6);
      err2 += (got - exact) * (got - exact);
      ref2 += exact * exact;
    }
  // Against unrounded activations (over enough outputs for an RMS to mean something): Q8_0 activations cost
  // ~0.5% relative RMS, BF16 ones (8-bit mantissa) ~0.2%, F16 ones ~0.03%, F32 nothing beyond f32 rounding.
  INFO(name(t) << (packed ? " packed" : "") << " rows " << rows << " cols " << cols << " n " << n);
  const double bound = quantized(t) ? 0.02 : t == DType::BF16 ? 5e-3 : t == DType::F16 ? 1e-3 : 1e-5;
  if (rows * n >= 32) CHECK(std::sqrt(err2 / ref2) < bound);
}

const DType kTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0};

}  // namespace

TEST_CASE("matmul matches the reference for every type, dynamic cols", "[matmul]") {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (DType t : kTypes) {
      const std::vector<std::int64_t> cols_list =
          quantized(t) ? std::vector<std::int64_t>{32, 96, 320} : std::vector<std::int64_t>{1, 7, 33, 96, 321};
      unsigned seed = 1;
      for (std::int64_t cols : cols_list)
        for (std::int64_t rows : {1, 3, 5, 67})
          for (std::int64_t n = 1; n <= 17; n += (n < 5 ? 1 : 6)) check_case(pool, t, rows, cols, n, seed++);
    }
  }
}

TEST_CASE("matmul with cols fixed at compile time", "[matmul]") {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (DType t : kTypes)
      for (std::int64_t n : {1, 2, 5, 17}) {
        check_case<64>(pool, t, 37, 64, n, static_cast<unsigned>(n));
        check_case<4096>(pool, t, 9, 4096, n, static_cast<unsigned>(n + 50));
      }
    const Weights w = make_weights(DType::Q8_0, 4, 96, 3);
    std::vector<float> x(96), y(4);
    CHECK_THROWS_AS(matmul<64>(pool, w.view, x.data(), 1, y.data()), Error);
  }
}

TEST_CASE("large enough to split rows over threads; up to 64 positions", "[matmul]") {
  ThreadPool pool(2);
  for (DType t : kTypes) {
    check_case(pool, t, 517, 256, 1, 7);
    check_case(pool, t, 130, 512, 64, 8);
  }
}

TEST_CASE("batched n equals n single calls, and 1 thread equals 2, bit for bit", "[matmul]") {
  ThreadPool one(1), two(2);
  const std::int64_t rows = 203, cols = 288, n = 13;
  for (DType t : kTypes)
  for (Layout layout : layouts(t, cols)) {
    const Weights w = make_weights(t, rows, cols, 77, layout);
    const auto x = randn(static_cast<std::size_t>(n * cols), 78);
    std::vector<float> batched(static_cast<std::size_t>(n * rows)), batched1(batched.size()), single(batched.size());
    matmul(two, w.view, x.data(), n, batched.data());
    matmul(one, w.view, x.data(), n, batched1.data());
    for (std::int64_t j = 0; j < n; ++j) matmul(two, w.view, x.data() + j * cols, 1, single.data() + j * rows);
    INFO(name(t) << (layout == Layout::Packed ? " packed" : ""));
    CHECK(std::memcmp(batched.data(), single.data(), batched.size() * sizeof(float)) == 0);
    CHECK(std::memcmp(batched.data(), batched1.data(), batched.size() * sizeof(float)) == 0);
  }
}

// Register tiles are up to 8 rows x 1 position or 4 rows x 4 positions (packed: 16 rows x 1..8 positions),
// in chunks of 16 positions, with single rows after the last full tile: n = 1..33 and these row counts reach
// every tile shape and remainder.
TEST_CASE("every tile shape: n = 1..33 positions against the reference", "[matmul]") {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (DType t : kTypes) {
      unsigned seed = 500;
      for (std::int64_t n = 1; n <= 33; ++n) {
        check_case(pool, t, n % 2 != 0 ? 13 : 21, quantized(t) ? 96 : 100, n, seed++);
        check_case(pool, t, n % 2 != 0 ? 35 : 48, quantized(t) ? 64 : 65, n, seed++);
        check_case<160>(pool, t, 9, 160, n, seed++);
      }
    }
  }
}

template <int kCols = dynamic_extent>
void check_batched_equals_single(ThreadPool& pool, DType t, std::int64_t rows, std::int64_t cols, std::int64_t n,
                                 unsigned seed) {
  for (Layout layout : layouts(t, cols)) {
  const Weights w = make_weights(t, rows, cols, seed, layout);
  const auto x = randn(static_cast<std::size_t>(n * cols), seed + 1);
  std::vector<float> batched(static_cast<std::size_t>(n * rows)), single(batched.size());
  matmul<kCols>(pool, w.view, x.data(), n, batched.data());
  for (std::int64_t j = 0; j < n; ++j) matmul<kCols>(pool, w.view, x.data() + j * cols, 1, single.data() + j * rows);
  INFO(name(t) << (layout == Layout::Packed ? " packed" : "") << " rows " << rows << " cols " << cols << " n " << n
                << " threads " << pool.size());
  CHECK(std::memcmp(batched.data(), single.data(), batched.size() * sizeof(float)) == 0);
  }
}

TEST_CASE("n = 1..33 positions equal n single calls bit for bit, every tile shape", "[matmul]") {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (DType t : kTypes)
      for (std::int64_t n = 1; n <= 33; ++n) {
        const auto s = static_cast<unsigned>(n);
        check_batched_equals_single(pool, t, 37, quantized(t) ? 32 : 31, n, s);     // F16: row-major only
        check_batched_equals_single(pool, t, 67, quantized(t) ? 224 : 228, n, s + 100);
        check_batched_equals_single<256>(pool, t, 19, 256, n, s + 200);
      }
  }
}

TEST_CASE("matmul rejects bad shapes", "[matmul]") {
  ThreadPool pool(1);
  std::vector<unsigned char> buf(1024);
  std::vector<float> x(64), y(64);
  CHECK_THROWS_AS(matmul(pool, MatrixView{DType::Q4_0, 2, 40, buf.data()}, x.data(), 1, y.data()), Error);
  CHECK_THROWS_AS(matmul(pool, MatrixView{DType::F32, 2, 4, buf.data()}, x.data(), -1, y.data()), Error);
  if (kPackedKernels) {  // packed views must be 64-byte aligned (the kernel's loads are aligned)
    auto* p = reinterpret_cast<unsigned char*>((reinterpret_cast<std::uintptr_t>(buf.data()) + 63) / 64 * 64);
    const MatrixView misaligned{DType::Q8_0, 16, 32, buf.data(), p + 1};
    CHECK_THROWS_AS(matmul(pool, misaligned, x.data(), 1, y.data()), Error);
  }
  CHECK_THROWS_AS(pack_rows(DType::F32, buf.data(), 16, 32, buf.data()), Error);
  CHECK_THROWS_AS(pack_rows(DType::F16, buf.data(), 16, 30, buf.data()), Error);
  CHECK_THROWS_AS(pack_rows(DType::Q8_0, buf.data(), 16, 40, buf.data()), Error);
}

// The packed layout holds every byte of the rows it replaces: packing, then reading each (row, block) back
// from the layout packed.hpp documents, gives the row-major blocks.
TEST_CASE("packed layout round trip", "[matmul][packed]") {
  {  // F16: column c of a group is its 16 rows' values at bytes [32c, 32c + 32)
    const std::int64_t rows = 35, cols = 44;
    const Weights w = make_weights(DType::F16, rows, cols, 4);
    const auto* src = static_cast<const unsigned char*>(w.view.data);
    std::vector<unsigned char> packed(static_cast<std::size_t>(packed_bytes(DType::F16, rows, cols)));
    pack_rows(DType::F16, src, rows, cols, packed.data());
    CHECK(packed.size() == static_cast<std::size_t>(2 * 16 * cols * 2));
    for (std::int64_t r = 0; r < 32; ++r)
      for (std::int64_t c = 0; c < cols; ++c) {
        INFO("F16 row " << r << " column " << c);
        CHECK(std::memcmp(packed.data() + r / 16 * packed_group_bytes(DType::F16, cols) + c * 32 + r % 16 * 2,
                          src + r * 2 * cols + c * 2, 2) == 0);
      }
  }
  for (DType t : {DType::Q8_0, DType::Q4_0}) {
    const std::int64_t rows = 35, cols = 96, nb = cols / 32;
    const Weights w = make_weights(t, rows, cols, 5);
    const auto* src = static_cast<const unsigned char*>(w.view.data);
    std::vector<unsigned char> packed(static_cast<std::size_t>(packed_bytes(t, rows, cols)));
    pack_rows(t, src, rows, cols, packed.data());
    CHECK(packed.size() == static_cast<std::size_t>(2 * packed_group_bytes(t, nb)));
    CHECK(packed_pair_bytes(t) % 64 == 0);
    // blocks 0, 1: quants at 0 and 16 * (block bytes - 2), their scales after both; block 2 starts pair 1
    const std::int64_t quant = packed_block_quant_bytes(t), chunks = (block_bytes(t) - 2) / 4;
    CHECK(packed_quant_offset(t, 1) == quant);
    CHECK(packed_scale_offset(t, 1) == 2 * quant + 32);
    CHECK(packed_quant_offset(t, 2) == 2 * quant + 64);
    for (std::int64_t r = 0; r < rows / kPackRows * kPackRows; ++r)
      for (std::int64_t b = 0; b < nb; ++b) {
        const unsigned char* group = packed.data() + r / kPackRows * packed_group_bytes(t, nb);
        const std::int64_t i = r % kPackRows;
        std::vector<unsigned char> blk(static_cast<std::size_t>(block_bytes(t)));
        std::memcpy(blk.data(), group + packed_scale_offset(t, b) + i * 2, 2);
        for (std::int64_t k = 0; k < chunks; ++k)
          for (int j = 0; j < 4; ++j)
            blk[static_cast<std::size_t>(2 + 4 * k + j)] = static_cast<unsigned char>(
                group[packed_quant_offset(t, b) + (k * kPackRows + i) * 4 + j] ^ (t == DType::Q8_0 ? 0x80 : 0));
        INFO(name(t) << " row " << r << " block " << b);
        CHECK(std::memcmp(blk.data(), src + r * row_bytes(t, cols) + b * block_bytes(t), blk.size()) == 0);
      }
  }
}
