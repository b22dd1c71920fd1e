// A Llama transformer bound to a compile-time architecture `Arch`, with its own KV cache.
//
// forward() runs n consecutive positions in ONE pass (prompt prefill, or verification of a draft): every
// weight matrix is read once per call, not once per position. truncate() rolls the KV cache back to any
// earlier position (speculative decoding rejects a draft suffix this way).
//
// Per layer, for a batch X (n, dim) at positions p0 .. p0+n-1:
//   H = rmsnorm(X) * attn_norm
//   Q = H Wq^T (n, dim)   K = H Wk^T (n, kv_dim)   V = H Wv^T (n, kv_dim)    rope(Q), rope(K) at their positions
//   cache[p0+i] <- K[i], V[i]
//   A[i, head h] = softmax(Q[i,h] . K_cache[0..p0+i, h/g] / sqrt(head_dim)) V_cache[0..p0+i, h/g]   (g = heads/kv_heads)
//   X += A Wo^T
//   H = rmsnorm(X) * ffn_norm;   X += (silu(H W1^T) * (H W3^T)) W2^T
// logits = rmsnorm(X) * output_norm  Wout^T   (vocab)
//
// KV cache precision (KvType): F16 by default, as llama.cpp's default cache: K and V are stored in f16, and the
// attention products round their other operand to f16 as ggml's f16 mat-mul does (Q before Q.K, the softmax
// weights before A.V). This reproduces llama.cpp's logits to ~1e-4 and halves KV memory; F32 keeps everything
// in f32 (differs from llama.cpp by up to ~1e-2 in a logit on the reference models).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "edgespec/core/error.hpp"
#include "edgespec/core/extent.hpp"
#include "edgespec/kernels/attention.hpp"
#include "edgespec/kernels/matmul.hpp"
#include "edgespec/kernels/ops.hpp"
#include "edgespec/kernels/quantize.hpp"
#include "edgespec/model/arch.hpp"
#include "edgespec/model/weights.hpp"
#include "edgespec/runtime/thread_pool.hpp"

namespace edgespec {

// Which rows of logits forward() computes.
enum class Logits { Last, All };

enum class KvType { F16, F32 };

namespace detail {

// Rejects a file whose config disagrees with a fixed field of the type, naming the field and both values.
template <class Arch>
void check_config_against(const ModelConfig& c, const std::string& path) {
  (void)check_arch<Arch>::value;
  auto field = [&](const char* name, int type_v, int file_v) {
    ES_CHECK(type_v == dynamic || type_v == file_v, path, ": field '", name, "' is ", file_v,
             " in the file but ", type_v, " in the model type ", Arch::name);
  };
  field("dim", Arch::dim, c.dim);
  field("n_layers", Arch::n_layers, c.n_layers);
  field("n_heads", Arch::n_heads, c.n_heads);
  field("n_kv_heads", Arch::n_kv_heads, c.n_kv_heads);
  field("ffn_dim", Arch::ffn_dim, c.ffn_dim);
  field("vocab_size", Arch::vocab_size, c.vocab_size);
  if constexpr (Arch::classifier >= 0) {
    const bool want_tied = Arch::classifier == static_cast<int>(Classifier::Tied);
    const bool tied = c.classifier == Classifier::Tied;
    // A type that promises a separate classifier needs one in the file; a tied type accepts either (a file's
    // separate classifier may be a copy of the embedding, as llama.cpp's llama2.c converter writes).
    ES_CHECK(want_tied || !tied, path, ": field 'classifier' is tied in the file but separate in the model type ",
             Arch::name);
  }
  ES_CHECK(format_accepts(Arch::weight, c.weight_type), path, ": field 'weight_type' is ", name(c.weight_type),
           " in the file but the model type ", Arch::name, " is compiled for another weight format");
  if constexpr (is_fully_fixed<Arch>) {
    auto close = [](float a, float b) { return std::fabs(a - b) <= 1e-6f * std::max(std::fabs(a), std::fabs(b)); };
    ES_CHECK(close(Arch::norm_eps, c.norm_eps), path, ": field 'norm_eps' is ", c.norm_eps, " in the file but ",
             Arch::norm_eps, " in the model type ", Arch::name);
    ES_CHECK(close(Arch::rope_base, c.rope_base), path, ": field 'rope_base' is ", c.rope_base,
             " in the file but ", Arch::rope_base, " in the model type ", Arch::name);
  }
}

}  // namespace detail

// The KV cache of one sequence: K and V rows (layers, max_seq, kv_dim) in f16 or f32, and how many positions
// are valid. A Transformer owns one (forward()); more can be made for other sequences that share the model's
// weights (make_cache(), forward_batch(): a server verifying many clients in one pass).
class KvCache {
 public:
  KvCache() = default;
  KvCache(int n_layers, int kv_dim, int max_seq, KvType type, const std::string& what)
      : n_layers_(n_layers), kv_dim_(kv_dim), max_seq_(max_seq), type_(type) {
    ES_CHECK(max_seq > 0 && max_seq <= (1 << 24), "max_seq ", max_seq, " is out of range");
    const auto kv_floats = static_cast<std::size_t>(n_layers) * static_cast<std::size_t>(max_seq) *
                           static_cast<std::size_t>(kv_dim);
    const std::size_t elem = type == KvType::F16 ? 2 : 4;
    try {
      k_.assign(kv_floats * elem, std::byte{0});
      v_.assign(kv_floats * elem, std::byte{0});
    } catch (const std::bad_alloc&) {
      throw_error(what, ": the KV cache for max_seq ", max_seq, " needs ",
                  static_cast<double>(2 * kv_floats * elem) / (1 << 30), " GiB, which cannot be allocated; pass a "
                  "smaller max_seq (context length)");
    }
  }

