#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "edgespec/kernels/attention.hpp"
#include "edgespec/kernels/ops.hpp"
#include "edgespec/kernels/quantize.hpp"

using namespace edgespec;

namespace {
std::vector<float> randn(std::size_t n, unsigned seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}
}  // namespace

TEST_CASE("rmsnorm", "[ops]") {
  for (std::int64_t n : {1, 7, 64, 4096}) {
    auto x = randn(static_cast<std::size_t>(n), 1), w = randn(static_cast<std::size_t>(n), 2);
    std::vector<float> out(x.size());
    rmsnorm(out.data(), x.data(), w.data(), n, 1e-5f);
    double ss = 0;
    for (float v : x) ss += double(v) * v;
    const double scale = 1.0 / std::sqrt(ss / n + 1e-5);
    for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(out[i] == Approx(x[i] * scale * w[i]).epsilon(1e-5).margin(1e-6));
  }
  auto x = randn(64, 3), w = randn(64, 4);
  std::vector<float> a(64), b(64);
  rmsnorm<64>(a.data(), x.data(), w.data(), 64, 1e-6f);
  rmsnorm(b.data(), x.data(), w.data(), 64, 1e-6f);
  CHECK(a == b);
  CHECK_THROWS_AS(rmsnorm<64>(a.data(), x.data(), w.data(), 63, 1e-6f), Error);
}

TEST_CASE("rope, both styles", "[ops]") {
  const int n_heads = 3, head_dim = 128;  // > one chunk of 64 pairs
  std::vector<float> inv_freq(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / head_dim);
  for (auto style : {RopeStyle::Normal, RopeStyle::NeoX}) {
    for (int pos : {0, 1, 17, 4095}) {
      auto v = randn(n_heads * head_dim, 5 + pos);
      auto ref = v;
      for (int h = 0; h < n_heads; ++h)
        for (int i = 0; i < head_dim / 2; ++i) {
          const int a = style == RopeStyle::Normal ? h * head_dim + 2 * i : h * head_dim + i;
          const int b = style == RopeStyle::Normal ? a + 1 : a + head_dim / 2;
          const double th = double(float(pos) * inv_freq[i]);
          const double x0 = v[a], x1 = v[b];
          ref[a] = float(x0 * std::cos(th) - x1 * std::sin(th));
          ref[b] = float(x0 * std::sin(th) + x1 * std::cos(th));
        }
      rope_inplace(v.data(), n_heads, head_dim, pos, inv_freq.data(), style);
      for (std::size_t i = 0; i < v.size(); ++i) REQUIRE(v[i] == Approx(ref[i]).margin(1e-5));
    }
  }
  auto v = randn(2 * 64, 9), w = v;
  rope_inplace<64>(v.data(), 2, 64, 3, inv_freq.data(), RopeStyle::NeoX);
  rope_inplace(w.data(), 2, 64, 3, inv_freq.data(), RopeStyle::NeoX);
  CHECK(v == w);
}

TEST_CASE("softmax, swiglu, add, argmax", "[ops]") {
  auto x = randn(1000, 11, 30.0f);
  x[3] = -INFINITY;
  auto s = x;
  softmax_inplace(s.data(), static_cast<std::int64_t>(s.size()));
  double mx = -INFINITY, sum = 0;
  for (float v : x) mx = std::max<double>(mx, v);
  for (float v : x) sum += std::exp(double(v) - mx);
  for (std::size_t i = 0; i < x.size(); ++i) REQUIRE(s[i] == Approx(std::exp(double(x[i]) - mx) / sum).margin(1e-7));
  CHECK(s[3] == 0.0f);
  std::vector<float> big = {1e30f, 1e30f, -1e30f};
  softmax_inplace(big.data(), 3);
  CHECK(big[0] == Approx(0.5));
  CHECK(big[2] == 0.0f);

  auto g = randn(333, 12, 5.0f), u = randn(333, 13);
  auto out = g;
  swiglu(out.data(), u.data(), 333);
  for (std::size_t i = 0; i < g.size(); ++i)
    REQUIRE(out[i] == Approx(double(g[i]) / (1 + std::exp(-double(g[i]))) * u[i]).epsilon(1e-5).margin(1e-6));

  auto a = g;
  add_inplace(a.data(), u.data(), 333);
  for (std::size_t i = 0; i < g.size(); ++i) REQUIRE(a[i] == g[i] + u[i]);

  std::vector<float> m = {1, 5, 2, 5, -1};
  CHECK(argmax(m.data(), 5) == 1);
  CHECK(argmax<5>(m.data(), 5) == 1);
}

