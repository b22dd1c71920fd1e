// Writing Llama models as GGUF files that llama.cpp loads, and random-weight models in the shape of the
// ready-made architectures (edgespec-convert, edgespec-synth).
//
//   write_llama_gguf(path, config, vocab, matrix_type, src, name)
//     src(name, rows, cols, out) fills the f32 values of one tensor (row-major (rows, cols); norms: rows = 1);
//     tensors are requested, converted and written one at a time, so a model never has to fit in memory.
//
// Tensors (llama.cpp names; a matrix W (rows, cols) is stored as ne = {cols, rows}):
//   token_embd.weight (vocab, dim)   output_norm.weight (dim)   output.weight (vocab, dim)  [Separate only]
//   rope_freqs.weight (head_dim/2, F32)                                                       [llama3 scaling]
//   blk.N.attn_norm (dim)  attn_q (dim, dim)  attn_k, attn_v (kv_dim, dim)  attn_output (dim, dim)
//   blk.N.ffn_norm (dim)   ffn_gate, ffn_up (ffn, dim)  ffn_down (dim, ffn)
// Matrices take matrix_type, norms and rope_freqs stay F32.
//
// Metadata: general.{architecture = "llama", name, file_type (LLAMA_FTYPE), quantization_version = 2},
// llama.{context_length, embedding_length, block_count, feed_forward_length, rope.dimension_count,
// rope.freq_base, attention.head_count, attention.head_count_kv, attention.layer_norm_rms_epsilon, vocab_size},
// tokenizer.ggml.{model, pre, tokens, scores, token_type, merges, bos/eos/unknown/padding_token_id,
// add_bos_token, add_eos_token, add_space_prefix (only when not llama.cpp's default)}.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "edgespec/core/dtype.hpp"
#include "edgespec/core/error.hpp"
#include "edgespec/io/gguf.hpp"
#include "edgespec/io/gguf_writer.hpp"
#include "edgespec/kernels/quantize.hpp"
#include "edgespec/model/arch.hpp"
#include "edgespec/model/config.hpp"
#include "edgespec/model/weights.hpp"
#include "edgespec/runtime/thread_pool.hpp"
#include "edgespec/tokenizer/tokenizer.hpp"
#include "edgespec/tokenizer/vocab.hpp"