  [[nodiscard]] int position() const noexcept { return pos_; }
  [[nodiscard]] int max_seq() const noexcept { return max_seq_; }
  [[nodiscard]] KvType type() const noexcept { return type_; }
  [[nodiscard]] int n_layers() const noexcept { return n_layers_; }
  [[nodiscard]] int kv_dim() const noexcept { return kv_dim_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return k_.size() + v_.size(); }

  // Forget positions >= pos (rollback). Entries past pos are stale and are overwritten on reuse.
  void truncate(int pos) {
    ES_CHECK(pos >= 0 && pos <= pos_, "truncate(", pos, "): position must be in [0, ", pos_, "]");
    pos_ = pos;
  }
  void reset() noexcept { pos_ = 0; }

  // K or V of `layer` at position `pos` (kv_dim values) as f32, for tests and diagnostics.
  [[nodiscard]] std::vector<float> key(int layer, int pos) const { return read_row(k_, layer, pos); }
  [[nodiscard]] std::vector<float> value(int layer, int pos) const { return read_row(v_, layer, pos); }

 private:
  template <class>
  friend class Transformer;

  [[nodiscard]] std::size_t row_index(int layer, int pos) const noexcept {
    return (static_cast<std::size_t>(layer) * static_cast<std::size_t>(max_seq_) + static_cast<std::size_t>(pos)) *
           static_cast<std::size_t>(kv_dim_);
  }
  // Cache rows are f16 (uint16) or f32 depending on type_.
  template <class T>
  [[nodiscard]] const T* k_row(int layer, int pos) const noexcept {
    return reinterpret_cast<const T*>(k_.data()) + row_index(layer, pos);
  }
  template <class T>
  [[nodiscard]] const T* v_row(int layer, int pos) const noexcept {
    return reinterpret_cast<const T*>(v_.data()) + row_index(layer, pos);
  }
  void write(int layer, int pos, const float* k, const float* v) {
    write_row(k_, layer, pos, k);
    write_row(v_, layer, pos, v);
  }
  void write_row(std::vector<std::byte>& cache, int layer, int pos, const float* src) {
    if (type_ == KvType::F16)
      fp32_to_fp16_row(src, reinterpret_cast<std::uint16_t*>(cache.data()) + row_index(layer, pos), kv_dim_);
    else
      std::copy_n(src, kv_dim_, reinterpret_cast<float*>(cache.data()) + row_index(layer, pos));
  }
  [[nodiscard]] std::vector<float> read_row(const std::vector<std::byte>& cache, int layer, int pos) const {
    ES_CHECK(layer >= 0 && layer < n_layers_ && pos >= 0 && pos < pos_, "KV cache row (", layer, ", ", pos,
             ") is out of range");
    std::vector<float> out(static_cast<std::size_t>(kv_dim_));
    if (type_ == KvType::F16)
      fp16_to_fp32_row(reinterpret_cast<const std::uint16_t*>(cache.data()) + row_index(layer, pos), out.data(),
                       kv_dim_);
    else
      std::copy_n(reinterpret_cast<const float*>(cache.data()) + row_index(layer, pos), kv_dim_, out.data());
    return out;
  }

