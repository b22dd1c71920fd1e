// DeviceTransformer<Arch>: the forward pass of transformer.hpp run on an OpenCL device (the OnGPU placement).
// Same algorithm, same interface as Transformer<Arch> (forward, truncate, reset, set_skipped_layers, key/value);
// the schedule differs: weights, activations and an f16 KV cache live in device buffers, and one kernel per op
// (kernels.hpp) runs in an in-order queue. Per forward only token ids go in and the logits rows asked for come
// back (greedy_tokens() brings back only their argmax ids).
//
// Per layer, for positions i of the batch (n, DIM), as transformer.hpp:
//   xb = rmsnorm(x) attn_norm;  q, k, v = xb Wq^T, xb Wk^T, xb Wv^T;  rope(q), rope(k);  cache[pos_i] <- k, v
//   att = attention(q, cache);  x += att Wo^T;  xb = rmsnorm(x) ffn_norm;  x += (silu(xb W1^T) * xb W3^T) W2^T
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "edgespec/model/transformer.hpp"
#include "edgespec/opencl/device.hpp"
#include "edgespec/opencl/kernels.hpp"

namespace edgespec::opencl {

// The device OnGPU models share in this process: opened on first use, from EDGESPEC_OPENCL_DEVICE.
inline std::shared_ptr<Device> default_device() {
  static std::mutex mu;
  static std::shared_ptr<Device> device;
  std::lock_guard lock(mu);
  if (!device) device = Device::open_default();
  return device;
}

namespace detail {

template <class T>
inline constexpr Param param_kind_of = std::is_same_v<T, cl::Buffer> ? Param::Buffer
                                       : std::is_integral_v<T>        ? Param::Int
                                                                      : Param::Float;

// Sets the arguments of kernel `k` (defined by `def`), checking their number and kinds against the definition.
template <std::size_t N, class... A>
void set_args(cl::Kernel& k, const KernelDef<N>& def, const A&... args) {
  static_assert(sizeof...(A) == N, "OpenCL launch: the argument count differs from the kernel's definition");
  cl_uint i = 0;
  (
      [&] {
        using T = std::decay_t<A>;
        if (param_kind_of<T> != def.params[i].kind)
          throw_error("OpenCL launch of ", def.name, ": argument ", i, " has the wrong kind");
        if constexpr (std::is_same_v<T, cl::Buffer>) k.setArg(i, args);
        else if constexpr (std::is_integral_v<T>) k.setArg(i, static_cast<cl_int>(args));
        else k.setArg(i, static_cast<cl_float>(args));
        ++i;
      }(),
      ...);
}

}  // namespace detail

// A weight matrix in device memory: GGML rows as stored, plus f32 block scales for Q8_0/Q4_0.
struct DeviceMatrix {
  cl::Buffer data;
  cl::Buffer scales;  // Q8_0/Q4_0: the block scales as f32 (rows, cols / 32); else a 4-byte placeholder
  int type_index = 0;  // into kernels::kWeightKernels
  int rows = 0, cols = 0, row_bytes = 0;
};

// A weight matrix copied to the device through upload(data, bytes) -> cl::Buffer. `what` names it in errors.
template <class Upload>
DeviceMatrix to_device(const MatrixView& m, const std::string& what, Upload&& upload) {
  DeviceMatrix d;
  switch (m.type) {
    case DType::F32: d.type_index = 0; break;
    case DType::F16: d.type_index = 1; break;
    case DType::Q8_0: d.type_index = 2; break;
    case DType::Q4_0: d.type_index = 3; break;
    default:
      throw_error("OnGPU: ", what, " is ", name(m.type), ", which the OpenCL backend does not run (it runs F32, F16, "
                  "Q8_0 and Q4_0); convert the model (edgespec-convert --type q8_0) or place it OnCPU");
  }
  d.rows = static_cast<int>(m.rows);
  d.cols = static_cast<int>(m.cols);
  d.row_bytes = static_cast<int>(row_bytes(m.type, m.cols));
  d.data = upload(m.data, static_cast<std::size_t>(d.row_bytes) * static_cast<std::size_t>(d.rows));
  if (m.type == DType::Q8_0 || m.type == DType::Q4_0) {
    const std::int64_t nb = m.cols / 32, block = block_bytes(m.type);
    std::vector<float> sc(static_cast<std::size_t>(m.rows * nb));
    const auto* bytes = static_cast<const std::uint8_t*>(m.data);
    for (std::int64_t r = 0; r < m.rows; ++r)
      for (std::int64_t b = 0; b < nb; ++b) {
        std::uint16_t h;
        std::memcpy(&h, bytes + r * d.row_bytes + b * block, 2);
        sc[static_cast<std::size_t>(r * nb + b)] = fp16_to_fp32(h);
      }
    d.scales = upload(sc.data(), sc.size() * sizeof(float));
  } else {
    const float zero = 0.0f;
    d.scales = upload(&zero, sizeof zero);
  }
  return d;
}

// The ops of the forward pass on one device for model type Arch: the program built from source<Arch>() (with
// the file's dimensions as build options) and one launch function per kernel, each shaped as its comment in
// kernels.hpp says. DeviceTransformer composes them; test_opencl runs each against the CPU backend.
template <class Arch = AnyLlama>
class Ops {
 public:
  Ops(std::shared_ptr<Device> device, const ModelConfig& c) : dev_(std::move(device)), c_(c) {
    ES_CHECK(c_.n_heads % c_.n_kv_heads == 0 && c_.head_dim() % 2 == 0 && c_.head_dim() <= 256,
             "the OpenCL kernels need n_heads a multiple of n_kv_heads and an even head_dim <= 256");
    program_ = dev_->program(std::string(source<Arch>()), build_options<Arch>(c_.dim, c_.n_heads, c_.n_kv_heads,
                                                                             c_.head_dim()));
    cl_call("creating kernels", [&] {
      for (const auto& wk : kernels::kWeightKernels) {
        get_rows_.emplace_back(program_, ("get_rows_" + std::string(wk.suffix)).c_str());
        matmul_.emplace_back(program_, ("matmul_" + std::string(wk.suffix)).c_str());
      }
      rmsnorm_ = cl::Kernel(program_, "rmsnorm");
      rope_ = cl::Kernel(program_, "rope");
      kv_store_ = cl::Kernel(program_, "kv_store");
      attention_ = cl::Kernel(program_, "attention");
      add_ = cl::Kernel(program_, "add");
      swiglu_ = cl::Kernel(program_, "swiglu");
      argmax_ = cl::Kernel(program_, "argmax");
      return 0;
    });
  }

