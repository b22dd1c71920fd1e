// Q4_1, Q5_0, Q5_1, IQ4_NL: dequantizers, quantizers, the Q8_0/Q8_1 activation quantizers and the matmul kernels,
// against hand-built blocks, a double-precision reference, and data recorded from llama.cpp (commit c392e50).
//
// How the llama.cpp digests and values below were produced: a throwaway C++ program (not in this repository)
// with this file's input generators copied verbatim, linked against llama.cpp's build/bin/libggml-base.so and
// libggml-cpu.so (GGML_NATIVE on an AVX2/FMA/F16C host), called ggml_cpu_init() and then
//   quantizers   ggml_quantize_chunk(Q4_1 / Q5_0 / Q5_1, weight_input(96, 1), dst, 0, 12 rows, 256, NULL) -> FNV-1a 64
//   dequantizers ggml_get_type_traits(type)->to_float(any_blocks(..., 256, 2), y, 8192)     -> FNV-1a 64 of y
//   activations  ggml_get_type_traits_cpu(Q8_0 / Q8_1)->from_float(act_input(64, 3), dst, 2048) -> FNV-1a 64
//   IQ4_NL error ggml_quantize_chunk(IQ4_NL, realistic_input(64 * 576, 4), 64 rows of 576), to_float, then
//                sqrt(mean((y - x)^2)) in double
//   products     ggml_get_type_traits_cpu(type)->vec_dot(576, &s, 0, row r of random_blocks(3 * 18, 10 + i), 0,
//                from_float(vec_dot_type) of position p of 2 x 576 normalish(1) values (Rng{20}), 0, 1),
//                printed with %a
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "edgespec/kernels/matmul.hpp"

using namespace edgespec;