TEST_CASE("dot and axpy against double references, fixed and dynamic sizes, any alignment", "[ops]") {
  for (std::int64_t n : {1, 15, 16, 17, 64, 100, 128}) {
    auto buf_a = randn(static_cast<std::size_t>(n + 1), 21), buf_b = randn(static_cast<std::size_t>(n + 1), 22);
    for (int offset : {0, 1}) {
      const float* a = buf_a.data() + offset;
      const float* b = buf_b.data() + offset;
      double ref = 0, mag = 0;
      for (std::int64_t i = 0; i < n; ++i) {
        ref += static_cast<double>(a[i]) * b[i];
        mag += std::fabs(static_cast<double>(a[i]) * b[i]);
      }
      INFO("n " << n << " offset " << offset);
      CHECK(std::fabs(dot(a, b, n) - ref) <= 1e-6 * mag + 1e-7);
      // the same rounding wherever the operands lie
      std::vector<float> a2(a, a + n), b2(b, b + n);
      CHECK(dot(a2.data(), b2.data(), n) == dot(a, b, n));

      std::vector<float> y(static_cast<std::size_t>(n), 0.25f);
      axpy(y.data(), -1.5f, a, n);
      for (std::int64_t i = 0; i < n; ++i)  // one rounding (fused) or two
        CHECK(y[static_cast<std::size_t>(i)] ==
              Approx(0.25 - 1.5 * static_cast<double>(a[i])).epsilon(1e-6).margin(1e-7));
    }
  }
  auto a = randn(64, 23), b = randn(64, 24);
  CHECK(dot<64>(a.data(), b.data(), 64) == dot(a.data(), b.data(), 64));
  CHECK_THROWS_AS(dot<64>(a.data(), b.data(), 63), edgespec::Error);
}

TEST_CASE("fp16: every half round-trips through f32", "[quantize]") {
  std::vector<std::uint16_t> h(65536), back(65536);
  for (int i = 0; i < 65536; ++i) h[i] = static_cast<std::uint16_t>(i);
  std::vector<float> f(65536);
  fp16_to_fp32_row(h.data(), f.data(), 65536);
  fp32_to_fp16_row(f.data(), back.data(), 65536);
  for (int i = 0; i < 65536; ++i) {
    INFO("half 0x" << std::hex << i);
    if (std::isnan(f[i])) {  // F16C quiets signalling NaNs, the scalar code keeps them: both are NaN
      REQUIRE(std::isnan(fp16_to_fp32(h[i])));
      REQUIRE(std::isnan(fp16_to_fp32(back[i])));
    } else {
      REQUIRE(f[i] == fp16_to_fp32(h[i]));
      REQUIRE(std::signbit(f[i]) == std::signbit(fp16_to_fp32(h[i])));
      REQUIRE(back[i] == h[i]);
      REQUIRE(fp32_to_fp16(f[i]) == h[i]);
    }
  }
}