  [[nodiscard]] Device& device() const noexcept { return *dev_; }
  [[nodiscard]] const ModelConfig& config() const noexcept { return c_; }

  // out (n, dim) = rows tokens of the embedding m
  void get_rows(const DeviceMatrix& m, const cl::Buffer& tokens, const cl::Buffer& out, int n) {
    cl::Kernel& k = get_rows_[static_cast<std::size_t>(m.type_index)];
    const std::size_t count = static_cast<std::size_t>(n) * static_cast<std::size_t>(c_.dim);
    detail::set_args(k, kernels::get_rows, m.data, m.row_bytes, tokens, out, static_cast<int>(count));
    elementwise(k, count);
  }
  // y (n, m.rows) = x (n, m.cols) m^T
  void matmul(const DeviceMatrix& m, const cl::Buffer& x, const cl::Buffer& y, int n) {
    cl::Kernel& k = matmul_[static_cast<std::size_t>(m.type_index)];
    detail::set_args(k, kernels::matmul_elem, m.data, m.scales, m.row_bytes, x, y, m.rows, m.cols, n);
    elementwise(k, static_cast<std::size_t>(m.rows));
  }
  // out (n, dim) = rmsnorm(x) w
  void rmsnorm(const cl::Buffer& x, const cl::Buffer& w, const cl::Buffer& out, int n) {
    detail::set_args(rmsnorm_, kernels::rmsnorm, x, w, out, c_.norm_eps);
    enqueue(rmsnorm_, cl::NDRange(static_cast<std::size_t>(n) * kWorkGroup), cl::NDRange(kWorkGroup));
  }
  // x (n, heads, head_dim) rotated in place at positions pos (n)
  void rope(const cl::Buffer& x, const cl::Buffer& pos, const cl::Buffer& inv_freq, int heads, int n) {
    const std::size_t count = static_cast<std::size_t>(n) * static_cast<std::size_t>(heads) *
                              static_cast<std::size_t>(c_.head_dim() / 2);
    detail::set_args(rope_, kernels::rope, x, pos, inv_freq, heads, c_.rope_style == RopeStyle::Normal ? 0 : 1,
                     static_cast<int>(count));
    elementwise(rope_, count);
  }
  // caches (layers, max_seq, kv_dim) f16 <- k, v (n, kv_dim) at positions pos
  void kv_store(const cl::Buffer& k, const cl::Buffer& v, const cl::Buffer& kc, const cl::Buffer& vc,
                const cl::Buffer& pos, int layer, int max_seq, int n) {
    const std::size_t count = static_cast<std::size_t>(n) * static_cast<std::size_t>(c_.kv_dim());
    detail::set_args(kv_store_, kernels::kv_store, k, v, kc, vc, pos, layer, max_seq, static_cast<int>(count));
    elementwise(kv_store_, count);
  }
  // out (n, dim) = attention of q (n, dim) over the caches up to each row's position; scores: (n, heads, max_seq)
  void attention(const cl::Buffer& q, const cl::Buffer& kc, const cl::Buffer& vc, const cl::Buffer& out,
                 const cl::Buffer& scores, const cl::Buffer& pos, int layer, int max_seq, int n) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(c_.head_dim()));
    detail::set_args(attention_, kernels::attention, q, kc, vc, out, scores, pos, layer, max_seq, scale);
    enqueue(attention_, cl::NDRange(static_cast<std::size_t>(n) * kWorkGroup, static_cast<std::size_t>(c_.n_heads)),
            cl::NDRange(kWorkGroup, 1));
  }
  // x += y (count)
  void add(const cl::Buffer& x, const cl::Buffer& y, std::size_t count) {
    detail::set_args(add_, kernels::add, x, y, static_cast<int>(count));
    elementwise(add_, count);
  }
  // a = silu(a) b (count)
  void swiglu(const cl::Buffer& a, const cl::Buffer& b, std::size_t count) {
    detail::set_args(swiglu_, kernels::swiglu, a, b, static_cast<int>(count));
    elementwise(swiglu_, count);
  }
  // out (rows) = argmax of each logits row (vocab)
  void argmax(const cl::Buffer& logits, const cl::Buffer& out, int rows) {
    detail::set_args(argmax_, kernels::argmax, logits, out, c_.vocab_size);
    enqueue(argmax_, cl::NDRange(static_cast<std::size_t>(rows) * kWorkGroup), cl::NDRange(kWorkGroup));
  }

 private:
  void enqueue(cl::Kernel& k, const cl::NDRange& global, const cl::NDRange& local) {
    dev_->queue().enqueueNDRangeKernel(k, cl::NullRange, global, local);
  }
  // An element-wise kernel over `count` items: whole work-groups, the kernel guards the tail.
  void elementwise(cl::Kernel& k, std::size_t count) {
    enqueue(k, cl::NDRange((count + kWorkGroup - 1) / kWorkGroup * kWorkGroup), cl::NDRange(kWorkGroup));
  }

  std::shared_ptr<Device> dev_;
  ModelConfig c_;
  cl::Program program_;
  std::vector<cl::Kernel> get_rows_, matmul_;
  cl::Kernel rmsnorm_, rope_, kv_store_, attention_, add_, swiglu_, argmax_;
};

