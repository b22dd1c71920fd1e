// Pipeline<Props...>: speculative sampling with a draft and a target model, configured by types.
//
// One round (gamma = draft length, t = the last emitted token, not yet in either KV cache):
//
//   draft:   q_1 = D(t)  d_1 ~ q_1 | q_2 = D(d_1)  d_2 ~ q_2 | ... | d_gamma ~ q_gamma      gamma small forwards
//   target:  p_1 .. p_{gamma+1} = T(t, d_1, ..., d_gamma)                                   ONE batched forward
//   verify:  keep d_1..d_k, then one more token (correction or bonus)                         k + 1 tokens out
//   caches:  target.truncate(prefix + 1 + k); the draft keeps its accepted prefix and is brought up to date
//            with the last token (and d_gamma when all were accepted) in the next round's first forward
//
// Both caches always hold exactly the emitted sequence minus the tokens still pending for them, so output with
// greedy verification is target-only greedy decoding, token for token, and with stochastic verification its
// distribution is the target's (verify.hpp).
//
// Draft<NGram<N>> has no draft model: d_1..d_g (0 <= g <= gamma) are looked up in the sequence itself
// (ngram.hpp), each a point mass, and verified with verify_stochastic_point; with g = 0 the round is one
// ordinary decode step of the target (verify over [t] only).
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "edgespec/core/error.hpp"
#include "edgespec/model/split_model.hpp"
#include "edgespec/model/transformer.hpp"
#include "edgespec/runtime/generate.hpp"
#include "edgespec/sampling/sampler.hpp"
#include "edgespec/speculative/ngram.hpp"
#include "edgespec/speculative/properties.hpp"
#include "edgespec/speculative/verify.hpp"
#include "edgespec/tokenizer/vocab.hpp"
#if defined(EDGESPEC_HAS_OPENCL)
#include "edgespec/opencl/transformer.hpp"
#endif

namespace edgespec {

struct PipelineOptions {
  SamplingParams sampling{};        // applied to p and q alike
  int max_seq = 0;                  // KV-cache length of both models (0: the target type's / file's)
  KvType kv_type = KvType::F16;
  std::vector<int> skip_layers;     // self-speculative draft with SkipLayers<>: the layers to skip
  int ngram_max = 0;                // n-gram draft with NGram<>: the longest n-gram matched, 1..64
  int draft_len = 0;                // AdaptiveDraftLen pipelines: a fixed length in [Min, Max] (0: adapt)
  int adaptive_min = 0, adaptive_max = 0;  // narrow the adaptive range at run time (0: the type's Min / Max)
  float early_stop = -1.0f;         // stop drafting when max q < this; < 0: the pipeline's EarlyStop<P>
                                    // (model drafters only: NGram has no q)
  std::int32_t eos_id = -1;         // with stop_at_eos
  std::vector<std::int32_t> eog_ids;  // with stop_at_eos: every end-of-generation token (Tokenizer::eog_ids())
  bool stop_at_eos = false;
  int target_split = -1;            // Target<Split<A, B>>: layers [0, K) on A, the rest and the classifier on B
  int overlap_min_ahead = 0;        // Overlapped: tokens drafted ahead even after the verification ended (tests
                                    // use it to make the schedule's path deterministic; 0: only while it runs)
  bool record_rounds = false;       // keep one RoundRecord per round in SpeculativeStats::round_log (the profiler)
  // Benchmarks and cost-model validation only: accept each draft token with this probability (independently,
  // until the first rejection) instead of verifying it; the correction is the target's greedy token. The output
  // is NOT the target's. < 0: off (verify as the pipeline's policy says).
  double forced_acceptance = -1.0;

  [[nodiscard]] bool stops_at(std::int32_t t) const noexcept {
    return stop_at_eos && (t == eos_id || std::find(eog_ids.begin(), eog_ids.end(), t) != eog_ids.end());
  }
};

// One round as the profiler sees it (PipelineOptions::record_rounds): how many draft tokens were proposed and
// accepted, and the draft's top probability max_x q_i(x) at each proposed position (what EarlyStop<P> compares).
struct RoundRecord {
  int drafted = 0;
  int accepted = 0;
  std::vector<float> top;  // drafted entries; empty for Draft<NGram<N>> (no q)
  int position = 0;        // target positions cached before this round's verification
  int draft_fed = 0;       // tokens the round's first draft forward fed (1, or 2 after a round that kept all)
  double draft_seconds = 0, verify_seconds = 0;  // this round's drafting (without the recording itself) and
                                                 // verification
};

struct SpeculativeStats {
  GenerationStats gen;                   // prompt/prefill/decode times and token counts (decode = all rounds)
  int rounds = 0;
  int drafted = 0;                       // draft tokens proposed
  int accepted = 0;                      // draft tokens accepted
  int rejections = 0;                    // rounds that ended with a rejected draft token
  std::vector<int> drafted_at;           // per draft position i (0-based): rounds that proposed a token there
  std::vector<int> accepted_at;          // ... and accepted it
  double draft_seconds = 0.0;            // draft forwards (NGram: the lookups)
  double verify_seconds = 0.0;           // target forwards
  double sample_seconds = 0.0;           // distributions, draws, verification arithmetic
  int overlapped_rounds = 0;             // Overlapped: rounds whose drafts were drafted during the previous verify
  int discarded = 0;                     // Overlapped: tokens drafted during a verify and thrown away
  // Busy time of each device: the draft's and the target's forwards (a split target's parts on their own
  // devices). Overlapped, the two devices work at once, so their sum exceeds the decode time.
  double cpu_seconds = 0.0;
  double gpu_seconds = 0.0;
  double handover_seconds = 0.0;         // split target: hidden states copied between its two devices
  std::vector<RoundRecord> round_log;    // PipelineOptions::record_rounds: every round, in order
  double record_seconds = 0.0;           // record_rounds: computing what is recorded only (in no other time)