  std::vector<std::byte> k_, v_;  // (layers, max_seq, kv_dim) of f16 or f32
  int n_layers_ = 0, kv_dim_ = 0, max_seq_ = 0, pos_ = 0;
  KvType type_ = KvType::F16;
};

// One sequence of a batched forward (Transformer::forward_batch): its cache, the tokens to run at positions
// [cache->position(), + tokens.size()), and how many of its last rows need logits (1: the next-token
// distribution; tokens.size(): every position, as verification does; 0: none, a prefill that only fills the
// cache).
struct SequenceInput {
  KvCache* cache = nullptr;
  std::span<const std::int32_t> tokens;
  int logit_rows = 1;
};

template <class Arch = AnyLlama>
class Transformer {
  static_assert(check_arch<Arch>::value);

 public:
  using arch_type = Arch;
  static constexpr int kDim = Arch::dim;
  static constexpr int kFfn = Arch::ffn_dim;
  static constexpr int kHeadDim = head_dim_of<Arch>;

  // max_seq: KV-cache length; 0 takes the type's max_seq when fixed, else the file's context length.
  Transformer(std::shared_ptr<const LlamaWeights> weights, ThreadPool& pool, int max_seq = 0,
              KvType kv_type = KvType::F16)
      : w_(std::move(weights)), pool_(&pool), c_(w_->config), kv_type_(kv_type) {
    detail::check_config_against<Arch>(c_, w_->path);
    if (max_seq <= 0) max_seq = Arch::max_seq != dynamic ? Arch::max_seq : c_.max_seq;
    ES_CHECK(max_seq > 0 && max_seq <= (1 << 24), "max_seq ", max_seq, " is out of range");
    c_.max_seq = max_seq;
    cache_ = make_cache(max_seq);
    inv_freq_ = c_.rope_inv_freq();
    if (!w_->rope_freq_divisors.empty())
      for (std::size_t i = 0; i < inv_freq_.size(); ++i) inv_freq_[i] /= w_->rope_freq_divisors[i];
    skip_.assign(static_cast<std::size_t>(c_.n_layers), 0);
  }

  [[nodiscard]] const ModelConfig& config() const noexcept { return c_; }
  [[nodiscard]] const LlamaWeights& weights() const noexcept { return *w_; }
  [[nodiscard]] const std::shared_ptr<const LlamaWeights>& shared_weights() const noexcept { return w_; }
  [[nodiscard]] ThreadPool& pool() const noexcept { return *pool_; }
  [[nodiscard]] int position() const noexcept { return cache_.position(); }
  [[nodiscard]] int vocab_size() const noexcept { return c_.vocab_size; }
  [[nodiscard]] KvType kv_type() const noexcept { return kv_type_; }
  // The cache forward() uses.
  [[nodiscard]] const KvCache& cache() const noexcept { return cache_; }

  // A fresh cache for another sequence over the same weights (forward_batch); max_seq 0: this model's.
  [[nodiscard]] KvCache make_cache(int max_seq = 0) const {
    return KvCache(c_.n_layers, c_.kv_dim(), max_seq > 0 ? max_seq : c_.max_seq, kv_type_, w_->path);
  }

  // Forget positions >= pos (KV-cache rollback). Entries past pos are stale and are overwritten on reuse.
  void truncate(int pos) { cache_.truncate(pos); }
  void reset() noexcept { cache_.reset(); }

  // Layers to skip (self-speculative drafting): skipped layers leave the residual stream unchanged.
  void set_skipped_layers(std::span<const int> layers) {
    std::fill(skip_.begin(), skip_.end(), 0);
    for (int l : layers) {
      ES_CHECK(l >= 0 && l < c_.n_layers, "skip layer ", l, " is out of range [0, ", c_.n_layers, ")");
      skip_[static_cast<std::size_t>(l)] = 1;
    }
  }

  // K or V of `layer` at position `pos` (kv_dim values) as f32, for tests and diagnostics.
  [[nodiscard]] std::vector<float> key(int layer, int pos) const { return cache_.key(layer, pos); }
  [[nodiscard]] std::vector<float> value(int layer, int pos) const { return cache_.value(layer, pos); }