template <class Arch = AnyLlama>
class DeviceTransformer {
  static_assert(check_arch<Arch>::value);

 public:
  using arch_type = Arch;

  // max_seq: KV-cache length (0: the type's, else the file's). The KV cache is f16 (the CPU default).
  DeviceTransformer(std::shared_ptr<const LlamaWeights> weights, std::shared_ptr<Device> device, int max_seq = 0,
                    KvType kv_type = KvType::F16)
      : w_(std::move(weights)), dev_(std::move(device)), c_(w_->config) {
    ::edgespec::detail::check_config_against<Arch>(c_, w_->path);
    ES_CHECK(kv_type == KvType::F16, "OnGPU: the device KV cache is f16 (KvType::F32 is a CPU option)");
    if (max_seq <= 0) max_seq = Arch::max_seq != dynamic ? Arch::max_seq : c_.max_seq;
    ES_CHECK(max_seq > 0 && max_seq <= (1 << 24), "max_seq ", max_seq, " is out of range");
    c_.max_seq = max_seq;
    ES_CHECK(c_.n_heads % c_.n_kv_heads == 0 && c_.head_dim() % 2 == 0 && c_.head_dim() <= 256, w_->path,
             ": the OpenCL kernels need n_heads a multiple of n_kv_heads and an even head_dim <= 256");
    ops_.emplace(dev_, c_);
    upload_weights();
    const auto kv_bytes = static_cast<std::size_t>(c_.n_layers) * static_cast<std::size_t>(max_seq) *
                          static_cast<std::size_t>(c_.kv_dim()) * 2;
    k_cache_ = alloc(kv_bytes, "the K cache");
    v_cache_ = alloc(kv_bytes, "the V cache");
    std::vector<float> inv = c_.rope_inv_freq();
    if (!w_->rope_freq_divisors.empty())
      for (std::size_t i = 0; i < inv.size(); ++i) inv[i] /= w_->rope_freq_divisors[i];
    inv_freq_ = upload(inv.data(), inv.size() * sizeof(float), "rope frequencies");
    skip_.assign(static_cast<std::size_t>(c_.n_layers), 0);
  }