  // alpha = accepted / drafted
  [[nodiscard]] double acceptance_rate() const noexcept { return drafted > 0 ? double(accepted) / drafted : 0.0; }
  // Per-trial acceptance: accepted / (accepted + rejections), Leviathan's alpha estimated without the draft
  // tokens that were never tested because an earlier one was rejected.
  [[nodiscard]] double acceptance_per_trial() const noexcept {
    return accepted + rejections > 0 ? double(accepted) / (accepted + rejections) : 0.0;
  }
  [[nodiscard]] double tokens_per_round() const noexcept {
    return rounds > 0 ? double(gen.generated_tokens) / rounds : 0.0;
  }
  // Accepted / drafted at each draft position, up to the last position that was drafted.
  [[nodiscard]] std::vector<double> acceptance_by_position() const {
    std::size_t used = drafted_at.size();
    while (used > 0 && drafted_at[used - 1] == 0) --used;
    std::vector<double> a(used);
    for (std::size_t i = 0; i < a.size(); ++i) a[i] = drafted_at[i] > 0 ? double(accepted_at[i]) / drafted_at[i] : 0.0;
    return a;
  }
};

struct SpeculativeResult {
  std::vector<std::int32_t> tokens;
  SpeculativeStats stats;
};

// Throws unless two vocabularies are the same: size, BOS/EOS and every token text, naming the first difference.
inline void check_same_vocabulary(const Vocab& draft, const Vocab& target) {
  ES_CHECK(draft.size() == target.size(), "Draft and Target must share a vocabulary (draft: ", draft.size(),
           " tokens, target: ", target.size(), ")");
  ES_CHECK(draft.bos == target.bos && draft.eos == target.eos, "Draft and Target must share a vocabulary (BOS/EOS ",
           draft.bos, "/", draft.eos, " in the draft, ", target.bos, "/", target.eos, " in the target)");
  for (int i = 0; i < draft.size(); ++i)
    ES_CHECK(draft.tokens[static_cast<std::size_t>(i)] == target.tokens[static_cast<std::size_t>(i)],
             "Draft and Target must share a vocabulary (token ", i, " is '", draft.tokens[static_cast<std::size_t>(i)],
             "' in the draft and '", target.tokens[static_cast<std::size_t>(i)], "' in the target)");
}

namespace detail {
// The model class that runs Arch in a placement: Transformer on the CPU, DeviceTransformer on the OpenCL device.
template <class Arch, class Placement>
struct placed_model {
  using type = Transformer<Arch>;
};
#if defined(EDGESPEC_HAS_OPENCL)
template <class Arch>
struct placed_model<Arch, OnGPU> {
  using type = opencl::DeviceTransformer<Arch>;
};
#endif
template <class Arch, class First, class Second>
struct placed_model<Arch, Split<First, Second>> {
  using type = SplitModel<typename placed_model<Arch, First>::type, typename placed_model<Arch, Second>::type>;
};
template <class P>
inline constexpr bool is_split = false;
template <class A, class B>
inline constexpr bool is_split<Split<A, B>> = true;
}  // namespace detail

// Transformer<Arch> for OnCPU, opencl::DeviceTransformer<Arch> for OnGPU (same interface).
template <class Arch, class Placement>
using PlacedModel = typename detail::placed_model<Arch, Placement>::type;

template <class... Props>
class Pipeline {
  using props = detail::pipeline_props<Props...>;