namespace edgespec {

// Fills out[rows * cols] (row-major) with the f32 values of tensor `name`.
using TensorSource =
    std::function<void(const std::string& name, std::int64_t rows, std::int64_t cols, float* out)>;

// Optional knobs of write_llama_gguf.
struct GgufExportOptions {
  ThreadPool* pool = nullptr;             // converts rows in parallel (nullptr: the calling thread)
  GgufWriter::Progress progress;          // called before each tensor is converted and written
  // Metadata of a source GGUF to carry over (chat template, EOT ids, licence, ...): every key the export does
  // not write itself, except general.alignment; tokenizer.* keys only when carry_tokenizer (the vocabulary is
  // the source's own).
  const GgufFile* carry_metadata = nullptr;
  bool carry_tokenizer = true;
  std::vector<float> rope_freq_divisors;  // head_dim/2 values written as rope_freqs.weight; when empty they are
                                          // computed from config.rope_scaling (and omitted when it is disabled)
};

// llama.cpp's llama_ftype for a file whose matrices are `t` (general.file_type; the K-quants as their _M presets
// are numbered where llama.cpp has no plain one).
[[nodiscard]] constexpr std::uint32_t llama_file_type(DType t) noexcept {
  switch (t) {
    case DType::F32: return 0;      // LLAMA_FTYPE_ALL_F32
    case DType::F16: return 1;      // LLAMA_FTYPE_MOSTLY_F16
    case DType::Q4_0: return 2;     // LLAMA_FTYPE_MOSTLY_Q4_0
    case DType::Q4_1: return 3;     // LLAMA_FTYPE_MOSTLY_Q4_1
    case DType::Q8_0: return 7;     // LLAMA_FTYPE_MOSTLY_Q8_0
    case DType::Q5_0: return 8;     // LLAMA_FTYPE_MOSTLY_Q5_0
    case DType::Q5_1: return 9;     // LLAMA_FTYPE_MOSTLY_Q5_1
    case DType::Q2_K: return 10;    // LLAMA_FTYPE_MOSTLY_Q2_K
    case DType::Q3_K: return 12;    // LLAMA_FTYPE_MOSTLY_Q3_K_M
    case DType::Q4_K: return 15;    // LLAMA_FTYPE_MOSTLY_Q4_K_M
    case DType::Q5_K: return 17;    // LLAMA_FTYPE_MOSTLY_Q5_K_M
    case DType::Q6_K: return 18;    // LLAMA_FTYPE_MOSTLY_Q6_K
    case DType::IQ4_NL: return 25;  // LLAMA_FTYPE_MOSTLY_IQ4_NL
    case DType::BF16: return 32;    // LLAMA_FTYPE_MOSTLY_BF16
    case DType::Q8_1:
    case DType::Q8_K: break;
  }
  return 0;
}

// The type a matrix with `cols` columns is stored as when `requested`, with llama.cpp's fallbacks
// (llama-quantize's "using fallback quantization") for rows that do not split into whole blocks: a K-quant row
// that is not a multiple of 256 becomes Q2_K/Q3_K -> IQ4_NL, Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, and a row
// that is not a multiple of 32 then becomes F16 (as the GGUF converters also do). SmolLM2's dim 576 and
// stories260K's ffn width 172 are such cases.
[[nodiscard]] constexpr DType storage_type(DType requested, std::int64_t cols) noexcept {
  DType t = requested;
  if (cols % block_values(t) != 0) {
    switch (t) {
      case DType::Q2_K:
      case DType::Q3_K: t = DType::IQ4_NL; break;
      case DType::Q4_K: t = DType::Q5_0; break;
      case DType::Q5_K: t = DType::Q5_1; break;
      case DType::Q6_K: t = DType::Q8_0; break;
      default: break;
    }
  }
  return cols % block_values(t) == 0 ? t : DType::F16;
}

namespace detail {

// rows x cols f32 -> rows rows of type t (row_bytes(t, cols) each).
inline void convert_rows(DType t, const float* src, std::byte* dst, std::int64_t rows, std::int64_t cols,
                         ThreadPool* pool) {
  const std::int64_t rb = row_bytes(t, cols);
  auto part = [&](std::int64_t r0, std::int64_t r1) {
    for (std::int64_t r = r0; r < r1; ++r) quantize_row(t, src + r * cols, dst + r * rb, cols);
  };
  if (pool != nullptr) pool->parallel_for(rows, part, std::max<std::int64_t>(1, 65536 / std::max<std::int64_t>(cols, 1)));
  else part(0, rows);
}

inline void write_vocab_metadata(GgufWriter& w, const Vocab& v) {
  validate_vocab(v, "write_llama_gguf: vocabulary");
  const bool spm = v.kind == Vocab::Kind::Spm;
  w.set_string("tokenizer.ggml.model", spm ? "llama" : "gpt2");
  if (!v.pre.empty()) w.set_string("tokenizer.ggml.pre", v.pre);
  w.set_strings("tokenizer.ggml.tokens", v.tokens);
  w.set_f32s("tokenizer.ggml.scores", v.scores);
  w.set_i32s("tokenizer.ggml.token_type", v.types);
  if (!spm) w.set_strings("tokenizer.ggml.merges", v.merges);
  // Ids are u32 as llama.cpp's gguf writer stores them; -1 (none) is left out.
  const auto id = [&](const char* key, std::int32_t x) {
    if (x >= 0) w.set_u32(key, static_cast<std::uint32_t>(x));
  };
  id("tokenizer.ggml.bos_token_id", v.bos);
  id("tokenizer.ggml.eos_token_id", v.eos);
  id("tokenizer.ggml.unknown_token_id", v.unk);
  id("tokenizer.ggml.padding_token_id", v.pad);
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  w.set_bool("tokenizer.ggml.add_eos_token", v.add_eos);
  if (v.add_space_prefix != spm) w.set_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
}

}  // namespace detail

inline void write_llama_gguf(const std::string& path, const ModelConfig& c, const Vocab& vocab, DType matrix_type,
                             const TensorSource& src, std::string_view model_name,
                             const GgufExportOptions& opt = {}) {
  detail::validate_config(path, c);
  ES_CHECK(vocab.size() == c.vocab_size, path, ": the vocabulary has ", vocab.size(),
           " tokens but the model's vocab_size is ", c.vocab_size);
  ES_CHECK(static_cast<bool>(src), path, ": no tensor source");
  const std::int64_t hd = c.head_dim();

  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("general.name", model_name);
  w.set_u32("general.file_type", llama_file_type(matrix_type));
  w.set_u32("general.quantization_version", 2);
  w.set_u32("llama.context_length", static_cast<std::uint32_t>(c.max_seq));
  w.set_u32("llama.embedding_length", static_cast<std::uint32_t>(c.dim));
  w.set_u32("llama.block_count", static_cast<std::uint32_t>(c.n_layers));
  w.set_u32("llama.feed_forward_length", static_cast<std::uint32_t>(c.ffn_dim));
  w.set_u32("llama.rope.dimension_count", static_cast<std::uint32_t>(hd));
  w.set_f32("llama.rope.freq_base", c.rope_base);
  w.set_u32("llama.attention.head_count", static_cast<std::uint32_t>(c.n_heads));
  w.set_u32("llama.attention.head_count_kv", static_cast<std::uint32_t>(c.n_kv_heads));
  w.set_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  w.set_u32("llama.vocab_size", static_cast<std::uint32_t>(c.vocab_size));
  detail::write_vocab_metadata(w, vocab);
  if (opt.carry_metadata != nullptr)
    for (const auto& [key, value] : opt.carry_metadata->metadata()) {
      const bool tokenizer_key = key.rfind("tokenizer.", 0) == 0;
      if (w.has(key) || key == "general.alignment" || (tokenizer_key && !opt.carry_tokenizer)) continue;
      if (value.type == gguf::ValueType::Array && value.elem_type == gguf::ValueType::Array) continue;
      w.set_value(key, value);
    }

  ThreadPool* pool = opt.pool;
  // Each filler runs when GgufWriter::write reaches its tensor: one tensor's f32 values (plus its converted
  // bytes) are in memory at a time. F32 tensors are filled in place.
  const auto matrix = [&](std::string name, std::int64_t rows, std::int64_t cols) {
    const DType t = storage_type(matrix_type, cols);
    w.add_tensor(name, {cols, rows}, t, [&src, name, rows, cols, t, pool](std::byte* dst) {
      if (t == DType::F32) {
        src(name, rows, cols, reinterpret_cast<float*>(dst));
        return;
      }
      std::vector<float> tmp(static_cast<std::size_t>(rows * cols));
      src(name, rows, cols, tmp.data());
      detail::convert_rows(t, tmp.data(), dst, rows, cols, pool);
    });
  };
  const auto norm = [&](std::string name, std::int64_t n) {
    w.add_tensor(name, {n}, DType::F32,
                 [&src, name, n](std::byte* dst) { src(name, 1, n, reinterpret_cast<float*>(dst)); });
  };

  const std::int64_t d = c.dim, kv = c.kv_dim(), ff = c.ffn_dim, v = c.vocab_size;
  matrix("token_embd.weight", v, d);
  std::vector<float> rope = opt.rope_freq_divisors;
  if (rope.empty() && c.rope_scaling.enabled()) {
    for (int i = 0; i < hd / 2; ++i)
      rope.push_back(c.rope_scaling.freq_divisor(
          std::pow(c.rope_base, -2.0f * static_cast<float>(i) / static_cast<float>(hd))));
  }
  if (!rope.empty()) {
    ES_CHECK(static_cast<std::int64_t>(rope.size()) == hd / 2, path, ": rope_freqs has ", rope.size(),
             " values, expected head_dim/2 = ", hd / 2);
    w.add_tensor("rope_freqs.weight", {hd / 2}, DType::F32,
                 [rope](std::byte* dst) { std::memcpy(dst, rope.data(), rope.size() * sizeof(float)); });
  }
  norm("output_norm.weight", d);
  if (c.classifier == Classifier::Separate) matrix("output.weight", v, d);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    norm(p + "attn_norm.weight", d);
    matrix(p + "attn_q.weight", d, d);
    matrix(p + "attn_k.weight", kv, d);
    matrix(p + "attn_v.weight", kv, d);
    matrix(p + "attn_output.weight", d, d);
    norm(p + "ffn_norm.weight", d);
    matrix(p + "ffn_gate.weight", ff, d);
    matrix(p + "ffn_down.weight", d, ff);
    matrix(p + "ffn_up.weight", ff, d);
  }
  w.write(path, gguf::kDefaultAlignment, opt.progress);
}

