// Every OpenCL op against a CPU reference, op by op (as ggml's test-backend-ops): matmul for every weight type
// the device runs, several shapes (rows x cols, cols not a multiple of 16 for F32/F16) and n = 1..16 positions;
// get_rows; rmsnorm; RoPE in both styles; the f16 KV store and grouped-query attention at several positions;
// add, swiglu, argmax. Bound: normalized error max|d - r| / max|r| (r computed in double from the same
// dequantized values) < 1e-5 (1e-3 where f16 rounding of q and the softmax weights enters: attention).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include <edgespec/edgespec.hpp>
#include <edgespec/opencl/transformer.hpp>

namespace {

using namespace edgespec;
using opencl::DeviceMatrix;

std::shared_ptr<opencl::Device> device() {
  static auto d = opencl::Device::open_default();
  return d;
}

cl::Buffer to_buffer(const void* p, std::size_t bytes) {
  return cl::Buffer(device()->context(), CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, std::max<std::size_t>(bytes, 4),
                    const_cast<void*>(p));
}
template <class T>
cl::Buffer to_buffer(const std::vector<T>& v) {
  return to_buffer(v.data(), v.size() * sizeof(T));
}
template <class T>
std::vector<T> read(const cl::Buffer& b, std::size_t count) {
  std::vector<T> out(count);
  device()->queue().enqueueReadBuffer(b, CL_TRUE, 0, count * sizeof(T), out.data());
  return out;
}

std::vector<float> random_vector(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

double normalized_error(const std::vector<float>& got, const std::vector<double>& want) {
  double e = 0.0, m = 1e-30;
  for (std::size_t i = 0; i < want.size(); ++i) {
    e = std::max(e, std::fabs(static_cast<double>(got[i]) - want[i]));
    m = std::max(m, std::fabs(want[i]));
  }
  return e / m;
}

ModelConfig config(RopeStyle style = RopeStyle::Normal) {
  ModelConfig c;
  c.dim = 128;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;  // GQA: 2 query heads per K/V head, head_dim 32
  c.ffn_dim = 172;
  c.vocab_size = 300;
  c.max_seq = 64;
  c.rope_style = style;
  return c;
}

float round_f16(float x) { return fp16_to_fp32(fp32_to_fp16(x)); }

}  // namespace

TEST_CASE("matmul on the device equals the reference for every type, shape and n", "[opencl][ops]") {
  const DType type = GENERATE(DType::F32, DType::F16, DType::Q8_0, DType::Q4_0);
  const auto [rows, cols] = GENERATE(std::pair{64, 64}, std::pair{172, 128}, std::pair{300, 576}, std::pair{33, 96});
  if (block_values(type) > 1 && cols % 32 != 0) return;
  INFO(name(type) << " " << rows << " x " << cols);
  opencl::Ops<> ops(device(), config());
  const std::vector<float> w = random_vector(static_cast<std::size_t>(rows * cols), 1);
  std::vector<std::byte> q(static_cast<std::size_t>(row_bytes(type, cols) * rows));
  for (int r = 0; r < rows; ++r)
    quantize_row(type, w.data() + r * cols, q.data() + row_bytes(type, cols) * r, cols);
  std::vector<float> wd(w.size());  // the values the device multiplies: w as stored
  for (int r = 0; r < rows; ++r) dequantize_row(type, q.data() + row_bytes(type, cols) * r, wd.data() + r * cols, cols);
  const MatrixView view{type, rows, cols, q.data()};
  const DeviceMatrix m = opencl::to_device(view, "test", [](const void* p, std::size_t b) { return to_buffer(p, b); });
  for (int n : {1, 3, 4, 5, 8, 16}) {
    INFO("n = " << n);
    const std::vector<float> x = random_vector(static_cast<std::size_t>(n * cols), 2);
    const cl::Buffer xb = to_buffer(x), yb = to_buffer(std::vector<float>(static_cast<std::size_t>(n * rows)));
    ops.matmul(m, xb, yb, n);
    std::vector<double> want(static_cast<std::size_t>(n * rows));
    for (int i = 0; i < n; ++i)
      for (int r = 0; r < rows; ++r) {
        double s = 0.0;
        for (int j = 0; j < cols; ++j) s += static_cast<double>(wd[r * cols + j]) * x[i * cols + j];
        want[static_cast<std::size_t>(i * rows + r)] = s;
      }
    CHECK(normalized_error(read<float>(yb, want.size()), want) < 1e-5);
  }
}

TEST_CASE("get_rows on the device returns the embedding rows", "[opencl][ops]") {
  const DType type = GENERATE(DType::F32, DType::F16, DType::Q8_0, DType::Q4_0);
  INFO(name(type));
  const ModelConfig c = config();
  opencl::Ops<> ops(device(), c);
  const std::vector<float> w = random_vector(static_cast<std::size_t>(c.vocab_size * c.dim), 3);
  std::vector<std::byte> q(static_cast<std::size_t>(row_bytes(type, c.dim) * c.vocab_size));
  for (int r = 0; r < c.vocab_size; ++r) quantize_row(type, w.data() + r * c.dim, q.data() + row_bytes(type, c.dim) * r, c.dim);
  const DeviceMatrix m = opencl::to_device(MatrixView{type, c.vocab_size, c.dim, q.data()}, "test",
                                           [](const void* p, std::size_t b) { return to_buffer(p, b); });
  const std::vector<std::int32_t> tokens = {0, 299, 17, 17, 150};
  const cl::Buffer out = to_buffer(std::vector<float>(tokens.size() * static_cast<std::size_t>(c.dim)));
  ops.get_rows(m, to_buffer(tokens), out, static_cast<int>(tokens.size()));
  std::vector<double> want;
  std::vector<float> row(static_cast<std::size_t>(c.dim));
  for (const std::int32_t t : tokens) {
    dequantize_row(type, q.data() + row_bytes(type, c.dim) * t, row.data(), c.dim);
    want.insert(want.end(), row.begin(), row.end());
  }
  CHECK(normalized_error(read<float>(out, want.size()), want) == 0.0);
}

TEST_CASE("rmsnorm, RoPE, add, swiglu and argmax on the device equal the CPU's", "[opencl][ops]") {
  const RopeStyle style = GENERATE(RopeStyle::Normal, RopeStyle::NeoX);
  const ModelConfig c = config(style);
  opencl::Ops<> ops(device(), c);
  const int n = 5, d = c.dim, hd = c.head_dim();
  const std::vector<float> x = random_vector(static_cast<std::size_t>(n * d), 4), w = random_vector(static_cast<std::size_t>(d), 5);

  const cl::Buffer xb = to_buffer(x), out = to_buffer(std::vector<float>(x.size()));
  ops.rmsnorm(xb, to_buffer(w), out, n);
  std::vector<double> want(x.size());
  std::vector<float> row(static_cast<std::size_t>(d));
  for (int i = 0; i < n; ++i) {
    rmsnorm<dynamic_extent>(row.data(), x.data() + i * d, w.data(), d, c.norm_eps);
    std::copy(row.begin(), row.end(), want.begin() + i * d);
  }
  CHECK(normalized_error(read<float>(out, x.size()), want) < 1e-6);

  // RoPE at positions 3..7 over n_heads heads, against rope_inplace.
  const std::vector<float> inv = c.rope_inv_freq();
  const std::vector<std::int32_t> pos = {3, 4, 5, 6, 7};
  const cl::Buffer rb = to_buffer(x);
  ops.rope(rb, to_buffer(pos), to_buffer(inv), c.n_heads, n);
  std::vector<float> rot = x;
  for (int i = 0; i < n; ++i) rope_inplace(rot.data() + i * d, c.n_heads, hd, pos[static_cast<std::size_t>(i)], inv.data(), style);
  CHECK(normalized_error(read<float>(rb, x.size()), std::vector<double>(rot.begin(), rot.end())) < 1e-6);

  const std::vector<float> y = random_vector(x.size(), 6);
  const cl::Buffer ab = to_buffer(x);
  ops.add(ab, to_buffer(y), x.size());
  std::vector<double> sum(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) sum[i] = static_cast<double>(x[i]) + y[i];
  CHECK(normalized_error(read<float>(ab, x.size()), sum) < 1e-7);

  const cl::Buffer sb = to_buffer(x);
  ops.swiglu(sb, to_buffer(y), x.size());
  std::vector<double> sw(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) sw[i] = x[i] / (1.0 + std::exp(-static_cast<double>(x[i]))) * y[i];
  CHECK(normalized_error(read<float>(sb, x.size()), sw) < 1e-6);

  std::vector<float> logits = random_vector(static_cast<std::size_t>(3 * c.vocab_size), 7);
  logits[17] = 50.0f;                          // row 0: a clear maximum
  logits[c.vocab_size + 40] = 60.0f;           // row 1: a tie, the lowest id wins
  logits[c.vocab_size + 200] = 60.0f;
  const cl::Buffer ids = to_buffer(std::vector<std::int32_t>(3));
  ops.argmax(to_buffer(logits), ids, 3);
  const auto got = read<std::int32_t>(ids, 3);
  CHECK(got[0] == 17);
  CHECK(got[1] == 40);
  CHECK(got[2] == greedy_token(std::span<const float>(logits).subspan(2 * static_cast<std::size_t>(c.vocab_size), c.vocab_size)));
}

TEST_CASE("the f16 KV store and grouped-query attention on the device equal the reference", "[opencl][ops]") {
  const ModelConfig c = config();
  opencl::Ops<> ops(device(), c);
  const int kv = c.kv_dim(), d = c.dim, hd = c.head_dim(), group = c.n_heads / c.n_kv_heads, layer = 1;
  const std::size_t cache = static_cast<std::size_t>(c.n_layers) * c.max_seq * kv;
  const cl::Buffer kc = to_buffer(std::vector<std::uint16_t>(cache)), vc = to_buffer(std::vector<std::uint16_t>(cache));
  // Positions 0..P-1 stored in one batch, then attention for the last n rows (each sees its own prefix).
  const int P = 12, n = 4;
  const std::vector<float> k = random_vector(static_cast<std::size_t>(P * kv), 8), v = random_vector(static_cast<std::size_t>(P * kv), 9);
  std::vector<std::int32_t> pos(P);
  for (int i = 0; i < P; ++i) pos[static_cast<std::size_t>(i)] = i;
  ops.kv_store(to_buffer(k), to_buffer(v), kc, vc, to_buffer(pos), layer, c.max_seq, P);
  const auto kh = read<std::uint16_t>(kc, cache);
  for (int i = 0; i < P * kv; i += 7)
    CHECK(fp16_to_fp32(kh[static_cast<std::size_t>(layer) * c.max_seq * kv + static_cast<std::size_t>(i)]) ==
          round_f16(k[static_cast<std::size_t>(i)]));

  const std::vector<float> q = random_vector(static_cast<std::size_t>(n * d), 10);
  const std::vector<std::int32_t> qpos = {P - 4, P - 3, P - 2, P - 1};
  const cl::Buffer out = to_buffer(std::vector<float>(static_cast<std::size_t>(n * d)));
  const cl::Buffer scores = to_buffer(std::vector<float>(static_cast<std::size_t>(n * c.n_heads * c.max_seq)));
  ops.attention(to_buffer(q), kc, vc, out, scores, to_buffer(qpos), layer, c.max_seq, n);
  std::vector<double> want(static_cast<std::size_t>(n * d));
  const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
  for (int i = 0; i < n; ++i)
    for (int h = 0; h < c.n_heads; ++h) {
      const int kvh = h / group, len = qpos[static_cast<std::size_t>(i)] + 1;
      std::vector<double> s(static_cast<std::size_t>(len));
      double mx = -1e300, sum = 0.0;
      for (int t = 0; t < len; ++t) {
        double dot = 0.0;
        for (int e = 0; e < hd; ++e)
          dot += static_cast<double>(round_f16(q[static_cast<std::size_t>(i * d + h * hd + e)])) *
                 round_f16(k[static_cast<std::size_t>(t * kv + kvh * hd + e)]);
        s[static_cast<std::size_t>(t)] = dot * scale;
        mx = std::max(mx, s[static_cast<std::size_t>(t)]);
      }
      for (double& x : s) sum += x = std::exp(x - mx);
      for (int e = 0; e < hd; ++e) {
        double o = 0.0;
        for (int t = 0; t < len; ++t)
          o += static_cast<double>(round_f16(static_cast<float>(s[static_cast<std::size_t>(t)] / sum))) *
               round_f16(v[static_cast<std::size_t>(t * kv + kvh * hd + e)]);
        want[static_cast<std::size_t>(i * d + h * hd + e)] = o;
      }
    }
  CHECK(normalized_error(read<float>(out, want.size()), want) < 1e-3);
}