 public:
  using draft_property = typename props::draft;
  using target_property = typename props::target;
  using draft_length = typename props::draft_length;
  using verification = typename props::verification;
  using schedule = typename props::schedule;
  using target_arch = typename target_property::arch;
  static constexpr bool self_speculative = draft_property::self_speculative;
  static constexpr bool ngram_drafter = draft_property::ngram_lookup;  // Draft<NGram<N>>: no draft model
  // A self-speculative draft is the target's architecture (and weights) with layers skipped; an n-gram draft
  // has no model, and its tokens are the target's.
  using draft_arch =
      std::conditional_t<self_speculative || ngram_drafter, target_arch, typename draft_property::arch>;
  using draft_placement = typename draft_property::placement;
  using target_placement = typename target_property::placement;
  static_assert(detail::vocab_check<draft_arch::vocab_size, target_arch::vocab_size>::value);
  static_assert(!(self_speculative && draft_property::arch_given),
                "Draft<SkipLayers<...>> is the target with layers skipped: do not give it an architecture");
  static_assert(!ngram_drafter || props::template count<prop::early_stop> == 0,
                "EarlyStop<P> reads the draft's probabilities; Draft<NGram<N>> has none: drop EarlyStop");
  static constexpr bool overlapped = schedule::overlapped;
  static_assert(!overlapped || !ngram_drafter,
                "Overlapped drafts on one device while the target verifies on the other: Draft<NGram<N>> has no "
                "draft model; use Sequential");
  static_assert(!overlapped || !detail::is_split<target_placement>,
                "Overlapped with a split target: the target uses both devices; use Sequential");
  static_assert(!overlapped || !std::is_same_v<draft_placement, target_placement>,
                "Overlapped runs the draft and the target at the same time: place them on different devices "
                "(Draft<OnGPU>, Target<OnCPU> or the reverse)");

  // Two models. For a self-speculative pipeline pass the target's weights twice (or use the 3-argument form).
  Pipeline(std::shared_ptr<const LlamaWeights> target, std::shared_ptr<const LlamaWeights> draft, ThreadPool& pool,
           PipelineOptions opt = {})
    requires(!ngram_drafter)
      : Pipeline(init_tag{}, std::move(target), std::move(draft), pool, std::move(opt)) {}
  // Self-speculative: the draft is the target with layers skipped. N-gram: the target alone.
  Pipeline(std::shared_ptr<const LlamaWeights> target, ThreadPool& pool, PipelineOptions opt = {})
    requires(self_speculative || ngram_drafter)
      : Pipeline(init_tag{}, target, target, pool, std::move(opt)) {}

 private:
  struct init_tag {};
  struct no_draft_model {};
  using draft_model = std::conditional_t<ngram_drafter, no_draft_model, PlacedModel<draft_arch, draft_placement>>;
  using target_model = PlacedModel<target_arch, target_placement>;

  Pipeline(init_tag, std::shared_ptr<const LlamaWeights> target, std::shared_ptr<const LlamaWeights> draft,
           ThreadPool& pool, PipelineOptions opt)
      : opt_(std::move(opt)),
        target_(make_target(checked(target, target_placement{}, "Target"), pool)),
        draft_(make_draft(self_speculative ? target : draft, pool)),
        sampler_(opt_.sampling) {
    if constexpr (!ngram_drafter) {
      ES_CHECK(draft_.config().vocab_size == target_.config().vocab_size,
               "Draft and Target must share a vocabulary (draft: ", draft_.config().vocab_size,
               ", target: ", target_.config().vocab_size, ")");
      if (draft_.weights().gguf && target_.weights().gguf && !self_speculative)
        check_same_vocabulary(vocab_from_gguf(*draft_.weights().gguf), vocab_from_gguf(*target_.weights().gguf));
    }
    if constexpr (self_speculative) {
      if constexpr (draft_property::skip::layers.size() > 0) {
        ES_CHECK(opt_.skip_layers.empty(), "Draft<SkipLayers<...>> fixes the skipped layers; leave "
                                           "PipelineOptions::skip_layers empty");
        draft_.set_skipped_layers(draft_property::skip::layers);
      } else {
        draft_.set_skipped_layers(opt_.skip_layers);
      }
      ES_CHECK(static_cast<int>(skipped_count()) < target_.config().n_layers,
               "self-speculative draft: skipping every layer leaves no model");
    } else {
      ES_CHECK(opt_.skip_layers.empty(), "PipelineOptions::skip_layers needs a Draft<SkipLayers<>> pipeline");
    }
    if constexpr (ngram_drafter) {
      if constexpr (draft_property::ngram::max_n > 0) {
        ES_CHECK(opt_.ngram_max == 0, "Draft<NGram<", draft_property::ngram::max_n,
                 ">> fixes the longest n-gram; leave PipelineOptions::ngram_max at 0");
        lookup_.max_n = draft_property::ngram::max_n;
      } else {
        ES_CHECK(opt_.ngram_max >= 1 && opt_.ngram_max <= 64, "Draft<NGram<>> takes the longest n-gram from "
                 "PipelineOptions::ngram_max, which must be in 1..64 (it is ", opt_.ngram_max, ")");
        lookup_.max_n = opt_.ngram_max;
      }
      lookup_.min_n = 1;
      lookup_.check();
      ES_CHECK(opt_.early_stop <= 0.0f, "early stop reads the draft's probabilities; the n-gram drafter has none "
               "(leave PipelineOptions::early_stop negative)");
    } else {
      ES_CHECK(opt_.ngram_max == 0, "PipelineOptions::ngram_max needs a Draft<NGram<>> pipeline");
    }
    if (opt_.draft_len != 0)
      ES_CHECK(opt_.draft_len >= draft_length::min && opt_.draft_len <= draft_length::max, "draft length ",
               opt_.draft_len, " is out of this pipeline's range [", draft_length::min, ", ", draft_length::max, "]");
    lo_ = opt_.adaptive_min > 0 ? opt_.adaptive_min : draft_length::min;
    hi_ = opt_.adaptive_max > 0 ? opt_.adaptive_max : draft_length::max;
    ES_CHECK(lo_ >= draft_length::min && hi_ <= draft_length::max && lo_ <= hi_, "adaptive draft length range [", lo_,
             ", ", hi_, "] is not within this pipeline's [", draft_length::min, ", ", draft_length::max, "]");
    early_stop_ = opt_.early_stop >= 0.0f ? opt_.early_stop : props::early_stop::threshold;
    ES_CHECK(opt_.forced_acceptance <= 1.0, "forced acceptance ", opt_.forced_acceptance,
             " must be a probability in [0, 1] (or negative: off)");
    ES_CHECK(early_stop_ < 1.0f, "early stop threshold ", early_stop_, " must be below 1");
    gamma_ = opt_.draft_len != 0 ? opt_.draft_len : hi_;
  }

