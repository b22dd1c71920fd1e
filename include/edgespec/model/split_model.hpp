// SplitModel<First, Second>: one model partitioned coarsely across two placements (the research's coarse
// subgraph partitioning): layers [0, K) run on the first, layers [K, n) and the classifier on the second, and the
// hidden states (n positions x dim floats) are handed over at the cut. K = n is the classifier alone on the
// second placement (--lm-head-device). The interface is Transformer's (forward, truncate, reset, ...), so a
// Pipeline's target can be split (Target<Split<OnCPU, OnGPU>>, PipelineOptions::target_split).
//
//   first:  x = embed(tokens); x = layer_{K-1}(... layer_0(x))            its KV cache: layers [0, K)
//   hand over x (n, dim) through the host                                   handover_seconds()
//   second: x = layer_{n-1}(... layer_K(x)); logits = classifier(norm(x))   its KV cache: layers [K, n)
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "edgespec/model/transformer.hpp"

namespace edgespec {

// Where a split target is cut: layers [0, layer) on the first placement; -1: no split given.
struct SplitPoint {
  int layer = -1;
};

template <class First, class Second>
class SplitModel {
 public:
  // cut.layer in [0, n_layers]: layers [0, cut) first; n_layers: only the classifier second.
  SplitModel(std::shared_ptr<const LlamaWeights> weights, ThreadPool& pool, int max_seq, KvType kv_type, SplitPoint cut)
      : first_(weights, pool, max_seq, kv_type), second_(weights, pool, max_seq, kv_type), cut_(cut.layer) {
    ES_CHECK(cut_ >= 0 && cut_ <= first_.config().n_layers, "target split: layer ", cut_, " is out of range [0, ",
             first_.config().n_layers, "] (layers [0, K) on the first device, the rest and the classifier on the "
             "second; K = n_layers puts only the classifier there)");
  }

  [[nodiscard]] const ModelConfig& config() const noexcept { return first_.config(); }
  [[nodiscard]] const LlamaWeights& weights() const noexcept { return first_.weights(); }
  [[nodiscard]] int position() const noexcept { return first_.position(); }
  [[nodiscard]] int vocab_size() const noexcept { return first_.vocab_size(); }
  [[nodiscard]] int cut() const noexcept { return cut_; }
  [[nodiscard]] First& first() noexcept { return first_; }
  [[nodiscard]] Second& second() noexcept { return second_; }
  // Seconds since construction: copying hidden states between the two parts, and each part's forwards (on its
  // device; they run one after the other).
  [[nodiscard]] double handover_seconds() const noexcept { return handover_seconds_; }
  [[nodiscard]] double first_seconds() const noexcept { return first_seconds_; }
  [[nodiscard]] double second_seconds() const noexcept { return second_seconds_; }

  void truncate(int pos) {
    first_.truncate(pos);
    second_.truncate(pos);
  }
  void reset() noexcept {
    first_.reset();
    second_.reset();
  }
  void set_skipped_layers(std::span<const int> layers) {
    first_.set_skipped_layers(layers);
    second_.set_skipped_layers(layers);
  }
  [[nodiscard]] std::vector<float> key(int layer, int pos) const {
    return layer < cut_ ? first_.key(layer, pos) : second_.key(layer, pos);
  }
  [[nodiscard]] std::vector<float> value(int layer, int pos) const {
    return layer < cut_ ? first_.value(layer, pos) : second_.value(layer, pos);
  }

  std::span<const float> forward(std::span<const std::int32_t> tokens, Logits which = Logits::Last) {
    using clock = std::chrono::steady_clock;
    auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
    const int n = static_cast<int>(tokens.size());
    auto t0 = clock::now();
    const std::span<const float> h = first_.forward_part(tokens, nullptr, 0, cut_, false, 0);
    first_seconds_ += since(t0);
    t0 = clock::now();
    hidden_.assign(h.begin(), h.end());
    handover_seconds_ += since(t0);
    t0 = clock::now();
    const std::span<const float> out =
        second_.forward_part(tokens, hidden_.data(), cut_, config().n_layers, true, which == Logits::All ? n : 1);
    second_seconds_ += since(t0);
    return out;
  }

 private:
  First first_;
  Second second_;
  int cut_;
  std::vector<float> hidden_;
  double handover_seconds_ = 0.0, first_seconds_ = 0.0, second_seconds_ = 0.0;
};

}  // namespace edgespec