namespace {

// ---- deterministic inputs: integer arithmetic and exactly rounded IEEE operations only, so every platform
// (and the program that recorded llama.cpp's results) generates the same floats.
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {  // splitmix64
    std::uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // sum of four 24-bit uniforms, centred: ~ N(0, 1/3) * scale
  float normalish(float scale) {
    std::int64_t v = -(std::int64_t{1} << 25);
    for (int i = 0; i < 4; ++i) v += static_cast<std::int64_t>(next() >> 40);
    return static_cast<float>(v) * 0x1p-24f * scale;
  }
};

// nb blocks of 32 weights: 13 edge blocks, then normal-ish blocks at cycling scales.
std::vector<float> weight_input(std::int64_t nb, std::uint64_t seed) {
  static const float kScales[] = {0.02f, 0.1f, 1.0f, 0.005f, 4.0f, 0.05f};
  static const float kGrid[] = {0x1.6cp-8f, 0x1.05ap-7f, 0x1.c7p-9f, 0x1.32p-7f};
  Rng g{seed};
  std::vector<float> x(static_cast<std::size_t>(nb * 32));
  for (std::int64_t b = 0; b < nb; ++b) {
    float* xb = x.data() + b * 32;
    for (int j = 0; j < 32; ++j) xb[j] = g.normalish(kScales[b % 6]);
    switch (b) {
      case 0: for (int j = 0; j < 32; ++j) xb[j] = 0.0f; break;                       // all zero
      case 1: for (int j = 0; j < 32; ++j) xb[j] *= 0.5f; xb[7] = 1.0e6f; break;     // huge: f16 scale overflows
      case 2: xb[20] = -3000.0f; break;                                               // one large negative
      case 3: for (int j = 0; j < 32; ++j) xb[j] = -(xb[j] < 0 ? -xb[j] : xb[j]) - 0.25f; break;  // negative only
      case 4: for (int j = 0; j < 32; ++j) xb[j] = 0.75f; break;                      // constant
      case 5: for (int j = 0; j < 32; ++j) xb[j] = static_cast<float>(j - 16); break; // on the grid: ties
      case 6: for (int j = 0; j < 32; ++j) xb[j] = g.normalish(1e-30f); break;       // tiny: f16 scale underflows
      case 7: for (int j = 0; j < 32; ++j) xb[j] = 0.0f; xb[3] = 0.5f; break;        // one nonzero
      case 8: for (int j = 0; j < 32; ++j) xb[j] = xb[j] < 0 ? -xb[j] : xb[j]; break; // positive only
      case 9: case 10: case 11: case 12:  // few-bit values (a checkpoint converted from a quantized one): x / d
        for (int j = 0; j < 32; ++j)      // often rounds onto an exact half, where an FMA would change the byte
          xb[j] = static_cast<float>(static_cast<int>(g.next() >> 58) - 32) * kGrid[b - 9];
        break;
      default: break;
    }
  }
  return x;
}

// nb blocks of 32 activations: 9 edge blocks (incl. inf, NaN, subnormal), then normal-ish blocks.
std::vector<float> act_input(std::int64_t nb, std::uint64_t seed) {
  static const float kScales[] = {1.0f, 0.1f, 3.0f, 0.01f, 20.0f};
  Rng g{seed};
  std::vector<float> x(static_cast<std::size_t>(nb * 32));
  for (std::int64_t b = 0; b < nb; ++b) {
    float* xb = x.data() + b * 32;
    for (int j = 0; j < 32; ++j) xb[j] = g.normalish(kScales[b % 5]);
    switch (b) {
      case 0: for (int j = 0; j < 32; ++j) xb[j] = 0.0f; break;
      case 1: xb[3] = std::numeric_limits<float>::infinity(); break;
      case 2: xb[9] = std::numeric_limits<float>::quiet_NaN(); break;
      case 3: for (int j = 0; j < 32; ++j) xb[j] = static_cast<float>(j - 13) * 1e-41f; break;  // subnormal amax
      case 4: xb[0] = 127.0f; for (int j = 1; j < 32; ++j) xb[j] = static_cast<float>(j) - 15.5f; break;  // ties
      case 5: xb[0] = -std::numeric_limits<float>::infinity(); break;
      case 6: for (int j = 0; j < 32; ++j) xb[j] *= 1e38f; break;  // near the f32 limit
      case 7: for (int j = 0; j < 32; ++j) xb[j] = -xb[j] * xb[j]; break;
      case 8: xb[27] = std::numeric_limits<float>::quiet_NaN(); break;  // survives the max tree: d is NaN
      default: break;
    }
  }
  return x;
}

// Realistic weight rows for the IQ4_NL error comparison: per-row scale, every 37th value an outlier.
std::vector<float> realistic_input(std::int64_t n, std::uint64_t seed) {
  Rng g{seed};
  std::vector<float> x(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const float scale = 0.02f + 0.01f * static_cast<float>((i / 576) % 5);
    x[static_cast<std::size_t>(i)] = g.normalish(i % 37 == 0 ? 6.0f * scale : scale);
  }
  return x;
}

// Weight blocks from integers: scales as f16 bits in [2^-9, 2^-8), minimum in -[2^-4, 2^-3).
std::vector<unsigned char> random_blocks(int block_bytes, bool has_min, std::int64_t nb, std::uint64_t seed) {
  Rng g{seed};
  std::vector<unsigned char> out(static_cast<std::size_t>(nb * block_bytes));
  for (std::int64_t b = 0; b < nb; ++b) {
    unsigned char* p = out.data() + b * block_bytes;
    for (int i = 0; i < block_bytes; ++i) p[i] = static_cast<unsigned char>(g.next() >> 56);
    const std::uint16_t d = static_cast<std::uint16_t>(0x1800 + (g.next() >> 53));
    std::memcpy(p, &d, 2);
    if (has_min) {
      const std::uint16_t m = static_cast<std::uint16_t>(0x8000 | (0x2c00 + (g.next() >> 53)));
      std::memcpy(p + 2, &m, 2);
    }
  }
  return out;
}

// Any finite f16 scale (and minimum): for the dequantizers.
std::vector<unsigned char> any_blocks(int block_bytes, bool has_min, std::int64_t nb, std::uint64_t seed) {
  Rng g{seed};
  std::vector<unsigned char> out(static_cast<std::size_t>(nb * block_bytes));
  for (std::int64_t b = 0; b < nb; ++b) {
    unsigned char* p = out.data() + b * block_bytes;
    for (int i = 0; i < block_bytes; ++i) p[i] = static_cast<unsigned char>(g.next() >> 56);
    for (int h = 0; h < (has_min ? 2 : 1); ++h) {
      const std::uint64_t r = g.next();
      const std::uint16_t v = static_cast<std::uint16_t>(((r >> 63) << 15) | ((r >> 20) % 0x7c00));
      std::memcpy(p + 2 * h, &v, 2);
    }
  }
  return out;
}

std::uint64_t fnv1a(const void* data, std::size_t n) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

// ---- the four types and what llama.cpp produced for them (see the top of the file)
struct Case {
  DType t;
  std::uint64_t quant, deq;  // FNV-1a 64 of the quantized bytes, of the dequantized floats
  float dots[6];             // vec_dot of rows 0..2 with positions 0, 1 (position-major)
};
const Case kCases[] = {
    {DType::Q4_1, 0xacf93c7759485374ull, 0x0a50d915e1291690ull,
     {0x1.64397p-2f, -0x1.ed6516p-2f, 0x1.e6aaf8p-1f, 0x1.73fbfcp-1f, 0x1.f44a54p-2f, 0x1.36b074p-2f}},
    {DType::Q5_0, 0xa9425e89dc9e42ebull, 0x8dca455de5aabd8bull,
     {-0x1.7fab8cp-4f, 0x1.942fbcp-2f, 0x1.6384d8p+0f, -0x1.3e410cp-1f, -0x1.43e968p-4f, 0x1.84db54p-2f}},
    {DType::Q5_1, 0x92fd0364e34957ddull, 0x3dfe0be55f37206dull,
     {0x1.15ae96p+0f, -0x1.edab6p-3f, 0x1.ee9f62p-2f, -0x1.1b766p-2f, 0x1.80aaf2p+0f, 0x1.8e8b32p+0f}},
    {DType::IQ4_NL, 0, 0x6b4e307c5c4ee15dull,  // IQ4_NL: error bound instead of bytes
     {-0x1.3de97cp+2f, -0x1.0c608p+1f, 0x1.5d390cp+0f, 0x1.cbae58p-2f, -0x1.8fe0fp-3f, 0x1.35bf64p+1f}},
};
constexpr double kLlamaIq4nlRms = 0.00381855236;  // llama.cpp's IQ4_NL RMS error on realistic_input(64 * 576, 4)

bool has_min(DType t) { return t == DType::Q4_1 || t == DType::Q5_1; }

std::vector<float> dequantize(DType t, const unsigned char* p, std::int64_t k) {
  std::vector<float> y(static_cast<std::size_t>(k));
  dequantize_row(t, p, y.data(), k);
  return y;
}

template <class Block>
const unsigned char* bytes(const Block& b) {
  return reinterpret_cast<const unsigned char*>(&b);
}

}  // namespace