// The tensors of loaded weights (any supported file) as a TensorSource in llama.cpp names, decoded to f32 row by
// row; with write_llama_gguf this converts llama2.c checkpoints to GGUF or re-types a GGUF (edgespec-convert).
// `w` must outlive the source.
[[nodiscard]] inline TensorSource weights_tensor_source(const LlamaWeights& w) {
  auto mats = std::make_shared<std::map<std::string, MatrixView, std::less<>>>();
  auto norms = std::make_shared<std::map<std::string, const float*, std::less<>>>();
  (*mats)["token_embd.weight"] = w.tok_embd;
  if (w.config.classifier == Classifier::Separate) (*mats)["output.weight"] = w.output;
  (*norms)["output_norm.weight"] = w.output_norm;
  for (std::size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    (*norms)[p + "attn_norm.weight"] = L.attn_norm;
    (*norms)[p + "ffn_norm.weight"] = L.ffn_norm;
    (*mats)[p + "attn_q.weight"] = L.wq;
    (*mats)[p + "attn_k.weight"] = L.wk;
    (*mats)[p + "attn_v.weight"] = L.wv;
    (*mats)[p + "attn_output.weight"] = L.wo;
    (*mats)[p + "ffn_gate.weight"] = L.w1;
    (*mats)[p + "ffn_down.weight"] = L.w2;
    (*mats)[p + "ffn_up.weight"] = L.w3;
  }
  const std::string path = w.path;
  const std::int64_t dim = w.config.dim;
  return [mats, norms, path, dim](const std::string& t, std::int64_t rows, std::int64_t cols, float* dst) {
    if (const auto it = norms->find(t); it != norms->end()) {
      ES_CHECK(rows == 1 && cols == dim, path, ": norm '", t, "' requested with shape ", rows, "x", cols);
      std::memcpy(dst, it->second, static_cast<std::size_t>(cols) * sizeof(float));
      return;
    }
    const auto it = mats->find(t);
    ES_CHECK(it != mats->end(), path, ": no tensor '", t, "' in the model");
    const MatrixView& m = it->second;
    ES_CHECK(m.rows == rows && m.cols == cols, path, ": tensor '", t, "' is ", m.rows, "x", m.cols, ", expected ",
             rows, "x", cols);
    const auto* p = static_cast<const std::byte*>(m.data);
    for (std::int64_t r = 0; r < rows; ++r)
      dequantize_row(m.type, p + r * row_bytes(m.type, cols), dst + r * cols, cols);
  };
}