 public:
  [[nodiscard]] target_model& target() noexcept { return target_; }
  [[nodiscard]] draft_model& draft() noexcept
    requires(!ngram_drafter)
  {
    return draft_;
  }
  // Draft<NGram<N>>: the lookup and its longest n-gram.
  [[nodiscard]] const NGramLookup& ngram() const noexcept
    requires ngram_drafter
  {
    return lookup_;
  }
  [[nodiscard]] const PipelineOptions& options() const noexcept { return opt_; }
  // The draft length the next round will use.
  [[nodiscard]] int draft_len() const noexcept { return gamma_; }
  // The sequence so far: prompt and emitted tokens.
  [[nodiscard]] std::span<const std::int32_t> sequence() const noexcept { return seq_; }
  // The seed the next begin() / generate() starts its random stream from (same seed, same output).
  void set_seed(std::uint64_t seed) noexcept { opt_.sampling.seed = seed; }

  // Starts a sequence: both models prefill the prompt except its last token, which the first round feeds.
  void begin(std::span<const std::int32_t> prompt) {
    ES_CHECK(!prompt.empty(), "speculative generation: the prompt has no tokens (add BOS)");
    ES_CHECK(static_cast<int>(prompt.size()) < target_.config().max_seq, "speculative generation: the prompt (",
             prompt.size(), " tokens) does not fit the context of ", target_.config().max_seq);
    target_.reset();
    if constexpr (!ngram_drafter) draft_.reset();
    restart_stats(static_cast<int>(prompt.size()));
    sampler_ = Sampler(opt_.sampling);
    const auto t0 = clock::now();
    if (prompt.size() > 1) {
      target_.forward(prompt.first(prompt.size() - 1));
      if constexpr (!ngram_drafter) draft_.forward(prompt.first(prompt.size() - 1));
    }
    stats_.gen.prefill_seconds = seconds_since(t0);
    seq_.assign(prompt.begin(), prompt.end());
    last_ = prompt.back();
    draft_pending_.assign(1, last_);
  }

  // Continues a sequence with more tokens (the next user turn of a chat): both caches keep what they hold, the
  // pending token and all new tokens but the last are fed now, the last one by the next round. The statistics
  // restart with these tokens as the prompt.
  void extend(std::span<const std::int32_t> tokens) {
    ES_CHECK(!seq_.empty(), "speculative generation: extend() needs a sequence (call begin() first)");
    ES_CHECK(!tokens.empty(), "speculative generation: extend() with no tokens");
    ES_CHECK(static_cast<std::int64_t>(seq_.size() + tokens.size()) < target_.config().max_seq,
             "speculative generation: ", seq_.size(), " tokens + ", tokens.size(), " more do not fit the context of ",
             target_.config().max_seq);
    restart_stats(static_cast<int>(tokens.size()));
    const auto t0 = clock::now();
    feed_.assign(1, last_);
    feed_.insert(feed_.end(), tokens.begin(), tokens.end() - 1);
    target_.forward(feed_);
    if constexpr (!ngram_drafter) {
      draft_pending_.insert(draft_pending_.end(), tokens.begin(), tokens.end() - 1);
      draft_.forward(draft_pending_);
    }
    stats_.gen.prefill_seconds = seconds_since(t0);
    seq_.insert(seq_.end(), tokens.begin(), tokens.end());
    last_ = tokens.back();
    draft_pending_.assign(1, last_);
  }