  // Runs `tokens` at positions [position(), position() + n) and returns logits: n rows (Logits::All) or the
  // last row (Logits::Last), each vocab_size floats, valid until the next call.
  std::span<const float> forward(std::span<const std::int32_t> tokens, Logits which = Logits::Last) {
    const SequenceInput one{&cache_, tokens, which == Logits::All ? static_cast<int>(tokens.size()) : 1};
    return forward_batch(std::span<const SequenceInput>(&one, 1));
  }

  // Several sequences in ONE pass: their positions are stacked into one batch (rows of sequence 0, then 1, ...),
  // so each weight matrix is read once for all of them; each sequence attends to its own cache only. Returns
  // the logits rows asked for, sequence by sequence (seqs[s].logit_rows rows each, vocab_size floats per row),
  // valid until the next call. A sequence's rows are bit-identical to what forward() over it alone returns.
  std::span<const float> forward_batch(std::span<const SequenceInput> seqs) {
    return run(seqs, nullptr, 0, c_.n_layers, true);
  }

  // A part of the forward pass, for a model split across devices (opencl/split.hpp): layers [first, last) over
  // `tokens` at [position(), + n), starting from the embedding (hidden_in null) or from hidden states (n, dim)
  // handed over by the part before; with `head`, the classifier over the last logit_rows rows, returning logits,
  // else the hidden states (n, dim) after layer last - 1. Each part keeps the KV cache of its own layers.
  std::span<const float> forward_part(std::span<const std::int32_t> tokens, const float* hidden_in, int first,
                                      int last, bool head, int logit_rows) {
    ES_CHECK(first >= 0 && first <= last && last <= c_.n_layers, "forward_part: layers [", first, ", ", last,
             ") are not within [0, ", c_.n_layers, "]");
    const SequenceInput one{&cache_, tokens, head ? logit_rows : 0};
    return run(std::span<const SequenceInput>(&one, 1), hidden_in, first, last, head);
  }