// Writes loaded weights with `vocab` as a GGUF whose matrices are `type` (rope_freqs carried over).
// With opt.carry_metadata left null, a GGUF source's own metadata is carried over (tokenizer.* keys only when
// opt.carry_tokenizer).
inline void convert_to_gguf(const std::string& path, const LlamaWeights& w, const Vocab& vocab, DType type,
                            std::string_view model_name, GgufExportOptions opt = {}) {
  ES_CHECK(w.path.empty() || std::filesystem::weakly_canonical(w.path) != std::filesystem::weakly_canonical(path),
           path, ": the output would overwrite the input (which is memory-mapped while writing)");
  opt.rope_freq_divisors = w.rope_freq_divisors;
  if (opt.carry_metadata == nullptr) opt.carry_metadata = w.gguf.get();
  ModelConfig c = w.config;
  c.weight_type = type;
  write_llama_gguf(path, c, vocab, type, weights_tensor_source(w), model_name, opt);
}

// ---- random-weight models in the shape of the ready-made architectures (edgespec-synth) ----

struct SynthShape {
  std::string_view name;    // command-line name
  std::string_view arch;    // the arch type's name
  ModelConfig config;       // weight_type F32; set per file
  Vocab::Kind vocab_kind;   // Llama-2 family: SPM; Llama 3: GPT-2 byte-level BPE
};