  // One draft-verify round; returns the k + 1 emitted tokens (fewer near the end of the context).
  std::span<const std::int32_t> round() {
    emitted_.clear();
    const int room = target_.config().max_seq - target_.position() - 1;  // positions left after feeding `last_`
    ES_CHECK(room >= 0, "speculative generation: the context of ", target_.config().max_seq, " is full");
    const int gamma = std::min(gamma_, room);
    const std::size_t vocab = static_cast<std::size_t>(target_.vocab_size());
    const bool greedy = use_greedy();

    // ---- draft ----
    auto t0 = clock::now();
    drafts_.clear();
    int predrafted = 0;
    if constexpr (overlapped) {
      q_.resize(static_cast<std::size_t>(std::max(gamma, 1)) * vocab);
      predrafted = take_predrafts(gamma, greedy, vocab);
      // The rest of the round's drafts (the previous verification may have ended before all were drafted).
      if (predrafted > 0)
        for (int i = predrafted; i < gamma && draft_step(i, greedy, vocab); ++i) {
        }
    }
    if constexpr (ngram_drafter) {
      lookup_.draft(seq_, gamma, drafts_);  // the whole sequence: prompt and emitted tokens, ending with t
    } else if (predrafted == 0) {
      q_.resize(static_cast<std::size_t>(std::max(gamma, 1)) * vocab);
      if (gamma > 0) {
        if constexpr (!draft_length::adaptive)
          [&]<int... I>(std::integer_sequence<int, I...>) {
            (draft_step(I, greedy, vocab) && ...);  // unrolled; stops at the first false (early stop)
          }(std::make_integer_sequence<int, draft_length::max>{});
        else
          for (int i = 0; i < gamma && draft_step(i, greedy, vocab); ++i) {
          }
      }
    }
    const int g = static_cast<int>(drafts_.size());
    const double draft_time = seconds_since(t0) - record_seconds_;
    stats_.record_seconds += record_seconds_;
    record_seconds_ = 0;
    stats_.draft_seconds += draft_time;

    // ---- verify: one target forward over [last, d_1 .. d_g] ----
    t0 = clock::now();
    if constexpr (detail::is_split<target_placement>)
      split_seen_ = {target_.first_seconds(), target_.second_seconds(), target_.handover_seconds()};
    const int base = target_.position();
    verify_in_.assign(1, last_);
    verify_in_.insert(verify_in_.end(), drafts_.begin(), drafts_.end());
    std::span<const float> logits;
    if constexpr (overlapped) {
      // The target verifies on its device while this thread drafts ahead on the draft's.
      double target_wall = 0.0;
      auto verify = std::async(std::launch::async, [&] {
        const auto tv = clock::now();
        const std::span<const float> out = target_.forward(verify_in_, Logits::All);
        target_wall = seconds_since(tv);
        return out;
      });
      try {
        post_draft(g, greedy, vocab, verify);
      } catch (...) {
        verify.wait();
        throw;
      }
      logits = verify.get();
      add_target_time(target_wall);
    } else {
      logits = target_.forward(verify_in_, Logits::All);
      add_target_time(seconds_since(t0));
    }
    const double verify_time = seconds_since(t0);
    stats_.verify_seconds += verify_time;

    t0 = clock::now();
    VerifyResult vr;
    if (greedy) {
      vr = verify_greedy(drafts_, logits, vocab);
    } else {
      p_.resize(static_cast<std::size_t>(g + 1) * vocab);
      for (int i = 0; i <= g; ++i)
        distribution(logits.subspan(static_cast<std::size_t>(i) * vocab, vocab), opt_.sampling,
                     std::span<float>(p_).subspan(static_cast<std::size_t>(i) * vocab, vocab), scratch_ids_);
      if constexpr (ngram_drafter)
        vr = verify_stochastic_point(drafts_, p_, vocab, sampler_.rng(), residual_);
      else
        vr = verify_stochastic(drafts_, p_, std::span<const float>(q_).first(static_cast<std::size_t>(g) * vocab),
                               vocab, sampler_.rng(), residual_);
    }
    if (opt_.forced_acceptance >= 0.0) vr = forced_verdict(g, logits, vocab);
    stats_.sample_seconds += seconds_since(t0);

    // ---- bookkeeping and rollback ----
    const int k = vr.accepted;
    ++stats_.rounds;
    stats_.drafted += g;
    stats_.accepted += k;
    if (k < g) ++stats_.rejections;
    for (int i = 0; i < g; ++i) {
      ++stats_.drafted_at[static_cast<std::size_t>(i)];
      if (i < k) ++stats_.accepted_at[static_cast<std::size_t>(i)];
    }
    if (opt_.record_rounds) {
      RoundRecord rec{g, k, {}, base, first_fed_, draft_time, verify_time};
      if constexpr (!ngram_drafter) rec.top.assign(top_.begin(), top_.begin() + g);
      stats_.round_log.push_back(std::move(rec));
    }
    emitted_.assign(drafts_.begin(), drafts_.begin() + k);
    emitted_.push_back(vr.next_token);
    seq_.insert(seq_.end(), emitted_.begin(), emitted_.end());
    const int fed = static_cast<int>(seq_.size()) - 1;  // every token but the newest is now valid in a cache
    target_.truncate(base + 1 + k);                      // == fed: keeps `last` and d_1..d_k
    // The draft fed its pending tokens and d_1..d_{g-1}: those up to d_k are right. What it lacks (d_g when all
    // were accepted, and the newest token) it feeds in the next round's first forward.
    bool reuse = false;
    if constexpr (overlapped) {
      // All accepted and the bonus is the drafter's guess e_1: e_2.. are the next round's drafts, and the draft's
      // cache (old sequence, d_1..d_g, e_1..e_{m-1}) already is the sequence plus e_2..e_{m-1}.
      reuse = k == g && g > 0 && post_.size() >= 2 && post_[0] == vr.next_token;
      if (reuse) {
        pre_.assign(post_.begin() + 1, post_.end());
        if (!greedy) pre_q_.assign(post_q_.begin() + static_cast<std::ptrdiff_t>(vocab), post_q_.end());
        draft_pending_.clear();
      } else {
        stats_.discarded += static_cast<int>(post_.size());
        pre_.clear();
      }
    }
    if constexpr (!ngram_drafter) {
      if (!reuse) {
        const int keep = std::min(draft_.position(), fed);
        draft_.truncate(keep);
        draft_pending_.assign(seq_.begin() + keep, seq_.end());
      }
    }
    last_ = vr.next_token;
    if constexpr (draft_length::adaptive)
      if (opt_.draft_len == 0) adapt(g, k);
    return emitted_;
  }

