// Llama weights as typed views over a memory-mapped file (GGUF, llama2.c legacy fp32, llama2.c int8 "ak42").
//
// Matrices are row-major (out_features, in_features), i.e. GGUF ne = {in, out}; y = W x.
//   tok_embd (vocab, dim)        layer: wq (dim, dim)  wk, wv (kv_dim, dim)  wo (dim, dim)
//   output   (vocab, dim)               w1 gate, w3 up (ffn, dim)  w2 down (dim, ffn)
// Views point into the mapping when the file's layout is the kernels' layout (GGUF, llama2.c fp32); the int8
// llama2.c export is repacked into Q8_0 blocks (its scales are fp32 and its groups may straddle rows).
#pragma once

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/io/gguf.hpp"
#include "edgespec/io/mapped_file.hpp"
#include "edgespec/kernels/matmul.hpp"
#include "edgespec/kernels/quantize.hpp"
#include "edgespec/model/config.hpp"

namespace edgespec {



struct LayerWeights {
  const float* attn_norm = nullptr;  // (dim)
  MatrixView wq, wk, wv, wo;
  const float* ffn_norm = nullptr;   // (dim)
  MatrixView w1, w2, w3;             // gate, down, up
};

enum class FileFormat { Gguf, Llama2c, Llama2cInt8 };

[[nodiscard]] constexpr std::string_view format_name(FileFormat f) noexcept {
  switch (f) {
    case FileFormat::Gguf: return "GGUF";
    case FileFormat::Llama2c: return "llama2.c fp32";
    case FileFormat::Llama2cInt8: return "llama2.c int8 (ak42)";
  }
  return "?";
}

struct LlamaWeights {
  ModelConfig config;
  FileFormat format = FileFormat::Gguf;
  std::string path;
  MatrixView tok_embd;       // (vocab, dim)
  const float* output_norm = nullptr;
  MatrixView output;         // (vocab, dim); the embedding when tied
  std::vector<LayerWeights> layers;
  std::vector<float> rope_freq_divisors;  // GGUF rope_freqs.weight (llama3 scaling), empty if absent

  // Owners of the memory the views point into.
  std::shared_ptr<MappedFile> mapping;
  std::shared_ptr<GgufFile> gguf;  // kept for the embedded tokenizer
  std::vector<std::vector<std::byte>> owned;
  std::vector<std::shared_ptr<std::byte>> packed_owned;  // the packed copies of Q8_0/Q4_0/F16 (and Q4_K/Q6_K) matrices
  std::shared_ptr<const LlamaWeights> base;  // weights this one borrows from (requantize), kept alive

