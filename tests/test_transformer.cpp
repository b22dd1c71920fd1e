// Transformer behaviour: batched prefill equals single steps, KV-cache rollback, fixed vs dynamic types, and
// load-time checks of a file against a model type.
#include <catch2/catch.hpp>

#include <edgespec/edgespec.hpp>

#include <cmath>
#include <filesystem>

#include "test_util.hpp"

namespace {

using namespace edgespec;

std::shared_ptr<const LlamaWeights> load(const char* rel) {
  return std::make_shared<const LlamaWeights>(load_weights(test::model_path(rel)));
}

const std::vector<std::int32_t> kTokens = {1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338};

float max_abs_diff(std::span<const float> a, std::span<const float> b) {
  float m = 0.0f;
  for (std::size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

struct F16Only : Stories260K {
  static constexpr WeightFormat weight = WeightFormat::F16;
};
struct OtherEps : Stories260K {
  static constexpr float norm_eps = 1e-6f;
};

}  // namespace

TEST_CASE("prefill of n positions equals n single steps", "[transformer]") {
  const char* file = GENERATE("llama2c/stories260K.bin", "gguf/llama2xs-q8_0.gguf", "gguf/stories260K-f16.gguf");
  const KvType kv = GENERATE(KvType::F16, KvType::F32);
  const int threads = GENERATE(1, 2);
  INFO(file << " threads " << threads << " kv " << (kv == KvType::F16 ? "f16" : "f32"));
  auto w = load(file);
  ThreadPool pool(threads);
  Transformer<> batched(w, pool, 64, kv), stepped(w, pool, 64, kv);
  const std::size_t v = static_cast<std::size_t>(w->config.vocab_size);
  const auto span_all = batched.forward(kTokens, Logits::All);
  const std::vector<float> rows(span_all.begin(), span_all.end());
  REQUIRE(rows.size() == kTokens.size() * v);
  for (std::size_t i = 0; i < kTokens.size(); ++i) {
    const auto step = stepped.forward(std::span<const std::int32_t>(&kTokens[i], 1));
    INFO("position " << i);
    // Every kernel gives a position's row the same operation sequence whatever n: the logits are identical.
    CHECK(max_abs_diff(step, std::span<const float>(rows).subspan(i * v, v)) == 0.0f);
  }
  for (int l = 0; l < w->config.n_layers; ++l)
    for (int p = 0; p < static_cast<int>(kTokens.size()); ++p) {
      CHECK(batched.key(l, p) == stepped.key(l, p));
      CHECK(batched.value(l, p) == stepped.value(l, p));
    }
  // Logits::Last is the last row of Logits::All.
  batched.reset();
  const auto last = batched.forward(kTokens, Logits::Last);
  CHECK(max_abs_diff(last, std::span<const float>(rows).subspan((kTokens.size() - 1) * v, v)) == 0.0f);
}

TEST_CASE("truncate rolls the KV cache back to any earlier position", "[transformer]") {
  auto w = load("llama2c/llama2xs.bin");
  ThreadPool pool(2);
  Transformer<> model(w, pool, 64), fresh(w, pool, 64);
  const std::vector<std::int32_t> other = {5, 6, 7, 8, 9, 10};
  for (int keep : {0, 1, 5, 9, 16}) {
    model.reset();
    model.forward(kTokens);
    model.truncate(keep);
    REQUIRE(model.position() == keep);
    // Continue with different tokens; the result must equal a fresh run over the kept prefix + those tokens.
    std::vector<std::int32_t> seq(kTokens.begin(), kTokens.begin() + keep);
    seq.insert(seq.end(), other.begin(), other.end());
    const auto got = model.forward(other, Logits::All);
    const std::vector<float> got_v(got.begin(), got.end());
    fresh.reset();
    const auto want = fresh.forward(seq, Logits::All);
    const std::size_t v = static_cast<std::size_t>(w->config.vocab_size);
    INFO("keep " << keep);
    CHECK(max_abs_diff(got_v, want.subspan(static_cast<std::size_t>(keep) * v)) == 0.0f);
    for (int l = 0; l < w->config.n_layers; ++l)
      for (int p = 0; p < static_cast<int>(seq.size()); ++p) CHECK(model.key(l, p) == fresh.key(l, p));
  }
  CHECK_THROWS_AS(model.truncate(model.position() + 1), Error);
}

TEST_CASE("a fixed-dimension type computes what the dynamic type computes", "[transformer]") {
  auto w = load("gguf/stories260K-f32.gguf");
  ThreadPool pool(1);
  // f32 KV cache: with f16 a last-bit summation difference can flip an f16 rounding (see test_golden).
  Transformer<Stories260K> fixed(w, pool, 64, KvType::F32);
  Transformer<AnyLlama> any(w, pool, 64, KvType::F32);
  const auto a = fixed.forward(kTokens, Logits::All);
  const std::vector<float> av(a.begin(), a.end());
  CHECK(max_abs_diff(av, any.forward(kTokens, Logits::All)) < 1e-4f);
}

TEST_CASE("loading a file into a type it does not match names the field and both values", "[transformer]") {
  auto w = load("llama2c/stories260K.bin");
  ThreadPool pool(1);
  CHECK_THROWS_WITH((Transformer<Stories15M>(w, pool)),
                    Catch::Contains("field 'dim' is 64 in the file but 288 in the model type Stories15M"));
  CHECK_THROWS_WITH((Transformer<F16Only>(w, pool)), Catch::Contains("field 'weight_type' is F32"));
  CHECK_THROWS_WITH((Transformer<OtherEps>(w, pool)), Catch::Contains("field 'norm_eps'"));
  auto x = load("llama2c/llama2xs.bin");  // ffn 192, not 172
  CHECK_THROWS_WITH((Transformer<Stories260K>(x, pool)),
                    Catch::Contains("field 'ffn_dim' is 192 in the file but 172 in the model type Stories260K"));
}

TEST_CASE("forward rejects bad input without corrupting state", "[transformer]") {
  auto w = load("llama2c/stories260K.bin");
  ThreadPool pool(1);
  Transformer<> model(w, pool, 8);
  const std::vector<std::int32_t> bad = {1, 512};
  CHECK_THROWS_WITH(model.forward(bad), Catch::Contains("token id 512 is out of range"));
  CHECK(model.position() == 0);
  const std::vector<std::int32_t> many(9, 1);
  CHECK_THROWS_WITH(model.forward(many), Catch::Contains("context overflow"));
  CHECK(model.position() == 0);
  CHECK_THROWS_AS(model.forward({}), Error);
  const std::vector<int> skip = {7};
  CHECK_THROWS_AS(model.set_skipped_layers(skip), Error);
}

namespace {

// A small random model whose heads are 64 wide with 4 query heads per KV head (as Llama 3), written as an F32
// GGUF: the reference models' heads are 8 wide, so this is what runs the AVX-512 attention path.
std::string write_gqa64_model() {
  ModelConfig c;
  c.dim = 512;
  c.n_layers = 2;
  c.n_heads = 8;
  c.n_kv_heads = 2;
  c.ffn_dim = 512;
  c.vocab_size = 512;
  c.max_seq = 64;
  const auto path = (std::filesystem::temp_directory_path() / "edgespec-test-gqa64.gguf").string();
  write_llama_gguf(path, c, make_synth_spm_vocab(c.vocab_size), DType::F32,
                   [](const std::string& name, std::int64_t rows, std::int64_t cols, float* out) {
                     const bool norm = name.find("norm") != std::string::npos;
                     const float sd = name == "token_embd.weight" ? 1.0f : norm ? 0.1f : 1.0f / std::sqrt(float(cols));
                     detail::fill_normal(detail::fnv1a(name), 0, rows * cols, norm ? 1.0f : 0.0f, sd, out);
                   },
                   "gqa64");
  return path;
}

// logits (n, vocab) of every position, computed naively: dequantized rows, double-precision dot products,
// attention over all earlier positions head by head, query head h reading KV head h / (n_heads / n_kv_heads).
std::vector<float> reference_logits(const LlamaWeights& w, std::span<const std::int32_t> tokens) {
  const ModelConfig& c = w.config;
  const int d = c.dim, hd = c.head_dim(), group = c.n_heads / c.n_kv_heads;
  const auto n = static_cast<int>(tokens.size());
  auto matvec = [](const MatrixView& m, const std::vector<float>& x) {
    std::vector<float> y(static_cast<std::size_t>(m.rows)), row(static_cast<std::size_t>(m.cols));
    for (std::int64_t r = 0; r < m.rows; ++r) {
      dequantize_row(m.type, static_cast<const std::byte*>(m.data) + r * row_bytes(m.type, m.cols), row.data(), m.cols);
      double s = 0;
      for (std::int64_t i = 0; i < m.cols; ++i) s += double(row[i]) * x[i];
      y[r] = float(s);
    }
    return y;
  };
  auto norm = [&](const std::vector<float>& x, const float* g) {
    double ss = 0;
    for (float v : x) ss += double(v) * v;
    const double s = 1.0 / std::sqrt(ss / x.size() + c.norm_eps);
    std::vector<float> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = float(x[i] * s * g[i]);
    return y;
  };
  const std::vector<float> inv_freq = c.rope_inv_freq();
  std::vector<std::vector<float>> x(n, std::vector<float>(d));
  for (int i = 0; i < n; ++i)
    dequantize_row(w.tok_embd.type, static_cast<const std::byte*>(w.tok_embd.data) + tokens[i] * row_bytes(w.tok_embd.type, d),
                   x[i].data(), d);
  for (const LayerWeights& L : w.layers) {
    std::vector<std::vector<float>> q(n), k(n), v(n);
    for (int i = 0; i < n; ++i) {
      const auto xb = norm(x[i], L.attn_norm);
      q[i] = matvec(L.wq, xb);
      k[i] = matvec(L.wk, xb);
      v[i] = matvec(L.wv, xb);
      rope_inplace(q[i].data(), c.n_heads, hd, i, inv_freq.data(), c.rope_style);
      rope_inplace(k[i].data(), c.n_kv_heads, hd, i, inv_freq.data(), c.rope_style);
    }
    for (int i = 0; i < n; ++i) {
      std::vector<float> att(d);
      for (int h = 0; h < c.n_heads; ++h) {
        const int o = h / group * hd;
        std::vector<double> p(i + 1);
        double mx = -1e300, sum = 0;
        for (int j = 0; j <= i; ++j) {
          double s = 0;
          for (int e = 0; e < hd; ++e) s += double(q[i][h * hd + e]) * k[j][o + e];
          p[j] = s / std::sqrt(double(hd));
          mx = std::max(mx, p[j]);
        }
        for (double& e : p) sum += e = std::exp(e - mx);
        for (int e = 0; e < hd; ++e) {
          double a = 0;
          for (int j = 0; j <= i; ++j) a += p[j] / sum * v[j][o + e];
          att[h * hd + e] = float(a);
        }
      }
      const auto out = matvec(L.wo, att);
      for (int e = 0; e < d; ++e) x[i][e] += out[e];
      const auto xb = norm(x[i], L.ffn_norm);
      auto g = matvec(L.w1, xb);
      const auto u = matvec(L.w3, xb);
      for (std::size_t e = 0; e < g.size(); ++e) g[e] = g[e] / (1.0f + std::exp(-g[e])) * u[e];
      const auto down = matvec(L.w2, g);
      for (int e = 0; e < d; ++e) x[i][e] += down[e];
    }
  }
  std::vector<float> logits;
  for (int i = 0; i < n; ++i) {
    const auto y = matvec(w.output, norm(x[i], w.output_norm));
    logits.insert(logits.end(), y.begin(), y.end());
  }
  return logits;
}

}  // namespace

TEST_CASE("a GQA model with 64-wide heads matches a naive reference forward", "[transformer]") {
  const std::string path = write_gqa64_model();
  auto w = std::make_shared<const LlamaWeights>(load_weights(path));
  std::filesystem::remove(path);
  REQUIRE(w->config.head_dim() == 64);
  std::vector<std::int32_t> tokens(40);  // past two 16-key blocks, so full and partial blocks both occur
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int32_t>(1 + 37 * i % 511);
  const std::vector<float> ref = reference_logits(*w, tokens);
  float scale = 0.0f;
  for (float v : ref) scale = std::max(scale, std::fabs(v));
  const int threads = GENERATE(1, 2);
  INFO("threads " << threads);
  ThreadPool pool(threads);
  Transformer<> model(w, pool, 64, KvType::F32);
  const auto span_all = model.forward(tokens, Logits::All);
  const std::vector<float> all(span_all.begin(), span_all.end());
  INFO("largest |logit| " << scale);
  CHECK(max_abs_diff(all, ref) < 1e-5f * std::max(1.0f, scale));
  // and one position at a time, through the same cache
  Transformer<> stepped(w, pool, 64, KvType::F32);
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const auto step = stepped.forward(std::span<const std::int32_t>(&tokens[i], 1));
    INFO("position " << i);
    CHECK(max_abs_diff(step, std::span<const float>(ref).subspan(i * 512, 512)) < 1e-5f * std::max(1.0f, scale));
    CHECK(max_abs_diff(step, std::span<const float>(all).subspan(i * 512, 512)) == 0.0f);
  }
}