  // Prefill + rounds until n_tokens are emitted (or an end-of-generation token with stop_at_eos).
  SpeculativeResult generate(std::span<const std::int32_t> prompt, int n_tokens,
                             const std::function<bool(std::int32_t)>& on_token = {}) {
    ES_CHECK(static_cast<std::int64_t>(prompt.size()) + n_tokens <= target_.config().max_seq, "generate: prompt (",
             prompt.size(), " tokens) + ", n_tokens, " new tokens exceed the context of ", target_.config().max_seq);
    begin(prompt);
    return run(n_tokens, on_token);
  }

  // Rounds after begin() or extend() until n_tokens more are emitted (or an end-of-generation token with
  // stop_at_eos); the statistics are those since that begin() / extend().
  SpeculativeResult run(int n_tokens, const std::function<bool(std::int32_t)>& on_token = {}) {
    ES_CHECK(n_tokens >= 0, "generate: n_tokens ", n_tokens, " must be >= 0");
    ES_CHECK(!seq_.empty(), "speculative generation: run() needs a sequence (call begin() first)");
    ES_CHECK(static_cast<std::int64_t>(seq_.size()) + n_tokens <= target_.config().max_seq, "generate: ",
             seq_.size(), " tokens + ", n_tokens, " new tokens exceed the context of ", target_.config().max_seq);
    SpeculativeResult r;
    const auto t0 = clock::now();
    bool done = n_tokens == 0;
    while (!done) {
      const std::span<const std::int32_t> out = round();
      for (std::size_t i = 0; i < out.size(); ++i) {
        r.tokens.push_back(out[i]);
        if ((on_token && !on_token(out[i])) || static_cast<int>(r.tokens.size()) >= n_tokens ||
            opt_.stops_at(out[i])) {
          drop_newest(out.size() - 1 - i);  // the sequence ends with the last token returned
          done = true;
          break;
        }
      }
    }
    stats_.gen.decode_seconds = seconds_since(t0);
    stats_.gen.generated_tokens = static_cast<int>(r.tokens.size());
    stats_.gen.sample_seconds = stats_.sample_seconds;
    r.stats = stats_;
    return r;
  }

  [[nodiscard]] const SpeculativeStats& stats() const noexcept { return stats_; }

 private:
  using clock = std::chrono::steady_clock;
  static double seconds_since(clock::time_point t0) {
    return std::chrono::duration<double>(clock::now() - t0).count();
  }

  target_model make_target(std::shared_ptr<const LlamaWeights> w, ThreadPool& pool) const {
    if constexpr (detail::is_split<target_placement>) {
      return target_model(std::move(w), pool, opt_.max_seq, opt_.kv_type, SplitPoint{opt_.target_split});
    } else {
      ES_CHECK(opt_.target_split < 0, "PipelineOptions::target_split needs a Target<Split<First, Second>> pipeline");
      return target_model(std::move(w), pool, opt_.max_seq, opt_.kv_type);
    }
  }

  draft_model make_draft(std::shared_ptr<const LlamaWeights> w, ThreadPool& pool) const {
    if constexpr (ngram_drafter)
      return {};
    else
      return draft_model(checked(std::move(w), draft_placement{}, "Draft"), pool,
                         opt_.max_seq > 0 ? opt_.max_seq : target_.config().max_seq, opt_.kv_type);
  }

  template <class P>
  static std::shared_ptr<const LlamaWeights> checked(std::shared_ptr<const LlamaWeights> w, P, const char* role) {
    ES_CHECK(w != nullptr, role, ": no model given");
    if constexpr (!P::available)
      throw_error(role, "<", P::name, ">: this build has no OpenCL (the CMake target found no OpenCL headers and "
                  "ICD loader; Debian: opencl-clhpp-headers ocl-icd-opencl-dev); place the model OnCPU");
    return w;
  }

  // Forgets the newest n tokens of the sequence (emitted by the last round but not returned), so that the caches
  // and the pending token are as if the round had stopped there.
  void drop_newest(std::size_t n) {
    if (n == 0) return;
    const std::size_t len = seq_.size() - n;
    const int fed = static_cast<int>(len) - 1;
    target_.truncate(std::min(target_.position(), fed));
    seq_.resize(len);
    last_ = seq_.back();
    if constexpr (!ngram_drafter) {
      draft_.truncate(std::min(draft_.position(), fed));
      draft_pending_.assign(seq_.begin() + draft_.position(), seq_.end());
    }
  }