  // The Transformer-compatible form a Pipeline uses: the process's default device (EDGESPEC_OPENCL_DEVICE); the
  // thread pool is the CPU's and unused here.
  DeviceTransformer(std::shared_ptr<const LlamaWeights> weights, ThreadPool&, int max_seq = 0,
                    KvType kv_type = KvType::F16)
      : DeviceTransformer(std::move(weights), default_device(), max_seq, kv_type) {}

  [[nodiscard]] const ModelConfig& config() const noexcept { return c_; }
  [[nodiscard]] const LlamaWeights& weights() const noexcept { return *w_; }
  [[nodiscard]] const std::shared_ptr<const LlamaWeights>& shared_weights() const noexcept { return w_; }
  [[nodiscard]] Device& device() const noexcept { return *dev_; }
  [[nodiscard]] int position() const noexcept { return pos_; }
  [[nodiscard]] int vocab_size() const noexcept { return c_.vocab_size; }
  [[nodiscard]] KvType kv_type() const noexcept { return KvType::F16; }
  // Bytes of device memory the weights and the KV cache take.
  [[nodiscard]] std::size_t device_bytes() const noexcept { return device_bytes_; }

  void truncate(int pos) {
    ES_CHECK(pos >= 0 && pos <= pos_, "truncate(", pos, "): position must be in [0, ", pos_, "]");
    pos_ = pos;
  }
  void reset() noexcept { pos_ = 0; }

  void set_skipped_layers(std::span<const int> layers) {
    std::fill(skip_.begin(), skip_.end(), 0);
    for (int l : layers) {
      ES_CHECK(l >= 0 && l < c_.n_layers, "skip layer ", l, " is out of range [0, ", c_.n_layers, ")");
      skip_[static_cast<std::size_t>(l)] = 1;
    }
  }

