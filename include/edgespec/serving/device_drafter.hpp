// DeviceDrafter: the drafting half of speculative decoding, for a device whose target runs elsewhere (an
// edgespec-server verifies, SLED). It proposes up to g tokens continuing the agreed sequence, with the
// distributions q they were drawn from when sampling is stochastic, and rolls back to whatever the verifier
// accepted:
//
//   begin(prompt)          a draft model prefills prompt[0 .. n-1)
//   draft(seq, g) -> d, q  d_1..d_g continuing seq (q_i: the draft's distribution at i, sparse; none for n-gram)
//   accept(seq')           seq' = seq + d_1..d_k + next: the draft model keeps its cache up to the agreed prefix
//
// Kinds: a draft model (a second model or a requantized copy of the target), n-gram lookup (no model, q a point
// mass), or none (g = 0: every round is one target decode step on the server).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "edgespec/model/transformer.hpp"
#include "edgespec/sampling/sampler.hpp"
#include "edgespec/serving/batch_verifier.hpp"
#include "edgespec/speculative/ngram.hpp"

namespace edgespec::serving {

class DeviceDrafter {
 public:
  static DeviceDrafter none() { return DeviceDrafter{}; }
  static DeviceDrafter ngram(int max_n) {
    DeviceDrafter d;
    d.lookup_ = NGramLookup{max_n, 1};
    d.lookup_->check();
    return d;
  }
  // max_seq: the draft model's KV-cache length (the session's context).
  static DeviceDrafter model(std::shared_ptr<const LlamaWeights> weights, ThreadPool& pool, int max_seq,
                             SamplingParams sampling) {
    DeviceDrafter d;
    sampling.validate();
    d.model_ = std::make_unique<Transformer<>>(std::move(weights), pool, max_seq);
    d.sampling_ = sampling;
    d.rng_ = Rng(sampling.seed ^ 0x5eedd4af7ull);  // not the verifier's stream
    return d;
  }

  [[nodiscard]] bool drafts() const noexcept { return model_ != nullptr || lookup_.has_value(); }
  [[nodiscard]] const Transformer<>* draft_model() const noexcept { return model_.get(); }

  void begin(std::span<const std::int32_t> prompt) {
    ES_CHECK(!prompt.empty(), "drafter: the prompt has no tokens");
    if (!model_) return;
    model_->reset();
    if (prompt.size() > 1) model_->forward(prompt.first(prompt.size() - 1));
    pending_.assign(1, prompt.back());
  }

  // Appends at most g draft tokens continuing `seq` to `out` and, for a stochastic draft model, their
  // distributions to `q` (the nonzero entries of each).
  void draft(std::span<const std::int32_t> seq, int g, std::vector<std::int32_t>& out, std::vector<DraftDistribution>& q) {
    if (g <= 0) return;
    if (lookup_) {
      lookup_->draft(seq, g, out);
      return;
    }
    if (!model_) return;
    const auto vocab = static_cast<std::size_t>(model_->vocab_size());
    for (int i = 0; i < g; ++i) {
      const std::span<const float> logits =
          i == 0 ? model_->forward(pending_) : model_->forward(std::span<const std::int32_t>(&out.back(), 1));
      if (i == 0) pending_.clear();
      if (sampling_.greedy()) {
        out.push_back(greedy_token(logits));
        continue;
      }
      probs_.resize(vocab);
      distribution(logits, sampling_, probs_, scratch_);
      out.push_back(draw(probs_, rng_));
      DraftDistribution d;
      for (std::size_t t = 0; t < vocab; ++t)
        if (probs_[t] > 0.0f) {
          d.ids.push_back(static_cast<std::int32_t>(t));
          d.probs.push_back(probs_[t]);
        }
      q.push_back(std::move(d));
    }
  }

  // After a round: `seq` is the agreed sequence. The draft model keeps the prefix it computed that is still
  // right and feeds the rest in the next round's first forward.
  void accept(std::span<const std::int32_t> seq) {
    if (!model_) return;
    // The cache holds the old sequence and d_1..d_{g-1}; seq is the old sequence, d_1..d_k and one more token,
    // so the cache is right up to min(position, |seq| - 1) (as in Pipeline::round).
    const int keep = std::min(model_->position(), static_cast<int>(seq.size()) - 1);
    model_->truncate(keep);
    pending_.assign(seq.begin() + keep, seq.end());
  }

 private:
  DeviceDrafter() = default;

  std::unique_ptr<Transformer<>> model_;
  std::optional<NGramLookup> lookup_;
  SamplingParams sampling_;
  Rng rng_;
  std::vector<std::int32_t> pending_, scratch_;
  std::vector<float> probs_;
};

}  // namespace edgespec::serving