  void restart_stats(int prompt_tokens) {
    stats_ = SpeculativeStats{};
    stats_.drafted_at.assign(static_cast<std::size_t>(draft_length::max), 0);
    stats_.accepted_at.assign(static_cast<std::size_t>(draft_length::max), 0);
    stats_.gen.prompt_tokens = prompt_tokens;
  }

  [[nodiscard]] std::size_t skipped_count() const {
    if constexpr (self_speculative)
      return draft_property::skip::layers.size() > 0 ? draft_property::skip::layers.size() : opt_.skip_layers.size();
    return 0;
  }

  [[nodiscard]] bool use_greedy() const noexcept {
    if constexpr (verification::mode == GreedyVerify::mode) return true;
    else if constexpr (verification::mode == StochasticVerify::mode) return false;
    else return opt_.sampling.greedy();
  }

  // Draft token i: forward the pending tokens (i == 0) or d_{i-1}, then pick d_i. Returns false to stop drafting.
  // Overlapped: the drafts prepared during the previous verification, when there are any (returns how many
  // are used); the draft's cache keeps exactly the ones used but the last, as after ordinary drafting.
  int take_predrafts(int gamma, bool greedy, std::size_t vocab)
    requires(!ngram_drafter)
  {
    if (pre_.empty()) return 0;
    const int g = std::min<int>(gamma, static_cast<int>(pre_.size()));
    if (g <= 0) {
      pre_.clear();
      return 0;
    }
    drafts_.assign(pre_.begin(), pre_.begin() + g);
    std::fill_n(top_.begin(), g, 1.0f);  // not measured for pre-drafted tokens
    if (!greedy) std::copy_n(pre_q_.begin(), static_cast<std::size_t>(g) * vocab, q_.begin());
    draft_.truncate(std::min(draft_.position(), static_cast<int>(seq_.size()) + g - 1));
    pre_.clear();
    ++stats_.overlapped_rounds;
    return g;
  }

  // Overlapped, during verification: feed d_g, then draft e_1 (the guess of the bonus token), e_2, ... up to
  // gamma + 1 tokens, each with its q (stochastic), and only while the verification runs: drafting ahead never
  // lengthens a round by more than the draft step under way. The draft has fed its pending tokens and
  // d_1..d_{g-1}.
  template <class Future>
  void post_draft(int g, bool greedy, std::size_t vocab, const Future& verify)
    requires(!ngram_drafter)
  {
    post_.clear();
    if (g <= 0) return;
    const int room = draft_.config().max_seq - (static_cast<int>(seq_.size()) + g - 1) - 1;
    const int m = std::min(gamma_ + 1, room);
    if (m <= 0) return;
    post_q_.resize(static_cast<std::size_t>(std::max(m, 1)) * vocab);
    // The cache must end before d_g (an early stop has fed d_g already: feed it again).
    draft_.truncate(std::min(draft_.position(), static_cast<int>(seq_.size()) + g - 1));
    std::int32_t prev = drafts_.back();
    for (int j = 0; j < m; ++j) {
      if (j >= opt_.overlap_min_ahead && verify.wait_for(std::chrono::seconds(0)) == std::future_status::ready) break;
      const auto tf = clock::now();
      const std::span<const float> logits = draft_.forward(std::span<const std::int32_t>(&prev, 1));
      add_draft_time(seconds_since(tf));
      std::int32_t e;
      if (greedy) {
        e = greedy_token(logits);
      } else {
        std::span<float> qj(post_q_.data() + static_cast<std::size_t>(j) * vocab, vocab);
        distribution(logits, opt_.sampling, qj, scratch_ids_);
        e = draw(qj, sampler_.rng());
      }
      post_.push_back(e);
      prev = e;
    }
  }

  // Device busy times (SpeculativeStats::cpu_seconds, gpu_seconds, handover_seconds).
  static void add_device_time(SpeculativeStats& st, bool gpu, double seconds) {
    (gpu ? st.gpu_seconds : st.cpu_seconds) += seconds;
  }
  void add_draft_time(double seconds) { add_device_time(stats_, std::is_same_v<draft_placement, OnGPU>, seconds); }
  // A verification's forward took `wall` seconds; a split target's parts are timed by the model itself.
  void add_target_time(double wall) {
    if constexpr (detail::is_split<target_placement>) {
      constexpr bool first_gpu = std::is_same_v<typename target_placement::first, OnGPU>;
      add_device_time(stats_, first_gpu, target_.first_seconds() - split_seen_[0]);
      add_device_time(stats_, !first_gpu, target_.second_seconds() - split_seen_[1]);
      stats_.handover_seconds += target_.handover_seconds() - split_seen_[2];
      (void)wall;
    } else {
      add_device_time(stats_, std::is_same_v<target_placement, OnGPU>, wall);
    }
  }