  // K or V of `layer` at `pos` (kv_dim values) as f32, read back from the device (tests, diagnostics).
  [[nodiscard]] std::vector<float> key(int layer, int pos) const { return read_row(k_cache_, layer, pos); }
  [[nodiscard]] std::vector<float> value(int layer, int pos) const { return read_row(v_cache_, layer, pos); }

  // As Transformer::forward: logits rows (n or the last) of vocab_size floats, valid until the next call.
  std::span<const float> forward(std::span<const std::int32_t> tokens, Logits which = Logits::Last) {
    const int rows = run(tokens, which == Logits::All ? static_cast<int>(tokens.size()) : 1);
    logits_host_.resize(static_cast<std::size_t>(rows) * static_cast<std::size_t>(c_.vocab_size));
    cl_call("reading logits", [&] {
      return dev_->queue().enqueueReadBuffer(logits_, CL_TRUE, 0, logits_host_.size() * sizeof(float),
                                             logits_host_.data());
    });
    return logits_host_;
  }

  // A part of the forward pass (see Transformer::forward_part): layers [first, last) from the embedding or from
  // hidden states (n, dim) on the host; the classifier (head) returns logits, else the hidden states come back.
  std::span<const float> forward_part(std::span<const std::int32_t> tokens, const float* hidden_in, int first,
                                      int last, bool head, int logit_rows) {
    ES_CHECK(first >= 0 && first <= last && last <= c_.n_layers, "forward_part: layers [", first, ", ", last,
             ") are not within [0, ", c_.n_layers, "]");
    const int rows = run(tokens, head ? logit_rows : 0, hidden_in, first, last, head);
    const std::size_t count = static_cast<std::size_t>(head ? rows : static_cast<int>(tokens.size())) *
                              static_cast<std::size_t>(head ? c_.vocab_size : c_.dim);
    logits_host_.resize(count);
    cl_call("reading the part's output", [&] {
      return dev_->queue().enqueueReadBuffer(head ? logits_ : x_, CL_TRUE, 0, count * sizeof(float),
                                             logits_host_.data());
    });
    return logits_host_;
  }

  // The forward, then only the argmax id of each logits row asked for crosses to the host.
  std::vector<std::int32_t> greedy_tokens(std::span<const std::int32_t> tokens, Logits which = Logits::Last) {
    const int rows = run(tokens, which == Logits::All ? static_cast<int>(tokens.size()) : 1);
    std::vector<std::int32_t> ids(static_cast<std::size_t>(rows));
    cl_call("argmax", [&] {
      ops_->argmax(logits_, ids_, rows);
      return dev_->queue().enqueueReadBuffer(ids_, CL_TRUE, 0, ids.size() * sizeof(std::int32_t), ids.data());
    });
    return ids;
  }

 private:

  cl::Buffer alloc(std::size_t bytes, const char* what) {
    ES_CHECK(bytes <= dev_->info().max_alloc, "OnGPU: ", what, " needs ", bytes, " bytes, more than one allocation of ",
             dev_->description(), " may hold (", dev_->info().max_alloc, "); use a smaller context or place it OnCPU");
    device_bytes_ += bytes;
    try {
      return cl::Buffer(dev_->context(), CL_MEM_READ_WRITE, std::max<std::size_t>(bytes, 4));
    } catch (const cl::Error& e) {
      throw_error("OnGPU: out of device memory allocating ", what, " (", bytes, " bytes) on ", dev_->description(), ": ",
                  detail::cl_error_name(e.err()));
    }
  }
  cl::Buffer upload(const void* data, std::size_t bytes, const char* what) {
    cl::Buffer b = alloc(bytes, what);
    cl_call("uploading weights", [&] { return dev_->queue().enqueueWriteBuffer(b, CL_TRUE, 0, bytes, data); });
    return b;
  }
  DeviceMatrix upload(const MatrixView& m, const std::string& name) {
    return to_device(m, w_->path + ": matrix '" + name + "'",
                     [&](const void* p, std::size_t bytes) { return upload(p, bytes, name.c_str()); });
  }