 private:
  std::span<const float> run(std::span<const SequenceInput> seqs, const float* hidden_in, int first_layer,
                             int last_layer, bool head) {
    ES_CHECK(!seqs.empty(), "forward_batch: no sequences");
    std::int64_t n = 0, out_rows = 0;
    for (std::size_t s = 0; s < seqs.size(); ++s) {
      const SequenceInput& in = seqs[s];
      ES_CHECK(in.cache != nullptr, "forward_batch: sequence ", s, " has no KV cache");
      const KvCache& kc = *in.cache;
      ES_CHECK(kc.n_layers() == c_.n_layers && kc.kv_dim() == c_.kv_dim() && kc.type() == kv_type_,
               "forward_batch: sequence ", s, "'s KV cache was not made for this model (", kc.n_layers(),
               " layers x ", kc.kv_dim(), ", expected ", c_.n_layers, " x ", c_.kv_dim(), ")");
      for (std::size_t t = 0; t < s; ++t)
        ES_CHECK(seqs[t].cache != in.cache, "forward_batch: sequences ", t, " and ", s, " share one KV cache");
      const auto len = static_cast<std::int64_t>(in.tokens.size());
      ES_CHECK(len > 0, "forward: no tokens");
      ES_CHECK(kc.position() + len <= kc.max_seq(), "forward: context overflow: ", kc.position(), " + ", len,
               " tokens exceed max_seq ", kc.max_seq());
      ES_CHECK(in.logit_rows >= 0 && in.logit_rows <= len, "forward_batch: sequence ", s, " asks for ",
               in.logit_rows, " rows of logits out of ", len);
      n += len;
      out_rows += in.logit_rows;
    }
    const std::int64_t d = c_.dim, kv = c_.kv_dim(), ff = c_.ffn_dim, v = c_.vocab_size;
    reserve(n);
    rows_.clear();
    float* x = x_.data();
    for (const SequenceInput& in : seqs)
      for (std::size_t i = 0; i < in.tokens.size(); ++i) {
        const std::int32_t t = in.tokens[i];
        ES_CHECK(t >= 0 && t < c_.vocab_size, "forward: token id ", t, " is out of range [0, ", c_.vocab_size, ")");
        const auto r = static_cast<std::int64_t>(rows_.size());
        rows_.push_back({in.cache, in.cache->position() + static_cast<int>(i)});
        if (hidden_in != nullptr) continue;
        const MatrixView& e = w_->tok_embd;
        dequantize_row(e.type, static_cast<const std::byte*>(e.data) + row_bytes(e.type, d) * t, x + r * d, d);
      }
    if (hidden_in != nullptr) std::copy_n(hidden_in, n * d, x);

    for (int l = first_layer; l < last_layer; ++l) {
      if (skip_[static_cast<std::size_t>(l)] != 0) continue;
      const LayerWeights& L = w_->layers[static_cast<std::size_t>(l)];
      norm_rows(x, L.attn_norm, n);
      matmul<kDim>(*pool_, L.wq, xb_.data(), n, q_.data());
      matmul<kDim>(*pool_, L.wk, xb_.data(), n, k_.data());
      matmul<kDim>(*pool_, L.wv, xb_.data(), n, v_.data());
      for (std::int64_t i = 0; i < n; ++i) {
        const Row& r = rows_[static_cast<std::size_t>(i)];
        rope_inplace(q_.data() + i * d, c_.n_heads, c_.head_dim(), r.pos, inv_freq_.data(), c_.rope_style);
        rope_inplace(k_.data() + i * kv, c_.n_kv_heads, c_.head_dim(), r.pos, inv_freq_.data(), c_.rope_style);
        r.cache->write(l, r.pos, k_.data() + i * kv, v_.data() + i * kv);
      }
      attention(l, n);
      matmul<kDim>(*pool_, L.wo, att_.data(), n, xb_.data());
      add_inplace(x, xb_.data(), n * d);

      norm_rows(x, L.ffn_norm, n);
      matmul<kDim>(*pool_, L.w1, xb_.data(), n, hb_.data());
      matmul<kDim>(*pool_, L.w3, xb_.data(), n, hb2_.data());
      for (std::int64_t i = 0; i < n; ++i)  // row by row: a row's chunking, so its rounding, is the same for any n
        swiglu<kFfn>(hb_.data() + i * ff, hb2_.data() + i * ff, ff);
      matmul<kFfn>(*pool_, L.w2, hb_.data(), n, xb_.data());
      add_inplace(x, xb_.data(), n * d);
    }
    for (const SequenceInput& in : seqs) in.cache->pos_ += static_cast<int>(in.tokens.size());
    if (!head) return {x_.data(), static_cast<std::size_t>(n * d)};

    // The classifier over the rows asked for: norm them into xb_ (out_rows, dim), one product.
    std::int64_t first = 0, out = 0;
    for (const SequenceInput& in : seqs) {
      const auto len = static_cast<std::int64_t>(in.tokens.size());
      for (std::int64_t i = len - in.logit_rows; i < len; ++i, ++out)
        rmsnorm<kDim>(xb_.data() + out * d, x + (first + i) * d, w_->output_norm, c_.dim, c_.norm_eps);
      first += len;
    }
    if (out_rows > 0) matmul<kDim>(*pool_, w_->output, xb_.data(), out_rows, logits_.data());
    return {logits_.data(), static_cast<std::size_t>(out_rows * v)};
  }

 private:
  struct Row {
    KvCache* cache;
    int pos;
  };

  void reserve(std::int64_t n) {
    if (n <= batch_cap_) return;
    const auto d = static_cast<std::size_t>(c_.dim), kv = static_cast<std::size_t>(c_.kv_dim());
    const auto ff = static_cast<std::size_t>(c_.ffn_dim), v = static_cast<std::size_t>(c_.vocab_size);
    const auto un = static_cast<std::size_t>(n);
    x_.resize(un * d);
    xb_.resize(un * d);
    q_.resize(un * d);
    att_.resize(un * d);
    k_.resize(un * kv);
    v_.resize(un * kv);
    hb_.resize(un * ff);
    hb2_.resize(un * ff);
    logits_.resize(un * v);
    rows_.reserve(un);
    batch_cap_ = n;
  }

  // xb_[i] = rmsnorm(x[i]) * w for each of the n rows.
  void norm_rows(const float* x, const float* w, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) rmsnorm<kDim>(xb_.data() + i * c_.dim, x + i * c_.dim, w, c_.dim, c_.norm_eps);
  }