[[nodiscard]] inline std::span<const SynthShape> synth_shapes() {
  static const std::array<SynthShape, 7> shapes{{
      {"stories260k", Stories260K::name, config_of<Stories260K>(), Vocab::Kind::Spm},
      {"stories15m", Stories15M::name, config_of<Stories15M>(), Vocab::Kind::Spm},
      {"stories42m", Stories42M::name, config_of<Stories42M>(), Vocab::Kind::Spm},
      {"stories110m", Stories110M::name, config_of<Stories110M>(), Vocab::Kind::Spm},
      {"tinyllama-1.1b", TinyLlama1_1B::name, config_of<TinyLlama1_1B>(), Vocab::Kind::Spm},
      {"llama-3.2-1b", Llama3_2_1B::name, config_of<Llama3_2_1B>(), Vocab::Kind::Gpt2},
      {"llama-3.2-3b", Llama3_2_3B::name, config_of<Llama3_2_3B>(), Vocab::Kind::Gpt2},
  }};
  return shapes;
}

[[nodiscard]] inline const SynthShape& find_synth_shape(std::string_view name) {
  std::string valid;
  for (const SynthShape& s : synth_shapes()) {
    if (s.name == name) return s;
    valid += (valid.empty() ? "" : ", ") + std::string(s.name);
  }
  throw_error("unknown model shape '", name, "' (valid shapes: ", valid, ")");
}

namespace detail {

[[nodiscard]] constexpr std::uint64_t splitmix64(std::uint64_t x) noexcept {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
[[nodiscard]] constexpr std::uint64_t fnv1a(std::string_view s) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ull;
  return h;
}

// Counter-based N(0, 1)-like values: value i = Irwin-Hall sum of the four 16-bit lanes of splitmix64(key + i),
// standardized (mean 0, variance 1, bounded by +-3.46). Any element is computable alone, so tensors are
// generated in parallel and identically for every thread count.
inline void fill_normal(std::uint64_t key, std::int64_t first, std::int64_t n, float mean, float std_dev,
                        float* out) noexcept {
  // sum of 4 uniform{0..65535}: mean 4 * 32767.5, variance 4 * (65536^2 - 1) / 12
  constexpr double kMean = 4 * 32767.5;
  const double kStd = std::sqrt(4.0 * (65536.0 * 65536.0 - 1.0) / 12.0);
  const float scale = static_cast<float>(std_dev / kStd);
  const float offset = mean - static_cast<float>(kMean) * scale;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint64_t r = splitmix64(key + static_cast<std::uint64_t>(first + i) * 0x9E3779B97F4A7C15ull);
    const auto s = static_cast<float>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
    out[i] = s * scale + offset;
  }
}

// Units of a synthesized vocabulary: `base` symbols (single code points, UTF-8) and tokens built level by level,
// level k = (level k-1 token) + (one of the first widths[k] base symbols), so every token of k+1 symbols is the
// merge of a token of k symbols and a base symbol; all are distinct by construction (distinct prefix or last
// symbol, fixed length per level). Calls emit(left, right) for each new token until `n` were made.
template <class Emit>
void grow_tokens(const std::vector<std::string>& base, std::size_t n, Emit&& emit) {
  std::vector<std::string> prev = base;
  std::size_t made = 0;
  for (int level = 1; made < n; ++level) {
    // Few right-hand symbols per level: vocabularies grow through every level instead of one flat layer.
    const std::size_t width = std::min(base.size(), level == 1 ? std::size_t{48} : std::size_t{16});
    std::vector<std::string> next;
    for (std::size_t a = 0; a < prev.size() && made < n; ++a)
      for (std::size_t b = 0; b < width && made < n; ++b) {
        next.push_back(prev[a] + base[b]);
        emit(prev[a], base[b], next.back());
        ++made;
      }
    ES_CHECK(!next.empty(), "synth vocabulary: cannot grow further");
    prev = std::move(next);
  }
}