  void upload_weights() {
    embd_ = upload(w_->tok_embd, "token_embd");
    output_ = upload(w_->output, "output");
    const auto d = static_cast<std::size_t>(c_.dim) * sizeof(float);
    output_norm_ = upload(w_->output_norm, d, "output_norm");
    for (std::size_t l = 0; l < w_->layers.size(); ++l) {
      const LayerWeights& L = w_->layers[l];
      const std::string p = "blk." + std::to_string(l) + ".";
      layers_.push_back({upload(L.attn_norm, d, "attn_norm"), upload(L.wq, p + "attn_q"), upload(L.wk, p + "attn_k"),
                         upload(L.wv, p + "attn_v"), upload(L.wo, p + "attn_output"),
                         upload(L.ffn_norm, d, "ffn_norm"), upload(L.w1, p + "ffn_gate"), upload(L.w2, p + "ffn_down"),
                         upload(L.w3, p + "ffn_up")});
    }
  }

  void reserve(int n) {
    if (n <= cap_) return;
    const auto un = static_cast<std::size_t>(n), f = sizeof(float);
    const auto d = static_cast<std::size_t>(c_.dim), kv = static_cast<std::size_t>(c_.kv_dim());
    const auto ff = static_cast<std::size_t>(c_.ffn_dim), v = static_cast<std::size_t>(c_.vocab_size);
    x_ = alloc(un * d * f, "activations");
    xb_ = alloc(un * d * f, "activations");
    q_ = alloc(un * d * f, "activations");
    att_ = alloc(un * d * f, "activations");
    k_ = alloc(un * kv * f, "activations");
    v_ = alloc(un * kv * f, "activations");
    hb_ = alloc(un * ff * f, "activations");
    hb2_ = alloc(un * ff * f, "activations");
    logits_ = alloc(un * v * f, "logits");
    scores_ = alloc(un * static_cast<std::size_t>(c_.n_heads) * static_cast<std::size_t>(c_.max_seq) * f, "attention scores");
    tokens_ = alloc(un * sizeof(std::int32_t), "tokens");
    positions_ = alloc(un * sizeof(std::int32_t), "positions");
    ids_ = alloc(un * sizeof(std::int32_t), "ids");
    cap_ = n;
  }