TEST_CASE("fp16 and bf16 rows: rounding to nearest even", "[quantize]") {
  auto x = randn(1003, 21, 100.0f);
  x[0] = 65520.0f;      // rounds to inf
  x[1] = 1e-8f;         // f16 subnormal range
  x[2] = 1.0f + 1.0f / 2048.0f;  // tie -> even (1.0)
  std::vector<std::uint16_t> h(x.size()), b(x.size());
  fp32_to_fp16_row(x.data(), h.data(), static_cast<std::int64_t>(x.size()));
  fp32_to_bf16_row(x.data(), b.data(), static_cast<std::int64_t>(x.size()));
  std::vector<float> hf(x.size()), bf(x.size());
  fp16_to_fp32_row(h.data(), hf.data(), static_cast<std::int64_t>(x.size()));
  bf16_to_fp32_row(b.data(), bf.data(), static_cast<std::int64_t>(x.size()));
  CHECK(std::isinf(hf[0]));
  CHECK(hf[2] == 1.0f);
  for (std::size_t i = 0; i < x.size(); ++i) {
    REQUIRE(h[i] == fp32_to_fp16(x[i]));
    if (i != 0 && i != 1) REQUIRE(std::fabs(hf[i] - x[i]) <= std::fabs(x[i]) * (1.0f / 2048.0f));
    REQUIRE(std::fabs(bf[i] - x[i]) <= std::fabs(x[i]) * (1.0f / 256.0f));
  }
}

namespace {
// GGML's quantize_row_q8_0_ref, written out again as the oracle
void ref_q8_0(const float* x, BlockQ8_0* y, int k) {
  for (int b = 0; b < k / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    const float d = amax / 127, id = d ? 1.0f / d : 0.0f;
    y[b].d = fp32_to_fp16(d);
    for (int j = 0; j < 32; ++j) y[b].q[j] = static_cast<std::int8_t>(std::roundf(x[b * 32 + j] * id));
  }
}
}  // namespace

TEST_CASE("Q8_0 and Q4_0 quantization", "[quantize]") {
  const int k = 32 * 64;
  auto x = randn(k, 31, 3.0f);
  for (int j = 0; j < 32; ++j) x[j] = 0.0f;                       // all-zero block
  for (int j = 0; j < 32; ++j) x[32 + j] = (j - 16) + 0.5f;       // d = 1: exact ties at n + 0.5
  x[32] = 127.0f;
  x[64] = 1e-30f;                                                  // tiny scale
  std::vector<BlockQ8_0> q8(k / 32), r8(k / 32);
  quantize_row_q8_0(x.data(), q8.data(), k);
  ref_q8_0(x.data(), r8.data(), k);
  CHECK(std::memcmp(q8.data(), r8.data(), q8.size() * sizeof(BlockQ8_0)) == 0);

  std::vector<float> back(k);
  dequantize_row(DType::Q8_0, q8.data(), back.data(), k);
  for (int b = 0; b < k / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    for (int j = 0; j < 32; ++j)  // half a step, plus |q| <= 127 times the f16 rounding of the scale (2^-11)
      REQUIRE(std::fabs(back[b * 32 + j] - x[b * 32 + j]) <= amax / 127 * (0.5f + 127.0f / 2048) + 1e-30f);
  }

  std::vector<BlockQ4_0> q4(k / 32);
  quantize_row_q4_0(x.data(), q4.data(), k);
  dequantize_row(DType::Q4_0, q4.data(), back.data(), k);
  for (int b = 0; b < k / 32; ++b) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
    for (int j = 0; j < 32; ++j)  // step amax/8; the largest positive value may clamp at 7 steps
      REQUIRE(std::fabs(back[b * 32 + j] - x[b * 32 + j]) <= amax / 8 * 1.01f + 1e-30f);
  }
  // The value with the largest |x| is exact up to the f16 scale: it maps to -8.
  const auto& blk = q4[5];
  int imax = 0;
  for (int j = 0; j < 32; ++j)
    if (std::fabs(x[5 * 32 + j]) > std::fabs(x[5 * 32 + imax])) imax = j;
  const int nib = imax < 16 ? (blk.qs[imax] & 15) : (blk.qs[imax - 16] >> 4);
  CHECK(nib == 0);

  CHECK_THROWS_AS(quantize_row_q8_0(x.data(), q8.data(), 33), Error);
}

TEST_CASE("dequantize F32/F16/BF16 rows at odd alignment", "[quantize]") {
  auto x = randn(37, 41);
  std::vector<unsigned char> buf(1 + 37 * 4);
  std::memcpy(buf.data() + 1, x.data(), 37 * 4);
  std::vector<float> y(37);
  dequantize_row(DType::F32, buf.data() + 1, y.data(), 37);
  CHECK(y == x);
  std::vector<std::uint16_t> h(37);
  fp32_to_bf16_row(x.data(), h.data(), 37);
  std::memcpy(buf.data() + 1, h.data(), 37 * 2);
  dequantize_row(DType::BF16, buf.data() + 1, y.data(), 37);
  for (int i = 0; i < 37; ++i) REQUIRE(y[i] == bf16_to_fp32(h[i]));
}