// Printable characters in a plausible frequency order (first ones take part in the most merges).
inline constexpr std::string_view kSynthChars =
    "etaoinshrdlucmfwypvbgkjqxz.,'!?-ETAOINSHRDLUCMFWYPVBGKJQXZ0123456789:;\"()";

}  // namespace detail

// A Llama-2-style SentencePiece vocabulary of exactly n tokens (n >= 259 + 1):
//   0 <unk> (unknown), 1 <s>, 2 </s> (control), 3..258 <0x00>..<0xFF> (byte),
//   then normal pieces with decreasing scores: '▁' and single characters, then merged pieces (▁-prefixed first).
[[nodiscard]] inline Vocab make_synth_spm_vocab(int n) {
  ES_CHECK(n >= 260, "synth SPM vocabulary needs at least 260 tokens (3 special + 256 bytes + 1), got ", n);
  Vocab v;
  v.kind = Vocab::Kind::Spm;
  v.bos = 1, v.eos = 2, v.unk = 0, v.pad = -1;
  v.add_bos = true, v.add_eos = false, v.add_space_prefix = true;
  auto add = [&](std::string text, float score, std::int32_t type) {
    v.tokens.push_back(std::move(text));
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  add("<unk>", 0.0f, token_type::unknown);
  add("<s>", 0.0f, token_type::control);
  add("</s>", 0.0f, token_type::control);
  for (int b = 0; b < 256; ++b) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, 0.0f, token_type::byte);
  }
  std::vector<std::string> base{"\xE2\x96\x81"};  // U+2581 '▁' first: word starts merge first
  for (const char c : detail::kSynthChars) base.emplace_back(1, c);
  float score = -1.0f;
  for (const std::string& s : base) {
    if (v.size() == n) break;
    add(s, score, token_type::normal);
    score -= 1.0f;
  }
  if (v.size() < n)
    detail::grow_tokens(base, static_cast<std::size_t>(n - v.size()),
                        [&](const std::string&, const std::string&, const std::string& t) {
                          add(t, score, token_type::normal);
                          score -= 1.0f;
                        });
  return v;
}

// A Llama-3-style GPT-2 byte-level BPE vocabulary of exactly n tokens (pre-tokenizer "llama-bpe", as Llama 3 files):
//   0..255 the byte alphabet (token b is byte b), then merged tokens, each the result of
//   merges[i] (rank i) of two earlier tokens, then <|begin_of_text|> (bos) and <|end_of_text|> (eos), control.
[[nodiscard]] inline Vocab make_synth_gpt2_vocab(int n) {
  ES_CHECK(n >= 259, "synth GPT-2 vocabulary needs at least 259 tokens (256 bytes + 1 merge + 2 control), got ", n);
  const detail::ByteAlphabet& alpha = detail::byte_alphabet();
  Vocab v;
  v.kind = Vocab::Kind::Gpt2;
  v.pre = "llama-bpe";
  v.unk = -1, v.pad = -1;
  v.add_bos = true, v.add_eos = false, v.add_space_prefix = false;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(alpha.to_utf8[static_cast<std::size_t>(b)]);
  // Base symbols for merges: ' ' (as 'Ġ') first, then common characters, then every other byte.
  std::vector<std::string> base{alpha.to_utf8[' ']};
  std::unordered_set<unsigned char> used{' '};
  for (const char c : detail::kSynthChars) {
    base.push_back(alpha.to_utf8[static_cast<unsigned char>(c)]);
    used.insert(static_cast<unsigned char>(c));
  }
  for (int b = 0; b < 256; ++b)
    if (used.count(static_cast<unsigned char>(b)) == 0) base.push_back(alpha.to_utf8[static_cast<std::size_t>(b)]);
  detail::grow_tokens(base, static_cast<std::size_t>(n - 258),
                      [&](const std::string& l, const std::string& r, const std::string& t) {
                        v.tokens.push_back(t);
                        v.merges.push_back(l + " " + r);
                      });
  v.bos = static_cast<std::int32_t>(v.tokens.size());
  v.tokens.emplace_back("<|begin_of_text|>");
  v.eos = static_cast<std::int32_t>(v.tokens.size());
  v.tokens.emplace_back("<|end_of_text|>");
  v.types.assign(v.tokens.size(), token_type::normal);
  v.types[static_cast<std::size_t>(v.bos)] = v.types[static_cast<std::size_t>(v.eos)] = token_type::control;
  v.scores.assign(v.tokens.size(), 0.0f);
  return v;
}