  // att_ (n, dim) from q_ and each row's cache, one task per (row, KV head): the `group` query heads that share
  // a K/V head (GQA) are computed together (kernels/attention.hpp), so each K row is converted to f32 once.
  void attention(int layer, std::int64_t n) {
    if (kv_type_ == KvType::F16)
      attention_impl<std::uint16_t>(layer, n);
    else
      attention_impl<float>(layer, n);
  }

  template <class T>
  void attention_impl(int layer, std::int64_t n) {
    const int hd = c_.head_dim(), n_kv = c_.n_kv_heads, group = c_.n_heads / c_.n_kv_heads;
    const std::int64_t d = c_.dim;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    std::size_t seq = 0;  // the longest attention span in the batch
    std::int64_t work = 0;
    for (const Row& r : rows_) {
      seq = std::max(seq, static_cast<std::size_t>(r.pos) + 1);
      work += static_cast<std::int64_t>(c_.n_heads) * (r.pos + 1) * hd;
    }
    const auto uhd = static_cast<std::size_t>(hd), ugroup = static_cast<std::size_t>(group);
    // per thread: scores (group, seq), q (group, hd), a block of 16 K rows as f32 (16, hd)
    const std::size_t per_thread = ugroup * (seq + uhd) + 16 * uhd;
    scratch_.resize(static_cast<std::size_t>(pool_->size()) * per_thread);
    constexpr int kHd = kHeadDim == dynamic ? dynamic_extent : kHeadDim;
    const auto ld = static_cast<std::int64_t>(c_.kv_dim());  // elements from one position's cache row to the next
    auto body = [&](int t, int n_threads) {
      float* scores = scratch_.data() + static_cast<std::size_t>(t) * per_thread;
      float* qf = scores + ugroup * seq;
      float* buf = qf + ugroup * uhd;
      const std::int64_t tasks = n * n_kv;
      for (std::int64_t task = t; task < tasks; task += n_threads) {
        const std::int64_t i = task / n_kv;
        const int kvh = static_cast<int>(task % n_kv);
        const Row& r = rows_[static_cast<std::size_t>(i)];
        const int len = r.pos + 1;  // causal: positions 0 .. pos of this row's sequence
        const std::size_t off = static_cast<std::size_t>(kvh) * uhd;
        const std::int64_t head0 = static_cast<std::int64_t>(kvh) * group;  // first query head of the group
        for (int g = 0; g < group; ++g) to_cache_precision<T>(q_.data() + i * d + (head0 + g) * hd, qf + g * hd, hd);
        key_scores<kHd>(qf, group, r.cache->template k_row<T>(layer, 0) + off, ld, len, hd, scale, scores,
                        static_cast<std::int64_t>(seq), buf);
        for (int g = 0; g < group; ++g) {
          softmax_inplace(scores + g * seq, len);
          to_cache_precision<T>(scores + g * seq, scores + g * seq, len);
        }
        weighted_values<kHd>(scores, static_cast<std::int64_t>(seq), group, r.cache->template v_row<T>(layer, 0) + off,
                             ld, len, hd, att_.data() + i * d + head0 * hd, buf);
      }
    };
    // Below ~64K multiply-adds a fork-join costs more than it saves (tiny models, short contexts).
    if (work < 65536) body(0, 1);
    else pool_->run_on_all(body);
  }

  // dst = src rounded to the cache's precision (f16 round trip for an f16 cache, a copy otherwise).
  template <class T>
  static void to_cache_precision(const float* src, float* dst, std::int64_t n) {
    if constexpr (std::is_same_v<T, std::uint16_t>) {
      std::uint16_t h[64];
      for (std::int64_t j = 0; j < n; j += 64) {
        const std::int64_t m = std::min<std::int64_t>(64, n - j);
        fp32_to_fp16_row(src + j, h, m);
        fp16_to_fp32_row(h, dst + j, m);
      }
    } else if (dst != src) {
      std::copy_n(src, n, dst);
    }
  }

  std::shared_ptr<const LlamaWeights> w_;
  ThreadPool* pool_;
  ModelConfig c_;
  std::int64_t batch_cap_ = 0;
  KvType kv_type_;
  KvCache cache_;  // forward()'s sequence
  std::vector<float> inv_freq_;
  std::vector<char> skip_;
  std::vector<Row> rows_;  // per batch row: its sequence's cache and its position
  std::vector<float> x_, xb_, q_, k_, v_, att_, hb_, hb2_, logits_, scratch_;
};

}  // namespace edgespec