  // Bytes of weights one forward pass reads (all layer matrices + classifier; one embedding row is negligible).
  [[nodiscard]] std::int64_t bytes_per_token() const noexcept {
    std::int64_t b = 0;
    auto bytes = [](const MatrixView& m) { return row_bytes(m.type, m.cols) * m.rows; };
    for (const LayerWeights& l : layers)
      b += bytes(l.wq) + bytes(l.wk) + bytes(l.wv) + bytes(l.wo) + bytes(l.w1) + bytes(l.w2) + bytes(l.w3);
    return b + bytes(output);
  }
};

namespace detail {

inline void check_positive(const std::string& path, const char* field, std::int64_t v, std::int64_t max) {
  ES_CHECK(v > 0 && v <= max, path, ": field '", field, "' = ", v, " is out of range (expected 1..", max, ")");
}

// Validates a config read from a file (before any tensor is touched).
inline void validate_config(const std::string& path, const ModelConfig& c) {
  check_positive(path, "dim", c.dim, 1 << 16);
  check_positive(path, "n_layers", c.n_layers, 1024);
  check_positive(path, "n_heads", c.n_heads, 1024);
  check_positive(path, "n_kv_heads", c.n_kv_heads, 1024);
  check_positive(path, "ffn_dim", c.ffn_dim, 1 << 18);
  check_positive(path, "vocab_size", c.vocab_size, 1 << 22);
  check_positive(path, "max_seq", c.max_seq, 1 << 24);
  ES_CHECK(c.dim % c.n_heads == 0, path, ": dim ", c.dim, " is not divisible by n_heads ", c.n_heads);
  ES_CHECK(c.head_dim() % 2 == 0, path, ": head_dim ", c.head_dim(), " must be even for rotary embeddings");
  ES_CHECK(c.n_heads % c.n_kv_heads == 0, path, ": n_heads ", c.n_heads, " is not divisible by n_kv_heads ",
           c.n_kv_heads);
  ES_CHECK(std::isfinite(c.rope_base) && c.rope_base > 1.0f, path, ": rope base ", c.rope_base, " is invalid");
  ES_CHECK(std::isfinite(c.norm_eps) && c.norm_eps > 0.0f && c.norm_eps < 1.0f, path, ": norm epsilon ", c.norm_eps,
           " is invalid");
}

inline MatrixView gguf_matrix(const GgufFile& f, const std::string& name, std::int64_t rows, std::int64_t cols) {
  const gguf::TensorInfo& t = f.tensor(name);
  ES_CHECK(t.n_dims <= 2 && t.ne[0] == cols && t.ne[1] == rows, f.path(), ": tensor '", name, "' has shape [",
           t.ne[0], ", ", t.ne[1], "], expected [", cols, ", ", rows, "]");
  return MatrixView{t.type, rows, cols, t.data};
}

// A norm vector as f32: the mapping itself when F32, else a converted copy kept in `owned`.
inline const float* gguf_vector(const GgufFile& f, const std::string& name, std::int64_t n,
                                std::vector<std::vector<std::byte>>& owned) {
  const gguf::TensorInfo& t = f.tensor(name);
  ES_CHECK(t.n_elements() == n, f.path(), ": tensor '", name, "' has ", t.n_elements(), " elements, expected ", n);
  if (t.type == DType::F32 && reinterpret_cast<std::uintptr_t>(t.data) % alignof(float) == 0)
    return reinterpret_cast<const float*>(t.data);
  owned.emplace_back(static_cast<std::size_t>(n) * sizeof(float));
  auto* dst = reinterpret_cast<float*>(owned.back().data());
  dequantize_row(t.type, t.data, dst, n);
  return dst;
}

inline LlamaWeights load_gguf(const std::string& path) {
  LlamaWeights w;
  w.format = FileFormat::Gguf;
  w.path = path;
  w.gguf = std::make_shared<GgufFile>(path);
  const GgufFile& f = *w.gguf;
  w.mapping = f.mapping();
  const std::string arch = f.get_string("general.architecture");
  ES_CHECK(arch == "llama", path, ": general.architecture is '", arch, "', edgespec supports 'llama'");

  ModelConfig& c = w.config;
  auto get_i = [&](const char* key) {
    const std::int64_t v = f.get_int(key);
    ES_CHECK(v > 0 && v < (std::int64_t{1} << 30), path, ": metadata '", key, "' = ", v, " is out of range");
    return static_cast<int>(v);
  };
  c.dim = get_i("llama.embedding_length");
  c.n_layers = get_i("llama.block_count");
  c.n_heads = get_i("llama.attention.head_count");
  c.n_kv_heads = f.has("llama.attention.head_count_kv") ? get_i("llama.attention.head_count_kv") : c.n_heads;
  c.ffn_dim = get_i("llama.feed_forward_length");
  c.max_seq = get_i("llama.context_length");
  c.rope_base = static_cast<float>(f.find_float("llama.rope.freq_base").value_or(10000.0));
  c.norm_eps = static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon"));
  const gguf::TensorInfo& emb = f.tensor("token_embd.weight");
  c.vocab_size = f.has("llama.vocab_size") ? get_i("llama.vocab_size") : static_cast<int>(emb.ne[1]);
  validate_config(path, c);
  if (const auto rd = f.find_int("llama.rope.dimension_count"))
    ES_CHECK(*rd == c.head_dim(), path, ": llama.rope.dimension_count = ", *rd, ", edgespec needs the full head_dim ",
             c.head_dim());
  // Llama-3 scaling arrives as the rope_freqs.weight tensor (below); linear scaling divides every frequency.
  float linear_factor = 1.0f;
  if (const auto st = f.find_string("llama.rope.scaling.type"); st && *st != "none") {
    ES_CHECK(*st == "linear", path, ": rope scaling type '", *st, "' is not supported (supported: none, linear, "
             "and llama3 scaling given as rope_freqs.weight)");
    linear_factor = static_cast<float>(f.get_float("llama.rope.scaling.factor"));
    ES_CHECK(linear_factor > 0.0f, path, ": llama.rope.scaling.factor ", linear_factor, " must be positive");
  }

  const std::int64_t d = c.dim, kv = c.kv_dim(), ff = c.ffn_dim, v = c.vocab_size;
  w.tok_embd = gguf_matrix(f, "token_embd.weight", v, d);
  w.output_norm = gguf_vector(f, "output_norm.weight", d, w.owned);
  if (f.find_tensor("output.weight") != nullptr) {
    w.output = gguf_matrix(f, "output.weight", v, d);
    c.classifier = Classifier::Separate;
  } else {
    w.output = w.tok_embd;
    c.classifier = Classifier::Tied;
  }
  if (const gguf::TensorInfo* rf = f.find_tensor("rope_freqs.weight")) {
    ES_CHECK(rf->n_elements() == c.head_dim() / 2, path, ": rope_freqs.weight has ", rf->n_elements(),
             " elements, expected head_dim/2 = ", c.head_dim() / 2);
    w.rope_freq_divisors.resize(static_cast<std::size_t>(c.head_dim() / 2));
    dequantize_row(rf->type, rf->data, w.rope_freq_divisors.data(), rf->n_elements());
    for (float x : w.rope_freq_divisors)
      ES_CHECK(std::isfinite(x) && x > 0.0f, path, ": rope_freqs.weight holds an invalid value ", x);
  }
  if (linear_factor != 1.0f) {
    w.rope_freq_divisors.resize(static_cast<std::size_t>(c.head_dim() / 2), 1.0f);
    for (float& x : w.rope_freq_divisors) x *= linear_factor;
  }
  w.layers.resize(static_cast<std::size_t>(c.n_layers));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    LayerWeights& L = w.layers[static_cast<std::size_t>(l)];
    L.attn_norm = gguf_vector(f, p + "attn_norm.weight", d, w.owned);
    L.wq = gguf_matrix(f, p + "attn_q.weight", d, d);
    L.wk = gguf_matrix(f, p + "attn_k.weight", kv, d);
    L.wv = gguf_matrix(f, p + "attn_v.weight", kv, d);
    L.wo = gguf_matrix(f, p + "attn_output.weight", d, d);
    L.ffn_norm = gguf_vector(f, p + "ffn_norm.weight", d, w.owned);
    L.w1 = gguf_matrix(f, p + "ffn_gate.weight", ff, d);
    L.w2 = gguf_matrix(f, p + "ffn_down.weight", d, ff);
    L.w3 = gguf_matrix(f, p + "ffn_up.weight", ff, d);
  }
  c.weight_type = w.layers[0].wq.type;
  return w;
}

// llama2.c header: 7 int32 { dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len };
// a negative vocab_size means the classifier is stored separately after the weights.
struct Llama2cHeader {
  std::int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

inline ModelConfig config_from_llama2c(const std::string& path, Llama2cHeader h, bool shared) {
  ModelConfig c;
  c.dim = h.dim;
  c.ffn_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.vocab_size = h.vocab_size;
  c.max_seq = h.seq_len;
  c.classifier = shared ? Classifier::Tied : Classifier::Separate;
  validate_config(path, c);
  return c;
}

// Legacy llama2.c fp32 layout, all arrays contiguous after the 28-byte header:
//   tok_embd (vocab, dim) | attn_norm (L, dim) | wq (L, dim, dim) | wk (L, kv, dim) | wv (L, kv, dim)
//   | wo (L, dim, dim) | ffn_norm (L, dim) | w1 (L, ffn, dim) | w2 (L, dim, ffn) | w3 (L, ffn, dim)
//   | final_norm (dim) | freq_cis_real, freq_cis_imag (seq, head_dim/2 each, unused) | [wcls (vocab, dim)]
inline LlamaWeights load_llama2c_fp32(std::shared_ptr<MappedFile> file) {
  LlamaWeights w;
  w.format = FileFormat::Llama2c;
  w.path = file->path();
  ByteReader r(file->data(), file->size(), file->path());
  auto h = r.read<Llama2cHeader>("llama2.c header");
  const bool shared = h.vocab_size > 0;
  // INT32_MIN has no positive counterpart (negating it is UB, found by tests/test_fuzz_formats.cpp under UBSan):
  // leave it negative so validate_config rejects it as out of range.
  if (h.vocab_size < 0 && h.vocab_size != std::numeric_limits<std::int32_t>::min()) h.vocab_size = -h.vocab_size;
  w.config = config_from_llama2c(w.path, h, shared);
  const ModelConfig& c = w.config;
  const std::int64_t d = c.dim, kv = c.kv_dim(), ff = c.ffn_dim, v = c.vocab_size, L = c.n_layers;
  const std::int64_t floats = v * d + L * (2 * d + 2 * d * d + 2 * kv * d + 3 * ff * d) + d +
                              static_cast<std::int64_t>(c.max_seq) * c.head_dim() + (shared ? 0 : v * d);
  ES_CHECK(static_cast<std::uint64_t>(floats) * 4 <= r.remaining(), w.path, ": llama2.c file is truncated: the header (dim ",
           d, ", layers ", L, ", vocab ", v, ") needs ", floats * 4 + 28, " bytes, the file has ", file->size());
  const auto* base = reinterpret_cast<const float*>(r.here());  // offset 28: 4-byte aligned
  const float* p = base;
  auto take = [&p](std::int64_t n) {
    const float* q = p;
    p += n;
    return q;
  };
  auto mat = [](const float* data, std::int64_t rows, std::int64_t cols) {
    return MatrixView{DType::F32, rows, cols, data};
  };
  w.tok_embd = mat(take(v * d), v, d);
  w.layers.resize(static_cast<std::size_t>(L));
  const float* attn_norm = take(L * d);
  const float* wq = take(L * d * d);
  const float* wk = take(L * kv * d);
  const float* wv = take(L * kv * d);
  const float* wo = take(L * d * d);
  const float* ffn_norm = take(L * d);
  const float* w1 = take(L * ff * d);
  const float* w2 = take(L * d * ff);
  const float* w3 = take(L * ff * d);
  for (std::int64_t l = 0; l < L; ++l) {
    LayerWeights& y = w.layers[static_cast<std::size_t>(l)];
    y.attn_norm = attn_norm + l * d;
    y.wq = mat(wq + l * d * d, d, d);
    y.wk = mat(wk + l * kv * d, kv, d);
    y.wv = mat(wv + l * kv * d, kv, d);
    y.wo = mat(wo + l * d * d, d, d);
    y.ffn_norm = ffn_norm + l * d;
    y.w1 = mat(w1 + l * ff * d, ff, d);
    y.w2 = mat(w2 + l * d * ff, d, ff);
    y.w3 = mat(w3 + l * ff * d, ff, d);
  }
  w.output_norm = take(d);
  take(static_cast<std::int64_t>(c.max_seq) * c.head_dim());  // freq_cis_real + freq_cis_imag
  w.output = shared ? w.tok_embd : mat(take(v * d), v, d);
  w.config.weight_type = DType::F32;
  w.mapping = std::move(file);
  return w;
}

// llama2.c "version 2" int8 export (runq.c): 256-byte header
//   u32 magic 'ak42' | i32 version 2 | 7 x i32 config | u8 shared_classifier | i32 group_size | zero padding
// then fp32: attn_norm (L, dim) | ffn_norm (L, dim) | final_norm (dim)
// then quantized tensors, each { int8 q[numel]; f32 scale[numel / group_size] } (groups over the flattened
// tensor): tok_embd, wq x L, wk x L, wv x L, wo x L, w1 x L, w2 x L, w3 x L, [wcls]
inline LlamaWeights load_llama2c_int8(std::shared_ptr<MappedFile> file) {
  LlamaWeights w;
  w.format = FileFormat::Llama2cInt8;
  w.path = file->path();
  ByteReader r(file->data(), file->size(), file->path());
  r.read<std::uint32_t>("magic");
  const auto version = r.read<std::int32_t>("version");
  ES_CHECK(version == 2, w.path, ": llama2.c int8 export version ", version, " is not supported (expected 2)");
  const auto h = r.read<Llama2cHeader>("llama2.c header");
  const auto shared = r.read<std::uint8_t>("shared_classifier");
  const auto gs = r.read<std::int32_t>("group_size");
  ES_CHECK(shared <= 1, w.path, ": shared_classifier byte is ", int(shared), ", expected 0 or 1");
  w.config = config_from_llama2c(w.path, h, shared != 0);
  ES_CHECK(gs > 0 && gs <= 4096, w.path, ": group_size ", gs, " is out of range");
  const ModelConfig& c = w.config;
  const std::int64_t d = c.dim, kv = c.kv_dim(), ff = c.ffn_dim, v = c.vocab_size, L = c.n_layers;
  r.seek(256, "weights");

  const std::int64_t norm_floats = 2 * L * d + d;
  r.require(static_cast<std::size_t>(norm_floats) * 4, "norm weights");
  w.owned.emplace_back(static_cast<std::size_t>(norm_floats) * 4);
  std::memcpy(w.owned.back().data(), r.here(), static_cast<std::size_t>(norm_floats) * 4);
  const auto* norms = reinterpret_cast<const float*>(w.owned.back().data());
  r.skip(static_cast<std::size_t>(norm_floats) * 4, "norm weights");

  // One quantized tensor (rows, cols) -> Q8_0 rows when cols % 32 == 0 and groups align, else exact F32.
  auto quantized = [&](std::int64_t rows, std::int64_t cols, const char* what) {
    const std::int64_t n = rows * cols;
    ES_CHECK(n % gs == 0, w.path, ": tensor ", what, " has ", n, " values, not a multiple of group_size ", gs);
    r.require(static_cast<std::size_t>(n + n / gs * 4), what);
    const auto* q = reinterpret_cast<const std::int8_t*>(r.here());
    const std::byte* s = r.here() + n;
    r.skip(static_cast<std::size_t>(n + n / gs * 4), what);
    auto scale = [&](std::int64_t g) {
      float f;
      std::memcpy(&f, s + g * 4, 4);
      return f;
    };
    const bool as_q8 = gs == kQK && cols % kQK == 0;
    w.owned.emplace_back(static_cast<std::size_t>(as_q8 ? row_bytes(DType::Q8_0, cols) * rows : n * 4));
    std::byte* dst = w.owned.back().data();
    if (as_q8) {
      auto* blocks = reinterpret_cast<BlockQ8_0*>(dst);
      for (std::int64_t b = 0; b < n / kQK; ++b) {
        blocks[b].d = fp32_to_fp16(scale(b));
        std::memcpy(blocks[b].q, q + b * kQK, kQK);
      }
      return MatrixView{DType::Q8_0, rows, cols, dst};
    }
    auto* out = reinterpret_cast<float*>(dst);
    for (std::int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(q[i]) * scale(i / gs);
    return MatrixView{DType::F32, rows, cols, dst};
  };
  w.tok_embd = quantized(v, d, "tok_embd");
  w.layers.resize(static_cast<std::size_t>(L));
  for (auto& y : w.layers) y.wq = quantized(d, d, "wq");
  for (auto& y : w.layers) y.wk = quantized(kv, d, "wk");
  for (auto& y : w.layers) y.wv = quantized(kv, d, "wv");
  for (auto& y : w.layers) y.wo = quantized(d, d, "wo");
  for (auto& y : w.layers) y.w1 = quantized(ff, d, "w1");
  for (auto& y : w.layers) y.w2 = quantized(d, ff, "w2");
  for (auto& y : w.layers) y.w3 = quantized(ff, d, "w3");
  w.output = shared != 0 ? w.tok_embd : quantized(v, d, "wcls");
  for (std::int64_t l = 0; l < L; ++l) {
    w.layers[static_cast<std::size_t>(l)].attn_norm = norms + l * d;
    w.layers[static_cast<std::size_t>(l)].ffn_norm = norms + L * d + l * d;
  }
  w.output_norm = norms + 2 * L * d;
  w.config.weight_type = w.layers[0].wq.type;
  w.mapping = std::move(file);
  return w;
}

}  // namespace detail

// Gives every packable layer matrix and the classifier (Q8_0/Q4_0/Q4_1/Q5_0/Q5_1/F16; with AVX-512 VNNI also
// Q4_K/Q6_K) a packed copy (kernels/packed.hpp, packed_k.hpp) that matmul streams instead of the row-major rows; a
// no-op in builds without the packed kernels. The row-major views stay valid (embedding lookups, rows past the
// last whole group, export). Memory: one copy of those matrices, the same size as in the file (Q4_K +2.8%,
// Q6_K +1%), in one buffer (on huge pages where the system grants them, see allocate_aligned); the file's pages
// then stay in the page cache only. Packed Q4_1/Q5_0/Q5_1 sum in another float order than llama.cpp's
// (kernels/packed.hpp); LoadOptions::pack = false keeps the row-major kernels, which give its floats.
inline void pack_weights(LlamaWeights& w, ThreadPool* pool = nullptr) {
  if constexpr (!kPackedKernels) return;
  std::vector<MatrixView*> todo;
  auto want = [&](MatrixView& m) {
    if (packable(m.type, m.cols) && m.rows >= kPackRows && m.packed == nullptr) todo.push_back(&m);
  };
  for (LayerWeights& L : w.layers)
    for (MatrixView* m : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w1, &L.w2, &L.w3}) want(*m);
  want(w.output);
  auto size = [](const MatrixView& m) {  // a multiple of 64 bytes, so every copy stays 64-byte aligned
    return static_cast<std::size_t>((packed_bytes(m.type, m.rows, m.cols) + 63) / 64 * 64);
  };
  std::size_t total = 0;
  for (const MatrixView* m : todo) total += size(*m);
  if (total == 0) return;
  w.packed_owned.push_back(allocate_aligned(total));
  std::byte* dst = w.packed_owned.back().get();
  for (MatrixView* m : todo) {
    pack_rows(m->type, m->data, m->rows, m->cols, dst, pool);
    m->packed = dst;
    dst += size(*m);
  }
}

struct LoadOptions {
  bool pack = kPackedKernels;  // pack_weights after loading (false: matmul reads the row-major rows)
  ThreadPool* pool = nullptr;  // threads for packing; nullptr: the calling thread
};

// Opens any supported model file, recognised by its first bytes: "GGUF", 'ak42' (llama2.c int8), else a
// llama2.c fp32 header.
[[nodiscard]] inline LlamaWeights load_weights(const std::string& path, const LoadOptions& options = {}) {
  auto file = std::make_shared<MappedFile>(path);
  ES_CHECK(file->size() >= 28, path, ": file is too small (", file->size(), " bytes) to be a model");
  std::uint32_t magic;
  std::memcpy(&magic, file->data(), 4);
  LlamaWeights w;
  if (magic == gguf::kMagic) {
    file.reset();
    w = detail::load_gguf(path);
  } else if (magic == 0x616b3432u) {
    w = detail::load_llama2c_int8(std::move(file));
  } else {
    w = detail::load_llama2c_fp32(std::move(file));
  }
  if (options.pack) pack_weights(w, options.pool);
  return w;
}

}  // namespace edgespec