// Random weights shaped like a trained model's, so activations stay finite and logits spread through any depth:
//   token_embd, output ~ N(0, 0.02)          (output: N(0, 1/sqrt(dim)) when separate, logit std ~ 1)
//   attn_q/k/v, ffn_gate/up ~ N(0, 1/sqrt(cols))      attn_output, ffn_down: the same / sqrt(2 n_layers)
//   norms ~ 1 + N(0, 0.02)
// (GPT-2's residual scaling: each of the 2 L residual branches adds ~1/(2L) to the stream's variance.)
// Values depend only on (seed, tensor name, element index).
[[nodiscard]] inline TensorSource random_llama_weights(const ModelConfig& c, std::uint64_t seed,
                                                       ThreadPool* pool = nullptr) {
  const float residual = 1.0f / std::sqrt(2.0f * static_cast<float>(c.n_layers));
  return [seed, residual, pool](const std::string& name, std::int64_t rows, std::int64_t cols, float* out) {
    const std::uint64_t key = detail::splitmix64(seed ^ detail::splitmix64(detail::fnv1a(name)));
    float mean = 0.0f, std_dev = 1.0f / std::sqrt(static_cast<float>(cols));
    const auto has = [&](std::string_view s) { return name.find(s) != std::string::npos; };
    if (rows == 1 || has("_norm")) mean = 1.0f, std_dev = 0.02f;
    else if (has("token_embd")) std_dev = 0.02f;
    else if (has("attn_output") || has("ffn_down")) std_dev *= residual;
    auto part = [&](std::int64_t r0, std::int64_t r1) {
      detail::fill_normal(key, r0 * cols, (r1 - r0) * cols, mean, std_dev, out + r0 * cols);
    };
    if (pool != nullptr) pool->parallel_for(rows, part, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(cols, 1)));
    else part(0, rows);
  };
}

struct SynthOptions {
  std::string shape;         // a name from synth_shapes()
  DType type = DType::F32;   // matrix type
  std::uint64_t seed = 0;
  int layers = 0;            // 0: the shape's layer count
  int ctx = 0;               // 0: the shape's context length
  ThreadPool* pool = nullptr;
};

// The config a synth file gets (shape, --layers, --ctx applied).
[[nodiscard]] inline ModelConfig synth_config(const SynthOptions& o) {
  ModelConfig c = find_synth_shape(o.shape).config;
  ES_CHECK(o.layers >= 0 && o.layers <= 1024, "synth: layers ", o.layers, " is out of range [1, 1024]");
  ES_CHECK(o.ctx >= 0 && o.ctx <= (1 << 24), "synth: ctx ", o.ctx, " is out of range [1, 16777216]");
  if (o.layers > 0) c.n_layers = o.layers;
  if (o.ctx > 0) c.max_seq = o.ctx;
  c.weight_type = o.type;
  return c;
}

[[nodiscard]] inline Vocab make_synth_vocab(const SynthShape& s) {
  return s.vocab_kind == Vocab::Kind::Spm ? make_synth_spm_vocab(s.config.vocab_size)
                                          : make_synth_gpt2_vocab(s.config.vocab_size);
}

// Writes a random-weight model of shape o.shape to `path`.
inline void synth_llama_gguf(const std::string& path, const SynthOptions& o) {
  const SynthShape& s = find_synth_shape(o.shape);
  const ModelConfig c = synth_config(o);
  GgufExportOptions eo;
  eo.pool = o.pool;
  write_llama_gguf(path, c, make_synth_vocab(s), o.type, random_llama_weights(c, o.seed, o.pool),
                   std::string("synth-") + std::string(s.name), eo);
}

}  // namespace edgespec