// key_scores / weighted_values (kernels/attention.hpp) against double-precision references, for f32 and f16
// rows, head sizes on and off the AVX-512 path, key counts around the 16-key blocks, and the property the
// batched attention relies on: a key's score does not depend on how many keys come with it.
TEMPLATE_TEST_CASE("attention kernels", "[ops][attention]", float, std::uint16_t) {
  const int G = 4;
  for (std::int64_t hd : {8, 48, 64, 80, 128}) {
    const std::int64_t ld = 3 * hd + 16;  // rows strided as in a cache with other heads between them
    for (std::int64_t n : {1, 5, 15, 16, 17, 33, 100}) {
      auto kf = randn(static_cast<std::size_t>(n * ld), 21), vf = randn(static_cast<std::size_t>(n * ld), 22);
      std::vector<TestType> k(kf.size()), v(vf.size());
      for (std::size_t i = 0; i < kf.size(); ++i) {
        if constexpr (std::is_same_v<TestType, float>) {
          k[i] = kf[i];
          v[i] = vf[i];
        } else {
          k[i] = fp32_to_fp16(kf[i]);
          v[i] = fp32_to_fp16(vf[i]);
          kf[i] = fp16_to_fp32(k[i]);
          vf[i] = fp16_to_fp32(v[i]);
        }
      }
      const auto q = randn(static_cast<std::size_t>(G * hd), 23);
      const std::int64_t lds = n + 3;
      std::vector<float> s(static_cast<std::size_t>(G * lds), -7.0f), buf(static_cast<std::size_t>(16 * hd));
      const float scale = 0.125f;
      key_scores(q.data(), G, k.data(), ld, n, hd, scale, s.data(), lds, buf.data());
      for (int g = 0; g < G; ++g) {
        for (std::int64_t j = 0; j < n; ++j) {
          double ref = 0;
          for (std::int64_t e = 0; e < hd; ++e) ref += double(q[g * hd + e]) * kf[j * ld + e];
          REQUIRE(s[g * lds + j] == Approx(ref * scale).margin(1e-4));
        }
        for (std::int64_t j = n; j < lds; ++j) REQUIRE(s[g * lds + j] == -7.0f);  // nothing past n written
      }
      // the first m keys scored alone give the same bits as within all n
      for (std::int64_t m : {std::int64_t{1}, n / 2 + 1}) {
        std::vector<float> sm(static_cast<std::size_t>(G * lds));
        key_scores(q.data(), G, k.data(), ld, m, hd, scale, sm.data(), lds, buf.data());
        for (int g = 0; g < G; ++g)
          for (std::int64_t j = 0; j < m; ++j) REQUIRE(std::bit_cast<std::uint32_t>(sm[g * lds + j]) == std::bit_cast<std::uint32_t>(s[g * lds + j]));
      }
      const auto p = randn(static_cast<std::size_t>(G * lds), 24);
      std::vector<float> o(static_cast<std::size_t>(G * hd), 99.0f);
      weighted_values(p.data(), lds, G, v.data(), ld, n, hd, o.data(), buf.data());
      for (int g = 0; g < G; ++g)
        for (std::int64_t e = 0; e < hd; ++e) {
          double ref = 0;
          for (std::int64_t j = 0; j < n; ++j) ref += double(p[g * lds + j]) * vf[j * ld + e];
          REQUIRE(o[g * hd + e] == Approx(ref).margin(1e-4));
        }
    }
  }
  std::vector<float> q(64), s(4), buf(16 * 64);
  std::vector<TestType> k(64);
  CHECK_THROWS_AS(key_scores<64>(q.data(), 1, k.data(), 64, 1, 63, 1.0f, s.data(), 4, buf.data()), Error);
}