TEST_CASE("legacy dequantizers: hand-built blocks", "[quants_legacy]") {
  std::uint8_t qs[16];
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<std::uint8_t>(j | (15 - j) << 4);
  const std::uint32_t qh = 0x8000'0001u | 0x0001'0000u;  // fifth bits of values 0, 16 and 31
  SECTION("Q4_1: x = d q + m, low nibbles are values 0..15, high nibbles 16..31") {
    BlockQ4_1 b{0x3800, 0xbc00, {}};  // d 0.5, m -1
    std::memcpy(b.qs, qs, 16);
    const auto y = dequantize(DType::Q4_1, bytes(b), 32);
    for (int j = 0; j < 16; ++j) {
      CHECK(y[j] == 0.5f * static_cast<float>(j) - 1.0f);
      CHECK(y[16 + j] == 0.5f * static_cast<float>(15 - j) - 1.0f);
    }
  }
  SECTION("Q5_0: x = d (q - 16), bit j of qh is the fifth bit of value j") {
    BlockQ5_0 b{0x3400, {}, {}};  // d 0.25
    std::memcpy(b.qh, &qh, 4);
    std::memcpy(b.qs, qs, 16);
    const auto y = dequantize(DType::Q5_0, bytes(b), 32);
    CHECK(y[0] == 0.25f * (16 + 0 - 16));   // nibble 0, bit set
    CHECK(y[1] == 0.25f * (1 - 16));        // nibble 1, bit clear
    CHECK(y[15] == 0.25f * (15 - 16));
    CHECK(y[16] == 0.25f * (16 + 15 - 16));  // high nibble of qs[0] = 15, bit 16 set
    CHECK(y[17] == 0.25f * (14 - 16));
    CHECK(y[31] == 0.25f * (16 + 0 - 16));  // high nibble of qs[15] = 0, bit 31 set
  }
  SECTION("Q5_1: x = d q + m with 5-bit q") {
    BlockQ5_1 b{0x4000, 0x3c00, {}, {}};  // d 2, m 1
    std::memcpy(b.qh, &qh, 4);
    std::memcpy(b.qs, qs, 16);
    const auto y = dequantize(DType::Q5_1, bytes(b), 32);
    CHECK(y[0] == 2.0f * 16 + 1);
    CHECK(y[5] == 2.0f * 5 + 1);
    CHECK(y[16] == 2.0f * 31 + 1);
    CHECK(y[20] == 2.0f * 11 + 1);
    CHECK(y[31] == 2.0f * 16 + 1);
  }
  SECTION("IQ4_NL: x = d * table[nibble]") {
    BlockIQ4_NL b{0x4000, {}};  // d 2
    std::memcpy(b.qs, qs, 16);
    const auto y = dequantize(DType::IQ4_NL, bytes(b), 32);
    const float table[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    for (int j = 0; j < 16; ++j) {
      CHECK(y[j] == 2.0f * table[j]);
      CHECK(y[16 + j] == 2.0f * table[15 - j]);
    }
  }
  SECTION("zero, infinite and NaN scales: no crash, IEEE results") {
    for (std::uint16_t d : {std::uint16_t{0x0000}, std::uint16_t{0x7c00}, std::uint16_t{0x7e00}}) {
      BlockQ5_1 b{d, 0x3c00, {}, {}};
      std::memcpy(b.qs, qs, 16);
      const auto y = dequantize(DType::Q5_1, bytes(b), 32);
      if (d == 0x7e00) CHECK(std::isnan(y[1]));
      else CHECK(y[1] == (d == 0 ? 1.0f : std::numeric_limits<float>::infinity()));
      BlockIQ4_NL c{d, {}};
      const auto z = dequantize(DType::IQ4_NL, bytes(c), 32);
      CHECK((d == 0x7e00) == std::isnan(z[0]));
      std::vector<float> x(32, 1.0f), out(1);
      ThreadPool pool(1);
      matmul(pool, MatrixView{DType::Q5_1, 1, 32, bytes(b)}, x.data(), 1, out.data());
      matmul(pool, MatrixView{DType::IQ4_NL, 1, 32, bytes(c)}, x.data(), 1, out.data());
      CHECK((d == 0) == (out[0] == 0.0f));
    }
  }
  std::vector<float> y(40);
  CHECK_THROWS_AS(dequantize_row(DType::Q4_1, qs, y.data(), 40), Error);
  CHECK_THROWS_AS(quantize_row(DType::IQ4_NL, y.data(), qs, 40), Error);
}

TEST_CASE("legacy dequantizers give llama.cpp's floats (any finite scale, unaligned rows)", "[quants_legacy]") {
  for (const Case& c : kCases) {
    const auto blocks = any_blocks(static_cast<int>(block_bytes(c.t)), has_min(c.t), 256, 2);
    std::vector<unsigned char> shifted(blocks.size() + 1);
    std::memcpy(shifted.data() + 1, blocks.data(), blocks.size());
    const auto y = dequantize(c.t, shifted.data() + 1, 256 * 32);
    INFO(name(c.t));
    CHECK(fnv1a(y.data(), y.size() * sizeof(float)) == c.deq);
  }
}

TEST_CASE("Q4_1, Q5_0, Q5_1 quantizers write llama.cpp's bytes; IQ4_NL is as accurate", "[quants_legacy]") {
  const auto x = weight_input(96, 1);
  for (const Case& c : kCases) {
    if (c.t == DType::IQ4_NL) continue;
    const std::int64_t rb = row_bytes(c.t, 256);
    std::vector<unsigned char> q(static_cast<std::size_t>(12 * rb + 1));
    for (std::int64_t r = 0; r < 12; ++r) quantize_row(c.t, x.data() + r * 256, q.data() + 1 + r * rb, 256);
    INFO(name(c.t));
    CHECK(fnv1a(q.data() + 1, q.size() - 1) == c.quant);
  }
  SECTION("IQ4_NL: RMS error within 2% of llama.cpp's; edge blocks stay finite") {
    const std::int64_t rows = 64, cols = 576, rb = row_bytes(DType::IQ4_NL, cols);
    const auto xr = realistic_input(rows * cols, 4);
    std::vector<unsigned char> q(static_cast<std::size_t>(rows * rb + 1));
    double e2 = 0;
    for (std::int64_t r = 0; r < rows; ++r) {
      quantize_row(DType::IQ4_NL, xr.data() + r * cols, q.data() + 1 + r * rb, cols);
      const auto y = dequantize(DType::IQ4_NL, q.data() + 1 + r * rb, cols);
      for (std::int64_t i = 0; i < cols; ++i) {
        const double e =
            static_cast<double>(y[static_cast<std::size_t>(i)]) - xr[static_cast<std::size_t>(r * cols + i)];
        e2 += e * e;
      }
    }
    const double rms = std::sqrt(e2 / static_cast<double>(rows * cols));
    INFO("IQ4_NL RMS " << rms << ", llama.cpp " << kLlamaIq4nlRms);
    CHECK(rms <= 1.02 * kLlamaIq4nlRms);
    CHECK(rms > 0.5 * kLlamaIq4nlRms);  // a 4-bit code cannot do much better: guards the measurement itself

    std::vector<unsigned char> e(static_cast<std::size_t>(row_bytes(DType::IQ4_NL, 9 * 32)));
    quantize_row(DType::IQ4_NL, x.data(), e.data(), 9 * 32);  // weight_input's edge blocks
    const auto y = dequantize(DType::IQ4_NL, e.data(), 9 * 32);
    for (int j = 0; j < 32; ++j) CHECK(y[static_cast<std::size_t>(j)] == 0.0f);  // all zero
    for (float v : y) CHECK(std::isfinite(v));
    CHECK(y[32 + 7] > 0.9e6f);  // the huge value keeps its magnitude
  }
}

TEST_CASE("activation quantizers give llama.cpp's CPU Q8_0 / Q8_1 blocks", "[quants_legacy]") {
  const auto x = act_input(64, 3);
  std::vector<BlockQ8_0> q0(64);
  for (std::size_t b = 0; b < 64; ++b) {
    std::int8_t q[32];
    q0[b].d = fp32_to_fp16(detail::quantize_block_q8_0_act(x.data() + 32 * b, q));
    std::memcpy(q0[b].q, q, 32);
  }
  CHECK(fnv1a(q0.data(), q0.size() * sizeof(BlockQ8_0)) == 0xf96c29f9937c298cull);
  std::vector<BlockQ8_1> q1(64);
  quantize_row_q8_1(x.data(), q1.data(), 2048);
  CHECK(fnv1a(q1.data(), q1.size() * sizeof(BlockQ8_1)) == 0x188fb62d068faf52ull);
  // ties round to even (x * 127/127 = k + 0.5), unlike the weights' roundf
  CHECK(q0[4].q[1] == -14);  // -14.5
  CHECK(q0[4].q[2] == -14);  // -13.5
  CHECK(q0[4].q[3] == -12);  // -12.5
}

namespace {

// The activations a kernel multiplies, dequantized: Q8_0 (Q5_0, IQ4_NL) or Q8_1 (Q4_1, Q5_1) values d * q, and
// for Q8_1 the stored per-block s = d * sum(q) (f16), which the kernel multiplies by the weights' minimum.
struct Acts {
  std::vector<float> v, s;  // (n, cols), (n, cols / 32)
};
Acts effective_acts(DType t, const std::vector<float>& x) {
  const std::int64_t nb = static_cast<std::int64_t>(x.size()) / 32;
  Acts a{std::vector<float>(x.size()), std::vector<float>(static_cast<std::size_t>(nb))};
  for (std::int64_t b = 0; b < nb; ++b) {
    if (activation_type(t) == DType::Q8_1) {
      BlockQ8_1 blk;
      quantize_row_q8_1(x.data() + b * 32, &blk, 32);
      for (int j = 0; j < 32; ++j) a.v[static_cast<std::size_t>(b * 32 + j)] = fp16_to_fp32(blk.d) * blk.q[j];
      a.s[static_cast<std::size_t>(b)] = fp16_to_fp32(blk.s);
    } else {
      std::int8_t q[32];
      const float d = detail::quantize_block_q8_0_act(x.data() + b * 32, q);
      for (int j = 0; j < 32; ++j) a.v[static_cast<std::size_t>(b * 32 + j)] = d * q[j];
    }
  }
  return a;
}

// y (n, rows) of matmul<kCols> on weights stored one byte past an aligned address, equal to n single-position
// calls bit for bit and close to the reference
//   y[j, r] = sum_k (d_w q_w)_k (d_x q_x)_k  +  sum_b m_w,b s_x,b   (Q4_1 / Q5_1: x_w = d_w q_w + m_w)
// in double: |err| <= rel * (sum of |terms|)
// The layouts a matmul of these rows (rows, cols) of type t at w runs in: the row-major rows, and where this build
// packs t (Q4_1, Q5_0, Q5_1) a view of their packed copy. That view's row-major bytes are the rows' own for the
// rows past the last whole group and zero for the grouped rows, so a matmul that read the rows instead of the
// packed copy would compute zeros there and fail the checks.
struct Layouts {
  std::vector<MatrixView> views;
  std::shared_ptr<std::byte> packed;
  std::vector<unsigned char> shadow;
};
Layouts layouts_of(DType t, const unsigned char* w, std::int64_t rows, std::int64_t cols, ThreadPool* pool) {
  Layouts l;
  l.views.push_back(MatrixView{t, rows, cols, w});
  if (!(kPackedKernels && packable(t, cols) && rows >= kPackRows)) return l;
  const std::int64_t rb = row_bytes(t, cols), grouped = rows / kPackRows * kPackRows;
  l.packed = allocate_aligned(static_cast<std::size_t>(packed_bytes(t, rows, cols)));
  pack_rows(t, w, rows, cols, l.packed.get(), pool);
  l.shadow.assign(static_cast<std::size_t>(1 + grouped * rb), 0);  // (one byte in: unaligned, like w)
  l.shadow.insert(l.shadow.end(), w + grouped * rb, w + rows * rb);
  l.views.push_back(MatrixView{t, rows, cols, l.shadow.data() + 1, l.packed.get()});
  return l;
}

template <int kCols = dynamic_extent>
void check_matmul(ThreadPool& pool, DType t, std::int64_t rows, std::int64_t cols, std::int64_t n, unsigned seed) {
  const std::int64_t rb = row_bytes(t, cols), nb = cols / 32;
  Rng g{seed};
  std::vector<float> wf(static_cast<std::size_t>(rows * cols)), x(static_cast<std::size_t>(n * cols));
  for (auto& v : wf) v = g.normalish(0.05f);
  for (auto& v : x) v = g.normalish(1.0f);
  std::vector<unsigned char> buf(static_cast<std::size_t>(rows * rb + 64));
  unsigned char* w = buf.data() + (64 - reinterpret_cast<std::uintptr_t>(buf.data()) % 64) % 64 + 1;
  for (std::int64_t r = 0; r < rows; ++r) quantize_row(t, wf.data() + r * cols, w + r * rb, cols);
  const Layouts layouts = layouts_of(t, w, rows, cols, nullptr);
  std::vector<std::vector<float>> ys;
  for (const MatrixView& view : layouts.views) {
    std::vector<float> y(static_cast<std::size_t>(n * rows), NAN);
    matmul<kCols>(pool, view, x.data(), n, y.data());
    std::vector<float> single(y.size());  // n single positions: bit for bit the batch
    for (std::int64_t j = 0; j < n; ++j) matmul<kCols>(pool, view, x.data() + j * cols, 1, single.data() + j * rows);
    INFO(name(t) << (view.packed != nullptr ? " packed" : " row-major"));
    CHECK(std::memcmp(y.data(), single.data(), y.size() * sizeof(float)) == 0);
    ys.push_back(std::move(y));
  }

  const Acts a = effective_acts(t, x);
  const double rel = 2e-6 * std::sqrt(static_cast<double>(cols)) + 1e-6;
  for (std::int64_t r = 0; r < rows; ++r) {
    // d_w q_w: the row dequantized with its minima set to 0 (exact), and the minima m_w
    std::vector<unsigned char> row(w + r * rb, w + (r + 1) * rb);
    std::vector<float> m(static_cast<std::size_t>(nb), 0.0f);
    for (std::int64_t b = 0; b < nb && has_min(t); ++b) {
      std::uint16_t h;
      std::memcpy(&h, row.data() + b * block_bytes(t) + 2, 2);
      m[static_cast<std::size_t>(b)] = fp16_to_fp32(h);
      std::memset(row.data() + b * block_bytes(t) + 2, 0, 2);
    }
    const auto wq = dequantize(t, row.data(), cols);
    for (std::int64_t j = 0; j < n; ++j) {
      double ref = 0, mag = 0;
      for (std::int64_t b = 0; b < nb; ++b) {
        for (std::int64_t k = b * 32; k < b * 32 + 32; ++k) {
          const double term =
              static_cast<double>(wq[static_cast<std::size_t>(k)]) * a.v[static_cast<std::size_t>(j * cols + k)];
          ref += term;
          mag += std::fabs(term);
        }
        const double term =
            static_cast<double>(m[static_cast<std::size_t>(b)]) * a.s[static_cast<std::size_t>(j * nb + b)];
        ref += term;
        mag += std::fabs(term);
      }
      INFO(name(t) << " rows " << rows << " cols " << cols << " n " << n << " at (" << j << ", " << r << ")");
      for (std::size_t v = 0; v < ys.size(); ++v) {
        INFO((v == 0 ? "row-major" : "packed"));
        REQUIRE(std::fabs(ys[v][static_cast<std::size_t>(j * rows + r)] - ref) <= rel * mag + 1e-30);
      }
    }
  }
}

constexpr DType kTypes[] = {DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::IQ4_NL};

}  // namespace

TEST_CASE("legacy matmul against the double-precision reference", "[quants_legacy][matmul]") {
  for (int threads : {1, 2}) {
    ThreadPool pool(threads);
    for (DType t : kTypes) {
      unsigned seed = 1;
      for (std::int64_t rows : {1, 7, 9, 67})
        for (std::int64_t cols : {32, 96, 1536}) check_matmul(pool, t, rows, cols, rows == 67 ? 3 : 2, seed++);
      for (std::int64_t n = 1; n <= 33; ++n) check_matmul(pool, t, 13 + n % 5, 64, n, seed++);
      for (std::int64_t n = 1; n <= 17; ++n) check_matmul(pool, t, 32 + n % 3, 96, n, seed++);  // 2 groups + rows
      check_matmul<576>(pool, t, 21, 576, 5, seed++);
      check_matmul<576>(pool, t, 8, 576, 1, seed++);
    }
  }
}

TEST_CASE("legacy matmul: batched equals single calls and 1 thread equals 2, bit for bit", "[quants_legacy][matmul]") {
  ThreadPool one(1), two(2);
  const std::int64_t rows = 67, cols = 576, n = 33;
  Rng g{9};
  std::vector<float> wf(static_cast<std::size_t>(rows * cols)), x(static_cast<std::size_t>(n * cols));
  for (auto& v : wf) v = g.normalish(0.05f);
  for (auto& v : x) v = g.normalish(1.0f);
  for (DType t : kTypes) {
    const std::int64_t rb = row_bytes(t, cols);
    std::vector<unsigned char> w(static_cast<std::size_t>(rows * rb + 1));
    for (std::int64_t r = 0; r < rows; ++r) quantize_row(t, wf.data() + r * cols, w.data() + 1 + r * rb, cols);
    const Layouts layouts = layouts_of(t, w.data() + 1, rows, cols, &two);  // packed: 4 groups, then 3 rows
    for (const MatrixView& view : layouts.views) {
      std::vector<float> batched(static_cast<std::size_t>(n * rows)), batched1(batched.size()),
          single(batched.size()), fixed(batched.size());
      matmul(two, view, x.data(), n, batched.data());
      matmul(one, view, x.data(), n, batched1.data());
      matmul<576>(two, view, x.data(), n, fixed.data());
      for (std::int64_t j = 0; j < n; ++j) matmul(two, view, x.data() + j * cols, 1, single.data() + j * rows);
      INFO(name(t) << (view.packed != nullptr ? " packed" : " row-major"));
      CHECK(std::memcmp(batched.data(), single.data(), batched.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(batched.data(), batched1.data(), batched.size() * sizeof(float)) == 0);
      CHECK(std::memcmp(batched.data(), fixed.data(), batched.size() * sizeof(float)) == 0);
    }
  }
}

// Summation order may differ from ggml_vec_dot's (the only tolerance): |y - llama| <= 1e-6 * sum |block terms|.
TEST_CASE("legacy products equal llama.cpp's vec_dot", "[quants_legacy][matmul]") {
  const std::int64_t cols = 576, nb = cols / 32;
  Rng g{20};
  std::vector<float> x(static_cast<std::size_t>(2 * cols));
  for (auto& v : x) v = g.normalish(1.0f);
  ThreadPool pool(1);
  std::uint64_t seed = 10;
  for (const Case& c : kCases) {
    const auto w = random_blocks(static_cast<int>(block_bytes(c.t)), has_min(c.t), 3 * nb, seed++);
    float y[6];
    matmul(pool, MatrixView{c.t, 3, cols, w.data()}, x.data(), 2, y);
    const Acts a = effective_acts(c.t, x);
    for (int i = 0; i < 6; ++i) {
      const std::int64_t p = i / 3, r = i % 3;
      const auto wd = dequantize(c.t, w.data() + r * row_bytes(c.t, cols), cols);
      double mag = 0;
      for (std::int64_t k = 0; k < cols; ++k)
        mag += std::fabs(static_cast<double>(wd[static_cast<std::size_t>(k)]) *
                         a.v[static_cast<std::size_t>(p * cols + k)]);
      INFO(name(c.t) << " row " << r << " position " << p << ": " << y[i] << " vs " << c.dots[i]);
      CHECK(std::fabs(static_cast<double>(y[i]) - c.dots[i]) <= 1e-6 * mag);
    }
  }
}