  // Runs tokens at [pos_, pos_ + n); the last `logit_rows` rows' logits are left in logits_. Returns that count.
  int run(std::span<const std::int32_t> tokens, int logit_rows, const float* hidden_in = nullptr, int first_layer = 0,
          int last_layer = -1, bool head = true) {
    if (last_layer < 0) last_layer = c_.n_layers;
    const int n = static_cast<int>(tokens.size());
    ES_CHECK(n > 0, "forward: no tokens");
    ES_CHECK(pos_ + n <= c_.max_seq, "forward: context overflow: ", pos_, " + ", n, " tokens exceed max_seq ", c_.max_seq);
    for (const std::int32_t t : tokens)
      ES_CHECK(t >= 0 && t < c_.vocab_size, "forward: token id ", t, " is out of range [0, ", c_.vocab_size, ")");
    reserve(n);
    std::vector<std::int32_t> pos(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) pos[static_cast<std::size_t>(i)] = pos_ + i;
    const auto un = static_cast<std::size_t>(n);
    const auto d = static_cast<std::size_t>(c_.dim), ff = static_cast<std::size_t>(c_.ffn_dim);
    cl_call("running the forward pass", [&] {
      cl::CommandQueue& q = dev_->queue();
      // Blocking: `pos` and `tokens` may be gone before an in-order queue reaches a non-blocking write.
      q.enqueueWriteBuffer(tokens_, CL_TRUE, 0, un * sizeof(std::int32_t), tokens.data());
      q.enqueueWriteBuffer(positions_, CL_TRUE, 0, un * sizeof(std::int32_t), pos.data());
      Ops<Arch>& o = *ops_;
      if (hidden_in != nullptr) q.enqueueWriteBuffer(x_, CL_TRUE, 0, un * d * sizeof(float), hidden_in);
      else o.get_rows(embd_, tokens_, x_, n);
      for (int l = first_layer; l < last_layer; ++l) {
        if (skip_[static_cast<std::size_t>(l)] != 0) continue;
        const Layer& L = layers_[static_cast<std::size_t>(l)];
        o.rmsnorm(x_, L.attn_norm, xb_, n);
        o.matmul(L.wq, xb_, q_, n);
        o.matmul(L.wk, xb_, k_, n);
        o.matmul(L.wv, xb_, v_, n);
        o.rope(q_, positions_, inv_freq_, c_.n_heads, n);
        o.rope(k_, positions_, inv_freq_, c_.n_kv_heads, n);
        o.kv_store(k_, v_, k_cache_, v_cache_, positions_, l, c_.max_seq, n);
        o.attention(q_, k_cache_, v_cache_, att_, scores_, positions_, l, c_.max_seq, n);
        o.matmul(L.wo, att_, xb_, n);
        o.add(x_, xb_, un * d);
        o.rmsnorm(x_, L.ffn_norm, xb_, n);
        o.matmul(L.w1, xb_, hb_, n);
        o.matmul(L.w3, xb_, hb2_, n);
        o.swiglu(hb_, hb2_, un * ff);
        o.matmul(L.w2, hb_, xb_, n);
        o.add(x_, xb_, un * d);
      }
      if (!head) return 0;
      // The classifier over the last logit_rows rows: copy them to the front of xb_ after the norm.
      o.rmsnorm(x_, output_norm_, xb_, n);
      const std::size_t first = static_cast<std::size_t>(n - logit_rows);
      if (first > 0)
        q.enqueueCopyBuffer(xb_, q_, first * d * sizeof(float), 0, static_cast<std::size_t>(logit_rows) * d * sizeof(float));
      o.matmul(output_, first > 0 ? q_ : xb_, logits_, logit_rows);
      return 0;
    });
    pos_ += n;
    return logit_rows;
  }

  [[nodiscard]] std::vector<float> read_row(const cl::Buffer& cache, int layer, int pos) const {
    ES_CHECK(layer >= 0 && layer < c_.n_layers && pos >= 0 && pos < pos_, "KV cache row (", layer, ", ", pos,
             ") is out of range");
    const auto kv = static_cast<std::size_t>(c_.kv_dim());
    std::vector<std::uint16_t> h(kv);
    const std::size_t at = (static_cast<std::size_t>(layer) * static_cast<std::size_t>(c_.max_seq) +
                            static_cast<std::size_t>(pos)) * kv * 2;
    cl_call("reading the KV cache", [&] {
      return dev_->queue().enqueueReadBuffer(cache, CL_TRUE, at, kv * 2, h.data());
    });
    std::vector<float> out(kv);
    fp16_to_fp32_row(h.data(), out.data(), static_cast<std::int64_t>(kv));
    return out;
  }

  struct Layer {
    cl::Buffer attn_norm;
    DeviceMatrix wq, wk, wv, wo;
    cl::Buffer ffn_norm;
    DeviceMatrix w1, w2, w3;
  };

  std::shared_ptr<const LlamaWeights> w_;
  std::shared_ptr<Device> dev_;
  ModelConfig c_;
  int pos_ = 0, cap_ = 0;
  std::size_t device_bytes_ = 0;
  std::optional<Ops<Arch>> ops_;
  DeviceMatrix embd_, output_;
  cl::Buffer output_norm_, inv_freq_, k_cache_, v_cache_;
  std::vector<Layer> layers_;
  cl::Buffer x_, xb_, q_, att_, k_, v_, hb_, hb2_, logits_, scores_, tokens_, positions_, ids_;
  std::vector<char> skip_;
  std::vector<float> logits_host_;
};

}  // namespace edgespec::opencl
