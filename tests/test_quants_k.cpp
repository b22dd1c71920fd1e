// K-quants Q2_K..Q6_K and the Q8_K activations: dequantizers on hand-built blocks, quantizer error against
// llama.cpp's, identity with llama.cpp (dequantized test vectors, Q8_K blocks, dot products), and matmul against a
// double reference. The llama.cpp figures below were computed once from tests/quants_k_inputs.hpp's rows by a
// throwaway program outside the repository that linked llama.cpp c392e50's libggml-base.so / libggml-cpu.so
// (ggml_quantize_chunk without importance matrix, the type traits' to_float, the CPU traits' from_float and
// vec_dot); CI has no llama.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "edgespec/io/gguf.hpp"
#include "edgespec/kernels/matmul.hpp"
#include "quants_k_inputs.hpp"
#include "test_util.hpp"

using namespace edgespec;
using edgespec::test::quant_row;

namespace {

constexpr DType kTypes[] = {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K};

std::uint64_t fnv1a(const void* p, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (std::size_t i = 0; i < n; ++i) {
    h ^= static_cast<const unsigned char*>(p)[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

std::vector<float> dequantize(DType t, const void* p, std::int64_t k) {
  std::vector<float> y(static_cast<std::size_t>(k));
  dequantize_row(t, p, y.data(), k);
  return y;
}

// x (k,) -> the quantized row stored one byte past an aligned address.
std::vector<unsigned char> quantize_unaligned(DType t, const std::vector<float>& x) {
  const auto k = static_cast<std::int64_t>(x.size());
  std::vector<unsigned char> buf(static_cast<std::size_t>(row_bytes(t, k) + 1));
  quantize_row(t, x.data(), buf.data() + 1, k);
  return buf;
}

// ---------------------------------------------------------------- hand-built blocks, from the layout table

// Sets n bits of the byte array at bit offset `bit` (bit 0 = least significant bit of byte 0).
void put_bits(unsigned char* p, int bit, int n, unsigned v) {
  for (int i = 0; i < n; ++i)
    if ((v >> i) & 1u) p[(bit + i) / 8] = static_cast<unsigned char>(p[(bit + i) / 8] | 1u << ((bit + i) % 8));
}
void put_f16(unsigned char* p, float v) {
  const std::uint16_t h = fp32_to_fp16(v);
  std::memcpy(p, &h, 2);
}

struct HandBlock {
  std::vector<unsigned char> bytes;
  std::vector<float> expect;
};

// One block of type t with codes and levels from `pattern`, built bit by bit from the layout documented in
// kernels/quants_k.hpp (independently of its packing code), and the values it must dequantize to.
HandBlock hand_block(DType t, int pattern) {
  HandBlock b{std::vector<unsigned char>(static_cast<std::size_t>(block_bytes(t)), 0), std::vector<float>(256)};
  unsigned char* p = b.bytes.data();
  const float d = pattern == 0 ? 0.25f : 1.5f, dmin = pattern == 0 ? 0.125f : 0.75f;
  // pseudo-random codes and levels (so that no two positions agree by construction), the extreme codes included
  auto mix = [&](int i, int salt) {
    return static_cast<int>((static_cast<std::uint32_t>(i * 4 + pattern + 8 * salt) * 2654435761u) >> 16);
  };
  // sub-blocks `first` and first + 1 get the largest and the smallest code (in the other order for pattern 1)
  auto code = [&](int j, int n_codes, int first) {
    if (j == first || j == first + 1) return (j == first) == (pattern == 0) ? n_codes - 1 : 0;
    return mix(j, 1 + first) % n_codes;
  };
  auto level = [&](int v, int n_levels) { return mix(v, 2) % n_levels; };
  switch (t) {
    case DType::Q2_K:
      put_f16(p + 80, d);
      put_f16(p + 82, dmin);
      for (int v = 0; v < 256; ++v) {
        const int j = v / 16, sc = code(j, 16, 0), m = code(j, 16, 2), q = level(v, 4);
        if (v % 16 == 0) {
          put_bits(p, 8 * j, 4, static_cast<unsigned>(sc));
          put_bits(p, 8 * j + 4, 4, static_cast<unsigned>(m));
        }
        put_bits(p + 16, 8 * (32 * (v / 128) + v % 32) + 2 * ((v % 128) / 32), 2, static_cast<unsigned>(q));
        b.expect[static_cast<std::size_t>(v)] =
            d * static_cast<float>(sc) * static_cast<float>(q) - dmin * static_cast<float>(m);
      }
      break;
    case DType::Q3_K:
      put_f16(p + 108, d);
      for (int v = 0; v < 256; ++v) {
        const int j = v / 16, u = code(j, 64, 0), q = level(v, 8) - 4;  // u = scale + 32
        if (v % 16 == 0) {
          put_bits(p + 96, j < 8 ? 8 * j : 8 * (j - 8) + 4, 4, static_cast<unsigned>(u & 15));
          put_bits(p + 96, 8 * (8 + j % 4) + 2 * (j / 4), 2, static_cast<unsigned>(u >> 4));
        }
        put_bits(p, 8 * (v % 32) + v / 32, 1, static_cast<unsigned>((q + 4) >> 2));
        put_bits(p + 32, 8 * (32 * (v / 128) + v % 32) + 2 * ((v % 128) / 32), 2, static_cast<unsigned>((q + 4) & 3));
        b.expect[static_cast<std::size_t>(v)] = d * static_cast<float>(u - 32) * static_cast<float>(q);
      }
      break;
    case DType::Q4_K:
    case DType::Q5_K:
      put_f16(p, d);
      put_f16(p + 2, dmin);
      for (int v = 0; v < 256; ++v) {
        const int j = v / 32, sc = code(j, 64, 0), m = code(j, 64, 2);
        const int q = level(v, t == DType::Q4_K ? 16 : 32);
        if (v % 32 == 0) {
          if (j < 4) {
            put_bits(p + 4, 8 * j, 6, static_cast<unsigned>(sc));
            put_bits(p + 4, 8 * (j + 4), 6, static_cast<unsigned>(m));
          } else {
            put_bits(p + 4, 8 * (j + 4), 4, static_cast<unsigned>(sc & 15));
            put_bits(p + 4, 8 * (j - 4) + 6, 2, static_cast<unsigned>(sc >> 4));
            put_bits(p + 4, 8 * (j + 4) + 4, 4, static_cast<unsigned>(m & 15));
            put_bits(p + 4, 8 * j + 6, 2, static_cast<unsigned>(m >> 4));
          }
        }
        const int qs = t == DType::Q4_K ? 16 : 48;
        put_bits(p + qs, 8 * (32 * (v / 64) + v % 32) + (v % 64 < 32 ? 0 : 4), 4, static_cast<unsigned>(q & 15));
        if (t == DType::Q5_K) put_bits(p + 16, 8 * (v % 32) + v / 32, 1, static_cast<unsigned>(q >> 4));
        b.expect[static_cast<std::size_t>(v)] =
            d * static_cast<float>(sc) * static_cast<float>(q) - dmin * static_cast<float>(m);
      }
      break;
    default:  // Q6_K
      put_f16(p + 208, d);
      for (int v = 0; v < 256; ++v) {
        const int j = v / 16, sc = code(j, 256, 0) - 128, u = level(v, 64);  // u = q + 32
        if (v % 16 == 0) p[192 + j] = static_cast<unsigned char>(static_cast<std::int8_t>(sc));
        const int h = v / 128, tq = (v % 128) / 32, l = v % 32;
        put_bits(p, 8 * (64 * h + 32 * (tq & 1) + l) + 4 * (tq >> 1), 4, static_cast<unsigned>(u & 15));
        put_bits(p + 128, 8 * (32 * h + l) + 2 * tq, 2, static_cast<unsigned>(u >> 4));
        b.expect[static_cast<std::size_t>(v)] = d * static_cast<float>(sc) * static_cast<float>(u - 32);
      }
      break;
  }
  return b;
}

// ---------------------------------------------------------------- llama.cpp's figures (see the file comment)

struct Reference {
  DType type;
  double rms[edgespec::test::kRowKinds];  // RMS(dequantize(ggml_quantize_chunk(row)) - row), rows 1000..1003
  double max_rel_rms;                     // our bound on RMS error / RMS of the rows, per kind
  std::uint64_t vector_digest;            // FNV-1a of the floats llama.cpp dequantizes tests/data/quants/<t>.bin to
  float dots[3];                          // vec_dot(the 8 blocks, Q8_K(quant_row(kind, 500, 2048))), kinds below
};
constexpr int kDotKinds[3] = {test::kBell, test::kOutliers, test::kVarying};

constexpr Reference kReference[] = {
    {DType::Q2_K, {2.576022e-03, 4.864150e-03, 2.678578e-03, 1.966769e-03, 2.466734e-06, 1.352450e-03, 4.228918e-03},
     0.28, 0xefb5317b910a0fb6ull, {0.00681662885f, 0.00158142019f, -0.00261348602f}},
    {DType::Q3_K, {1.314952e-03, 3.189722e-03, 2.122910e-03, 4.521595e-04, 1.290931e-06, 6.718091e-04, 2.289048e-03},
     0.18, 0xe864de364bfa12fdull, {0.004574297f, 0.00115057547f, -0.00198397413f}},
    {DType::Q4_K, {6.255390e-04, 1.950109e-03, 6.236932e-04, 2.622194e-04, 9.179082e-07, 3.600890e-04, 9.845406e-04},
     0.11, 0xc79c4bcfd33329f4ull, {0.00515172072f, -0.00023753196f, -0.00137867546f}},
    {DType::Q5_K, {3.168530e-04, 9.836824e-04, 3.106564e-04, 1.591976e-04, 1.976195e-05, 1.839112e-04, 4.994182e-04},
     0.053, 0x8d643480417baf75ull, {0.00540448166f, 9.14717093e-05f, -0.00152010191f}},
    {DType::Q6_K, {1.560414e-04, 6.112094e-04, 2.542615e-04, 5.302293e-05, 8.631166e-06, 7.946841e-05, 2.415812e-04},
     0.034, 0x45e3f2e37b7f0b4full, {0.00537595991f, 9.50787216e-06f, -0.00165628758f}},
};

// llama.cpp's quantize_row_q8_K on test::q8_K_special_rows() followed by quant_row(kind, 7, 1024) for every kind
// (36 blocks, buffer zeroed first: llama.cpp leaves an all-zero block's bsums unwritten).
constexpr std::uint64_t kQ8KDigest = 0xf847c1bdca47ab41ull;

std::vector<unsigned char> test_vector(DType t) {
  std::string n(name(t));
  for (char& c : n) c = c == 'Q' ? 'q' : c;
  const auto path = std::filesystem::path(EDGESPEC_TEST_DATA_DIR) / "quants" / (n + ".bin");
  std::ifstream f(path, std::ios::binary);
  REQUIRE(f.good());
  std::vector<unsigned char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  REQUIRE(static_cast<std::int64_t>(bytes.size()) == 8 * block_bytes(t));
  return bytes;
}

// ---------------------------------------------------------------- matmul reference

std::vector<float> q8_K_values(const std::vector<float>& x, std::int64_t cols) {
  const std::int64_t n = static_cast<std::int64_t>(x.size()) / cols;
  std::vector<float> out(x.size());
  std::vector<BlockQ8_K> a(static_cast<std::size_t>(cols / 256));
  for (std::int64_t j = 0; j < n; ++j) {
    quantize_row_q8_K(x.data() + j * cols, a.data(), cols);
    for (std::int64_t i = 0; i < cols; ++i)
      out[static_cast<std::size_t>(j * cols + i)] =
          a[static_cast<std::size_t>(i / 256)].d * a[static_cast<std::size_t>(i / 256)].q[i % 256];
  }
  return out;
}

// y (n, rows) against sum_i w[r][i] * xq[j][i] in double, within tol * sum_i |w[r][i] * xq[j][i]|.
void check_against_reference(const std::vector<float>& y, const std::vector<float>& w, const std::vector<float>& xq,
                             std::int64_t rows, std::int64_t cols, std::int64_t n, double tol) {
  for (std::int64_t j = 0; j < n; ++j)
    for (std::int64_t r = 0; r < rows; ++r) {
      double ref = 0, mag = 0;
      for (std::int64_t i = 0; i < cols; ++i) {
        const double p =
            static_cast<double>(w[static_cast<std::size_t>(r * cols + i)]) * xq[static_cast<std::size_t>(j * cols + i)];
        ref += p;
        mag += std::fabs(p);
      }
      const double got = y[static_cast<std::size_t>(j * rows + r)];
      if (!(std::fabs(got - ref) <= tol * mag + 1e-30)) {
        INFO("row " << r << " position " << j << ": got " << got << ", reference " << ref << ", magnitude " << mag);
        CHECK(std::fabs(got - ref) <= tol * mag + 1e-30);
      }
    }
}

}  // namespace

TEST_CASE("quants_k: dequantizers reproduce hand-built blocks", "[quants_k]") {
  for (DType t : kTypes) {
    DYNAMIC_SECTION(name(t)) {
      for (int pattern = 0; pattern < 2; ++pattern) {
        const HandBlock b = hand_block(t, pattern);
        std::vector<unsigned char> unaligned(b.bytes.size() + 1);
        std::memcpy(unaligned.data() + 1, b.bytes.data(), b.bytes.size());
        const auto y = dequantize(t, unaligned.data() + 1, 256);
        for (int v = 0; v < 256; ++v) {
          INFO("pattern " << pattern << " value " << v);
          REQUIRE(y[static_cast<std::size_t>(v)] == b.expect[static_cast<std::size_t>(v)]);
        }
      }
    }
  }
}

TEST_CASE("quants_k: NaN, inf and zero super-scales", "[quants_k]") {
  ThreadPool pool(1);
  const auto f = quant_row(test::kBell, 11, 512), x = quant_row(test::kBell, 12, 2 * 512);
  for (DType t : kTypes) {
    DYNAMIC_SECTION(name(t)) {
      // rows: quantized x, then the same with d = 0 (and dmin = 0), d = inf, d = NaN in every block
      const std::int64_t rb = row_bytes(t, 512);
      const auto row = quantize_unaligned(t, f);
      std::vector<unsigned char> w(static_cast<std::size_t>(4 * rb + 1));
      const std::size_t d_at = t == DType::Q2_K ? 80 : t == DType::Q3_K ? 108 : t == DType::Q6_K ? 208 : 0;
      const bool has_dmin = t == DType::Q2_K || t == DType::Q4_K || t == DType::Q5_K;
      const std::uint16_t special[3] = {0, 0x7c00, 0x7e00};
      for (int r = 0; r < 4; ++r) {
        unsigned char* dst = w.data() + 1 + r * rb;
        std::memcpy(dst, row.data() + 1, static_cast<std::size_t>(rb));
        if (r == 0) continue;
        for (int b = 0; b < 2; ++b) {
          std::memcpy(dst + b * block_bytes(t) + d_at, &special[r - 1], 2);
          if (has_dmin) std::memcpy(dst + b * block_bytes(t) + d_at + 2, &special[r - 1], 2);
        }
      }
      const auto zero = dequantize(t, w.data() + 1 + rb, 512);
      for (float v : zero) REQUIRE(v == 0.0f);
      (void)dequantize(t, w.data() + 1 + 2 * rb, 512);
      (void)dequantize(t, w.data() + 1 + 3 * rb, 512);
      std::vector<float> y(8);
      matmul(pool, MatrixView{t, 4, 512, w.data() + 1}, x.data(), 2, y.data());
      // y (2 positions, 4 rows): the intact row as the reference says, the others 0, non-finite, NaN
      check_against_reference({y[0], y[4]}, dequantize(t, w.data() + 1, 512), q8_K_values(x, 512), 1, 512, 2, 1e-5);
      CHECK((y[1] == 0.0f && y[5] == 0.0f));
      CHECK((!std::isfinite(y[2]) && !std::isfinite(y[6])));
      CHECK((std::isnan(y[3]) && std::isnan(y[7])));
    }
  }
}

TEST_CASE("quants_k: quantizer error is at most llama.cpp's", "[quants_k]") {
  for (const Reference& ref : kReference) {
    DYNAMIC_SECTION(name(ref.type)) {
      for (int kind = 0; kind < test::kRowKinds; ++kind) {
        double se = 0, ss = 0;
        for (int r = 0; r < 4; ++r) {
          const auto x = quant_row(kind, 1000 + static_cast<std::uint64_t>(r), 2048);
          const auto q = quantize_unaligned(ref.type, x);
          const auto y = dequantize(ref.type, q.data() + 1, 2048);
          for (std::size_t i = 0; i < x.size(); ++i) {
            se += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
            ss += static_cast<double>(x[i]) * x[i];
          }
        }
        const double rms = std::sqrt(se / (4 * 2048)), rel = std::sqrt(se / ss);
        INFO("kind " << kind << ": RMS " << rms << " (llama.cpp " << ref.rms[kind] << "), relative " << rel);
        CHECK(rms <= 1.02 * ref.rms[kind]);
        CHECK(rel <= ref.max_rel_rms);
      }
    }
  }
}

TEST_CASE("quants_k: quantizer input checks", "[quants_k]") {
  std::vector<float> x(512, 0.5f);
  std::vector<unsigned char> out(static_cast<std::size_t>(row_bytes(DType::Q6_K, 512)));
  for (DType t : kTypes) {
    CHECK_THROWS_AS(quantize_row(t, x.data(), out.data(), 300), Error);
    x[300] = std::nanf("");
    CHECK_THROWS_WITH(quantize_row(t, x.data(), out.data(), 512), Catch::Contains("x[300]"));
    x[300] = INFINITY;
    CHECK_THROWS_AS(quantize_row(t, x.data(), out.data(), 512), Error);
    x[300] = 1e30f;  // finite, but its super-scale overflows f16
    CHECK_THROWS_WITH(quantize_row(t, x.data(), out.data(), 512), Catch::Contains("f16"));
    x[300] = 0.5f;
  }
  // constant and all-zero rows are represented exactly (scale 0 with a min, or everything 0)
  for (float c : {0.0f, -0.25f}) {
    std::vector<float> flat(256, c);
    for (DType t : {DType::Q2_K, DType::Q4_K, DType::Q5_K}) {
      const auto q = quantize_unaligned(t, flat);
      const auto y = dequantize(t, q.data() + 1, 256);
      for (float v : y) REQUIRE(std::fabs(v - c) <= 1e-3f * std::fabs(c));
    }
  }
}

TEST_CASE("quants_k: dequantizers match llama.cpp on its own blocks", "[quants_k]") {
  for (const Reference& ref : kReference) {
    DYNAMIC_SECTION(name(ref.type)) {
      const auto blocks = test_vector(ref.type);
      std::vector<unsigned char> unaligned(blocks.size() + 1);
      std::memcpy(unaligned.data() + 1, blocks.data(), blocks.size());
      const auto y = dequantize(ref.type, unaligned.data() + 1, 8 * 256);
      CHECK(fnv1a(y.data(), y.size() * sizeof(float)) == ref.vector_digest);
    }
  }
}

TEST_CASE("quants_k: quantize_row_q8_K is llama.cpp's", "[quants_k]") {
  auto x = test::q8_K_special_rows();
  for (int kind = 0; kind < test::kRowKinds; ++kind) {
    const auto r = quant_row(kind, 7, 1024);
    x.insert(x.end(), r.begin(), r.end());
  }
  std::vector<BlockQ8_K> a(x.size() / 256);
  quantize_row_q8_K(x.data(), a.data(), static_cast<std::int64_t>(x.size()));
  CHECK(fnv1a(a.data(), a.size() * sizeof(BlockQ8_K)) == kQ8KDigest);
  // the structure the digest stands for: bsums are the sums, |q| <= 127, d = max / -127
  for (std::size_t b = 0; b < a.size(); ++b) {
    for (int j = 0; j < 16; ++j) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += a[b].q[16 * j + i];
      REQUIRE(a[b].bsums[j] == s);
    }
  }
  CHECK(a[1].d == 0.0f);  // the all-zero block
  // block 2: max 127, so -127 / max = -1 and q = nearest_int(-x): x = 0.5, 1, 1.5 -> 0, -1, -2 (ties to even)
  CHECK(a[2].d == -1.0f);
  CHECK((a[2].q[128] == 0 && a[2].q[129] == -1 && a[2].q[130] == -2));
  // block 3: -0.25 at 5 comes before 0.25 at 200, so max = -0.25, d > 0 and q = -127, 127 there
  CHECK(a[3].d > 0.0f);
  CHECK((a[3].q[5] == -127 && a[3].q[200] == 127));
}

TEST_CASE("quants_k: dot products match llama.cpp's vec_dot", "[quants_k]") {
  for (const Reference& ref : kReference) {
    DYNAMIC_SECTION(name(ref.type)) {
      const auto blocks = test_vector(ref.type);
      const auto w = dequantize(ref.type, blocks.data(), 2048);
      ThreadPool pool(1);
      for (int k = 0; k < 3; ++k) {
        const auto x = quant_row(kDotKinds[k], 500, 2048);
        float y = 0;
        matmul(pool, MatrixView{ref.type, 1, 2048, blocks.data()}, x.data(), 1, &y);
        const auto xq = q8_K_values(x, 2048);
        double mag = 0;
        for (std::size_t i = 0; i < w.size(); ++i) mag += std::fabs(static_cast<double>(w[i]) * xq[i]);
        INFO("kind " << kDotKinds[k] << ": edgespec " << y << ", llama.cpp " << ref.dots[k]);
        CHECK(std::fabs(static_cast<double>(y) - ref.dots[k]) <= 1e-6 * mag);
      }
    }
  }
}

TEST_CASE("quants_k: matmul against a double reference, batched, threaded", "[quants_k]") {
  struct Shape {
    std::int64_t rows, cols, n;
  };
  std::vector<Shape> shapes = {{1, 256, 1},  {3, 256, 33},   {8, 512, 2}, {67, 2048, 5},
                               {24, 768, 9}, {13, 1536, 16}, {9, 1536, 1}};
  for (std::int64_t n = 1; n <= 33; ++n) shapes.push_back({11, n % 2 != 0 ? 256 : 1536, n});  // every n
  for (std::int64_t n = 1; n <= 17; ++n) shapes.push_back({35, n % 2 != 0 ? 256 : 1536, n});  // packed: 2 groups + 3 rows
  ThreadPool one(1), two(2);
  for (DType t : kTypes) {
    DYNAMIC_SECTION(name(t)) {
      for (const Shape& s : shapes)
      for (const bool packed : {false, true}) {
        // packed (packed_k.hpp: Q4_K in AVX-512 VNNI builds): whole 16-row groups from the packed copy, the rest
        // row-major
        if (packed && !(kPackedKernels && packable(t, s.cols) && s.rows >= kPackRows)) continue;
        INFO(s.rows << " x " << s.cols << ", n = " << s.n << (packed ? ", packed" : ""));
        const auto f = quant_row(test::kOutliers, static_cast<std::uint64_t>(s.rows * 7 + s.cols), s.rows * s.cols);
        const std::int64_t rb = row_bytes(t, s.cols);
        std::vector<unsigned char> bytes(static_cast<std::size_t>(s.rows * rb + 1));
        std::vector<float> w(f.size());
        for (std::int64_t r = 0; r < s.rows; ++r) {
          quantize_row(t, f.data() + r * s.cols, bytes.data() + 1 + r * rb, s.cols);
          dequantize_row(t, bytes.data() + 1 + r * rb, w.data() + r * s.cols, s.cols);
        }
        MatrixView mv{t, s.rows, s.cols, bytes.data() + 1};
        std::shared_ptr<std::byte> packed_copy;
        if (packed) {
          packed_copy = allocate_aligned(static_cast<std::size_t>(packed_bytes(t, s.rows, s.cols)));
          pack_rows(t, mv.data, s.rows, s.cols, packed_copy.get());
          mv.packed = packed_copy.get();
        }
        const auto x = quant_row(test::kBell, static_cast<std::uint64_t>(s.n), s.n * s.cols);
        std::vector<float> y(static_cast<std::size_t>(s.n * s.rows)), y2(y.size()), y1(y.size());
        if (s.cols == 1536) matmul<1536>(one, mv, x.data(), s.n, y.data());
        else matmul(one, mv, x.data(), s.n, y.data());
        check_against_reference(y, w, q8_K_values(x, s.cols), s.rows, s.cols, s.n, 1e-5);
        matmul(two, mv, x.data(), s.n, y2.data());
        CHECK(std::memcmp(y.data(), y2.data(), y.size() * sizeof(float)) == 0);
        for (std::int64_t j = 0; j < s.n; ++j) matmul(one, mv, x.data() + j * s.cols, 1, y1.data() + j * s.rows);
        CHECK(std::memcmp(y.data(), y1.data(), y.size() * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("quants_k: SmolLM2 Q4_K_M tensors (quantizer within 2% of llama.cpp's, kernel = dequantizer)",
          "[quants_k][model]") {
  namespace fs = std::filesystem;
  const std::string file = "smollm2-135m-instruct-q4_k_m.gguf";
  fs::path kq = test::model_dir() / "gguf" / file;
  if (!fs::exists(kq))
    if (const char* ref = std::getenv("EDGESPEC_REF_DIR"); ref != nullptr && *ref != '\0') kq = fs::path(ref) / file;
  const fs::path src = test::model_dir() / "gguf" / "smollm2-135m-instruct-q4_1.gguf";
  if (!fs::exists(kq) || !fs::exists(src)) {
    WARN("SKIPPED: the SmolLM2 Q4_K_M check needs " << file
                                                    << " in EDGESPEC_MODEL_DIR/gguf or EDGESPEC_REF_DIR (made by "
                                                       "llama-quantize from the F32 dequantization of "
                                                    << src << "); neither was found");
    return;
  }
  const GgufFile kfile(kq.string()), sfile(src.string());
  ThreadPool pool(2);
  for (DType t : {DType::Q4_K, DType::Q6_K}) {
    double se_llama = 0, se_ours = 0;
    std::int64_t count = 0, tensors = 0;
    for (const auto& ti : kfile.tensors()) {
      if (ti.type != t) continue;
      const auto& si = sfile.tensor(ti.name);
      const std::int64_t cols = ti.ne[0], rows = ti.n_elements() / cols;
      REQUIRE(si.n_elements() == ti.n_elements());
      const std::int64_t rb = row_bytes(t, cols), sb = row_bytes(si.type, cols);
      std::vector<float> x(static_cast<std::size_t>(cols)), yl(x.size()), yo(x.size());
      std::vector<unsigned char> q(static_cast<std::size_t>(rb));
      std::vector<float> w(static_cast<std::size_t>(rows * cols));
      for (std::int64_t r = 0; r < rows; ++r) {
        dequantize_row(si.type, si.data + r * sb, x.data(), cols);
        dequantize_row(t, ti.data + r * rb, yl.data(), cols);
        quantize_row(t, x.data(), q.data(), cols);
        dequantize_row(t, q.data(), yo.data(), cols);
        for (std::int64_t i = 0; i < cols; ++i) {
          se_llama += (static_cast<double>(yl[i]) - x[i]) * (static_cast<double>(yl[i]) - x[i]);
          se_ours += (static_cast<double>(yo[i]) - x[i]) * (static_cast<double>(yo[i]) - x[i]);
        }
        std::copy(yl.begin(), yl.end(), w.begin() + r * cols);
      }
      count += rows * cols;
      ++tensors;
      // the file's tensor through the kernel, 3 positions
      const auto xa = quant_row(test::kBell, static_cast<std::uint64_t>(tensors), 3 * cols);
      std::vector<float> y(static_cast<std::size_t>(3 * rows));
      MatrixView mv{t, rows, cols, ti.data};
      matmul(pool, mv, xa.data(), 3, y.data());
      check_against_reference(y, w, q8_K_values(xa, cols), rows, cols, 3, 1e-5);
      if (kPackedKernels && packable(t, cols) && rows >= kPackRows) {  // and through its packed copy
        auto copy = allocate_aligned(static_cast<std::size_t>(packed_bytes(t, rows, cols)));
        pack_rows(t, ti.data, rows, cols, copy.get(), &pool);
        mv.packed = copy.get();
        matmul(pool, mv, xa.data(), 3, y.data());
        INFO(ti.name << " packed");
        check_against_reference(y, w, q8_K_values(xa, cols), rows, cols, 3, 1e-5);
      }
    }
    const double rms_llama = std::sqrt(se_llama / static_cast<double>(count));
    const double rms_ours = std::sqrt(se_ours / static_cast<double>(count));
    INFO(name(t) << ": " << tensors << " tensors, RMS error llama.cpp " << rms_llama << ", edgespec " << rms_ours);
    CHECK(tensors > 0);
    CHECK(rms_ours <= 1.02 * rms_llama);
  }
}

namespace {
// The packed K-quant layouts (packed_k.hpp) hold every byte of the rows they replace: packing rows of type t, then
// reading each (row, super-block) back with `unpack` (row i of a group, its super-block at blk -> the row-major
// block at out) from the offsets packed_k.hpp documents, gives the row-major blocks.
template <class Unpack>
void check_packed_round_trip(DType t, std::int64_t rows, std::int64_t cols, std::int64_t packed_block, Unpack unpack) {
  const std::int64_t nb = cols / kQKK, rb = row_bytes(t, cols), bb = block_bytes(t);
  const auto f = quant_row(test::kOutliers, static_cast<std::uint64_t>(rows + cols), rows * cols);
  std::vector<unsigned char> bytes(static_cast<std::size_t>(rows * rb));
  for (std::int64_t r = 0; r < rows; ++r) quantize_row(t, f.data() + r * cols, bytes.data() + r * rb, cols);
  std::vector<unsigned char> packed(static_cast<std::size_t>(packed_bytes(t, rows, cols)));
  CHECK(packed.size() == static_cast<std::size_t>(rows / kPackRows * nb * packed_block));
  pack_rows(t, bytes.data(), rows, cols, packed.data());
  std::vector<unsigned char> out(static_cast<std::size_t>(bb));
  for (std::int64_t r = 0; r < rows / kPackRows * kPackRows; ++r)
    for (std::int64_t b = 0; b < nb; ++b) {
      unpack(packed.data() + (r / kPackRows * nb + b) * packed_block, static_cast<int>(r % kPackRows), out.data());
      INFO(name(t) << " row " << r << " super-block " << b);
      CHECK(std::memcmp(out.data(), bytes.data() + r * rb + b * bb, out.size()) == 0);
    }
}
}  // namespace

TEST_CASE("quants_k: packed Q4_K and Q6_K layouts round trip", "[quants_k][packed]") {
  if (!packable(DType::Q4_K) || !packable(DType::Q6_K)) {
    WARN("SKIPPED: this build has no packed K-quant layouts (they need AVX-512 VNNI)");
    return;
  }
  // Q4_K: d, dmin, the unpacked scale and min codes (packed again here), the quants in 4-byte chunks of 16 rows
  check_packed_round_trip(DType::Q4_K, 37, 768, kQ4KPackedBlock, [](const unsigned char* blk, int i, unsigned char* out) {
    std::memcpy(out, blk + 2 * i, 2);
    std::memcpy(out + 2, blk + 32 + 2 * i, 2);
    std::uint8_t sc[8], m[8];
    for (int j = 0; j < 8; ++j) {
      sc[j] = blk[kQ4KPackedSc + 16 * j + i];
      m[j] = blk[kQ4KPackedMin + 32 * (j / 2) + 2 * i + j % 2];
    }
    detail::kquant::pack_scales_k4(sc, m, out + 4);
    for (int c = 0; c < 32; ++c) std::memcpy(out + 16 + 4 * c, blk + kQ4KPackedQuants + (16 * c + i) * 4, 4);
  });
  // Q6_K: ql and qh in 4-byte chunks of 16 rows, the scale pairs, d
  check_packed_round_trip(DType::Q6_K, 33, 512, kQ6KPackedBlock, [](const unsigned char* blk, int i, unsigned char* out) {
    for (int c = 0; c < 32; ++c) std::memcpy(out + 4 * c, blk + kQ6KPackedQl + (16 * c + i) * 4, 4);
    for (int c = 0; c < 16; ++c) std::memcpy(out + 128 + 4 * c, blk + kQ6KPackedQh + (16 * c + i) * 4, 4);
    for (int t = 0; t < 8; ++t) std::memcpy(out + 192 + 2 * t, blk + kQ6KPackedSc + 32 * t + 2 * i, 2);
    std::memcpy(out + 208, blk + 2 * i, 2);
  });
}