  bool draft_step(int i, bool greedy, std::size_t vocab)
    requires(!ngram_drafter)
  {
    if (i >= gamma_limit()) return false;
    std::span<const float> logits;
    const auto tf = clock::now();
    if (i == 0) {
      first_fed_ = static_cast<int>(draft_pending_.size());
      logits = draft_.forward(draft_pending_);
    }
    else logits = draft_.forward(std::span<const std::int32_t>(&drafts_.back(), 1));
    add_draft_time(seconds_since(tf));
    std::span<float> qi(q_.data() + static_cast<std::size_t>(i) * vocab, vocab);
    std::int32_t d;
    float top;
    const bool need_top = early_stop_ > 0.0f || opt_.record_rounds;
    if (greedy) {
      d = greedy_token(logits);
      const auto t_top = clock::now();
      top = need_top ? top_probability(logits, static_cast<std::size_t>(d)) : 1.0f;
      if (need_top && early_stop_ <= 0.0f) record_seconds_ += seconds_since(t_top);  // recording only
    } else {
      distribution(logits, opt_.sampling, qi, scratch_ids_);
      d = draw(qi, sampler_.rng());
      top = need_top ? *std::max_element(qi.begin(), qi.end()) : 1.0f;
    }
    if (i > 0 && top < early_stop_) return false;  // early stop: never below one draft token
    top_[static_cast<std::size_t>(i)] = top;
    drafts_.push_back(d);
    return true;
  }
  [[nodiscard]] int gamma_limit() const noexcept {
    return std::min(gamma_, target_.config().max_seq - target_.position() - 1);
  }

  // PipelineOptions::forced_acceptance = a: d_1.. accepted independently with probability a until the first
  // rejection (k ~ truncated geometric); the next token is the target's greedy choice after d_1..d_k.
  VerifyResult forced_verdict(int g, std::span<const float> logits, std::size_t vocab) {
    int k = 0;
    while (k < g && sampler_.rng().uniform() < opt_.forced_acceptance) ++k;
    return {k, greedy_token(logits.subspan(static_cast<std::size_t>(k) * vocab, vocab))};
  }

  // softmax(logits)[best] without materializing the distribution
  static float top_probability(std::span<const float> logits, std::size_t best) {
    const float m = logits[best];
    double sum = 0.0;
    for (const float l : logits) sum += std::exp(static_cast<double>(l - m));
    return static_cast<float>(1.0 / sum);
  }

  // Adaptive draft length: with per-token acceptance alpha and draft/target cost ratio c, a round of length g
  // yields E[tokens] = (1 - alpha^(g+1)) / (1 - alpha) for a cost of (g c + 1) target forwards (Leviathan et al.
  // 2023, eq. 1 and thm 3.8); choose g in [Min, Max] maximizing their ratio. alpha and c are running averages.
  void adapt(int g, int k) {
    if (g == 0) return;  // nothing was tested (an n-gram round without a match, or a full context)
    constexpr double decay = 0.8;
    const double trial = k < g ? double(k) / (k + 1) : 1.0;  // this round's per-trial acceptance
    alpha_ = alpha_ < 0 ? trial : decay * alpha_ + (1 - decay) * trial;
    if (stats_.verify_seconds > 0 && stats_.drafted > 0) {
      const double per_draft = stats_.draft_seconds / stats_.drafted;
      const double per_verify = stats_.verify_seconds / stats_.rounds;
      cost_ratio_ = per_draft / per_verify;
    }
    const double a = std::min(alpha_, 0.999);
    double best = -1.0;
    for (int len = lo_; len <= hi_; ++len) {
      const double value = (1.0 - std::pow(a, len + 1)) / (1.0 - a) / (len * cost_ratio_ + 1.0);
      if (value > best) {
        best = value;
        gamma_ = len;
      }
    }
  }

  PipelineOptions opt_;
  target_model target_;
  [[no_unique_address]] draft_model draft_;
  NGramLookup lookup_;  // Draft<NGram<N>>
  Sampler sampler_;
  float early_stop_ = 0.0f;
  int gamma_ = 1;
  int lo_ = 1, hi_ = 1;  // adaptive range
  double alpha_ = -1.0;
  double cost_ratio_ = 0.1;
  std::int32_t last_ = 0;
  std::vector<std::int32_t> seq_;  // the whole sequence: prompt and emitted tokens
  std::vector<std::int32_t> draft_pending_, drafts_, verify_in_, emitted_, scratch_ids_, feed_;
  std::vector<float> q_, p_, residual_;
  std::array<float, kMaxDraftLen> top_{};  // the draft's top probability at each position of this round
  double record_seconds_ = 0;  // record_rounds: time spent computing top_ only to record it (not drafting)
  int first_fed_ = 0;          // tokens the round's first draft forward fed
  // Overlapped: e_1.. drafted during the last verification (post_), the next round's drafts when kept (pre_),
  // and their distributions (vocab floats per token, stochastic only).
  std::vector<std::int32_t> post_, pre_;
  std::vector<float> post_q_, pre_q_;
  SpeculativeStats stats_;
  std::array<double, 3> split_seen_{};  // a split target's part and hand-over seconds before this verification
};

}  // namespace edgespec
