// What edgespec-generate and edgespec-chat share: the drafter options, the pipeline they choose, the chat prompt,
// and the statistics they print.
#pragma once

#include <functional>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "cli.hpp"

namespace edgespec::cli {

inline constexpr const char* kSpeculativeUsage =
    R"(speculative decoding (output = the target's: token for token when greedy, in distribution otherwise):
  --draft FILE       a draft model sharing the target's vocabulary (GGUF or llama2.c .bin)
  --draft-skip L,..  self-speculative: the target itself with these layers skipped (no extra memory)
  --draft-quant T    the draft is a copy of the target's weights in type T (any --type of edgespec-convert:
                     q8_0, q4_0, q4_k, f16, ...)
  --draft-ngram N    n-gram lookup, no draft model: draft what followed the latest earlier occurrence of the
                     last N (then N-1, ..., 1) tokens of the prompt and output so far; N 1..64 (e.g. 3). Pays
                     off on repetitive text: summaries, code edits, answers that quote the prompt
  --draft-len N      draft tokens per round, 1..16 (default 4)
  --adaptive MIN:MAX adapt the draft length to the running acceptance rate within [MIN, MAX]
  --early-stop P     stop drafting when the draft's top probability falls below P (0..1; not with --draft-ngram)
  --draft-device D, --target-device D
                     cpu or gpu: the OpenCL device EDGESPEC_OPENCL_DEVICE selects (default: the first GPU, else the
                     first device; PoCL runs OpenCL on the CPU); docs/opencl.md
  --target-split K   layers [0, K) of the target on --target-device, the rest and the classifier on the other
  --lm-head-device D the target's classifier alone on device D
  --schedule S       sequential (default) or overlapped: with draft and target on different devices, the drafter
                     drafts the next round while the target verifies (kept when all drafts and the drafter's
                     guess of the bonus token were right)
  --forced-acceptance A
                     benchmarks and cost-model validation only: accept each draft token with probability A instead
                     of verifying it (the output is NOT the target's); docs/cost-model.md
)";

inline constexpr const char* kChatUsage = R"(chat (instruct models):
  --system TEXT      a system message before the user's
  --chat-template T  the template family (chatml, llama3, llama2, phi3, gemma, mistral-v7, ...: see docs/chat.md)
                     instead of the one detected from the model's tokenizer.chat_template
  --ignore-eos       keep generating past end-of-generation tokens (EOS, <|im_end|>, <|eot_id|>, ...)
)";

inline const std::set<std::string> kSpeculativeOptions = {
    "draft",      "draft-skip",   "draft-quant",   "draft-ngram", "draft-len",
    "adaptive",   "early-stop",   "draft-device",  "target-device", "schedule", "target-split", "lm-head-device",
    "forced-acceptance"};

// The pipelines the options choose among: each drafter kind in each placement of draft (D) and target (T).
template <class D, class T, class S = Sequential>
using Speculative = Pipeline<Draft<D>, Target<T>, AdaptiveDraftLen<1, 16>, S>;
template <class D, class T, class S = Sequential>
using SelfSpeculative = Pipeline<Draft<SkipLayers<>, D>, Target<T>, AdaptiveDraftLen<1, 16>, S>;
template <class T>
using NGramSpeculative = Pipeline<Draft<NGram<>>, Target<T>, AdaptiveDraftLen<1, 16>>;

inline std::vector<int> parse_int_list(const std::string& s, const char* option) {
  std::vector<int> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    const std::size_t comma = std::min(s.find(',', pos), s.size());
    const std::string item = s.substr(pos, comma - pos);
    int v = 0;
    const auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    ES_CHECK(!item.empty() && ec == std::errc() && p == item.data() + item.size(), "option --", option, ": '", item,
             "' is not a layer number");
    out.push_back(v);
    pos = comma + 1;
  }
  return out;
}

// --draft-device / --target-device: true for gpu (the OpenCL device EDGESPEC_OPENCL_DEVICE selects).
inline bool on_gpu(const Args& args, const char* option) {
  const std::string d = args.str(option, "cpu");
  ES_CHECK(d == "cpu" || d == "gpu", "option --", option, ": '", d, "' is not a device (cpu, gpu)");
  ES_CHECK(d == "cpu" || OnGPU::available, "option --", option, " gpu: this build has no OpenCL (CMake found no "
           "OpenCL headers and ICD loader); use cpu");
  return d == "gpu";
}

// Calls f(Placement{}) with OnCPU or OnGPU.
template <class F>
decltype(auto) with_placement(bool gpu, F&& f) {
  if (gpu) return f(OnGPU{});
  return f(OnCPU{});
}

// The target's placement from --target-device, --target-split K and --lm-head-device: one device, or split
// (layers [0, K) on --target-device, the rest and the classifier on the other; --lm-head-device alone: only the
// classifier on it). Calls f(Placement{}) with OnCPU, OnGPU, Split<OnCPU, OnGPU> or Split<OnGPU, OnCPU>, and sets
// po.target_split for a split.
// The cut of a split target from --target-split K and --lm-head-device (layers [0, cut) on --target-device); -1
// when the target stays on one device.
inline int target_cut(const Args& args, int n_layers) {
  const bool gpu = on_gpu(args, "target-device");
  int cut = -1;
  if (args.has("target-split")) cut = args.num<int>("target-split", 0, 0, n_layers);
  if (args.has("lm-head-device")) {
    const bool head_gpu = on_gpu(args, "lm-head-device");
    if (cut >= 0)
      ES_CHECK(head_gpu != gpu, "--target-split K already puts the classifier on the other device; --lm-head-device "
               "must name that device or be left out");
    else if (head_gpu != gpu)
      cut = n_layers;  // every layer on --target-device, the classifier alone on the other
  }
  return cut;
}

template <class F>
decltype(auto) with_target_placement(const Args& args, int n_layers, PipelineOptions& po, F&& f) {
  const bool gpu = on_gpu(args, "target-device");
  const int cut = target_cut(args, n_layers);
  po.target_split = cut;
  if (cut < 0) return with_placement(gpu, std::forward<F>(f));
  if (gpu) return f(Split<OnGPU, OnCPU>{});
  return f(Split<OnCPU, OnGPU>{});
}

// The speculative pipeline the options ask for (a second model, a requantized copy, the target with layers
// skipped, or n-gram lookup in the sequence) behind one interface; created only when a drafter option is given.
class SpeculativeSession {
 public:
  // nullptr when no drafter is asked for. `base` carries sampling, context and stop settings.
  static std::unique_ptr<SpeculativeSession> from_args(const Args& args, std::shared_ptr<const LlamaWeights> target,
                                                       const Tokenizer& tok, ThreadPool& pool, PipelineOptions po) {
    const bool target_gpu = on_gpu(args, "target-device"), draft_gpu = on_gpu(args, "draft-device");
    const int n_layers = target->config.n_layers;
    const int drafters = int(args.has("draft")) + int(args.has("draft-skip")) + int(args.has("draft-quant")) +
                         int(args.has("draft-ngram"));
    ES_CHECK(drafters <= 1, "give at most one of --draft, --draft-skip, --draft-quant and --draft-ngram");
    ES_CHECK(drafters == 1 || (!args.has("draft-len") && !args.has("adaptive") && !args.has("early-stop") &&
                               !args.has("forced-acceptance")),
             "--draft-len, --adaptive, --early-stop and --forced-acceptance need a drafter (--draft, --draft-skip, "
             "--draft-quant or --draft-ngram)");
    if (drafters == 0) {
      ES_CHECK(!args.has("draft-device"), "--draft-device needs a drafter (--draft, --draft-skip or --draft-quant)");
      return nullptr;
    }
    ES_CHECK(!(args.has("draft-ngram") && args.has("early-stop")),
             "--early-stop reads the draft model's probabilities; --draft-ngram has none");
    po.draft_len = args.num<int>("draft-len", 0, 1, kMaxDraftLen);
    if (args.has("adaptive")) {
      ES_CHECK(!args.has("draft-len"), "give --draft-len or --adaptive, not both");
      const std::string a = args.str("adaptive");
      const auto colon = a.find(':');
      ES_CHECK(colon != std::string::npos, "option --adaptive: expected MIN:MAX, got '", a, "'");
      const auto range = parse_int_list(a.substr(0, colon) + "," + a.substr(colon + 1), "adaptive");
      po.adaptive_min = range[0];
      po.adaptive_max = range[1];
      ES_CHECK(range[0] >= 1 && range[1] <= kMaxDraftLen && range[0] <= range[1], "option --adaptive: ", a,
               " must satisfy 1 <= MIN <= MAX <= ", kMaxDraftLen);
    } else if (po.draft_len == 0) {
      po.draft_len = 4;
    }
    po.early_stop = args.num<float>("early-stop", -1.0f, 0.0f, 0.99f);
    po.forced_acceptance = args.num<double>("forced-acceptance", -1.0, 0.0, 1.0);
    auto s = std::unique_ptr<SpeculativeSession>(new SpeculativeSession);
    const std::string schedule = args.str("schedule", "sequential");
    ES_CHECK(schedule == "sequential" || schedule == "overlapped", "option --schedule: '", schedule,
             "' is not a schedule (sequential, overlapped)");
    const bool overlapped = schedule == "overlapped";
    ES_CHECK(!overlapped || draft_gpu != target_gpu, "--schedule overlapped runs the draft and the target at the "
             "same time: give them different devices (--draft-device gpu --target-device cpu, or the reverse)");
    ES_CHECK(!overlapped || (!args.has("target-split") && !args.has("lm-head-device")),
             "--schedule overlapped with a split target: the target uses both devices; use sequential");
    ES_CHECK(!overlapped || !args.has("draft-ngram"), "--schedule overlapped needs a draft model (not --draft-ngram)");
    const std::string where = std::string(" [draft ") + (draft_gpu ? "gpu" : "cpu") + ", target " +
                              (target_gpu ? "gpu" : "cpu") +
                              (args.has("target-split") ? ", split at layer " + args.str("target-split") : "") +
                              (args.has("lm-head-device") ? ", classifier on " + args.str("lm-head-device") : "") +
                              (overlapped ? ", overlapped" : "") + "]";
    if (args.has("draft-ngram")) {
      ES_CHECK(!draft_gpu, "--draft-ngram has no draft model to place: leave --draft-device cpu");
      po.ngram_max = args.num<int>("draft-ngram", 3, 1, 64);
      with_target_placement(args, n_layers, po, [&]<class T>(T) {
        s->pipeline_ = std::make_unique<NGramSpeculative<T>>(target, pool, po);
      });
      s->drafter_ = "n-gram lookup (n <= " + std::to_string(po.ngram_max) + ")";
      return s;
    }
    if (args.has("draft-skip")) {
      po.skip_layers = parse_int_list(args.str("draft-skip"), "draft-skip");
      with_placement(draft_gpu, [&]<class D>(D) {
        with_target_placement(args, n_layers, po, [&]<class T>(T) {
          if constexpr (!std::is_same_v<D, T> && !detail::is_split<T>)
            if (overlapped) {
              s->pipeline_ = std::make_unique<SelfSpeculative<D, T, Overlapped>>(target, pool, po);
              return;
            }
          s->pipeline_ = std::make_unique<SelfSpeculative<D, T>>(target, pool, po);
        });
      });
      s->drafter_ = "self (skip " + args.str("draft-skip") + ")" + where;
      return s;
    }
    std::shared_ptr<const LlamaWeights> draft;
    if (args.has("draft")) {
      draft = std::make_shared<const LlamaWeights>(load_weights(args.str("draft")));
      // The draft's vocabulary must be the target's: compare texts when the draft carries its own.
      if (draft->gguf) check_same_vocabulary(vocab_from_gguf(*draft->gguf), tok.vocab());
      s->drafter_ = args.str("draft");
    } else {
      const DType t = parse_dtype(args.str("draft-quant"));
      draft = std::make_shared<const LlamaWeights>(requantize(target, t, &pool));
      s->drafter_ = "target as " + std::string(name(t));
    }
    s->drafter_ += where;
    with_placement(draft_gpu, [&]<class D>(D) {
      with_target_placement(args, n_layers, po, [&]<class T>(T) {
        if constexpr (!std::is_same_v<D, T> && !detail::is_split<T>)
          if (overlapped) {
            s->pipeline_ = std::make_unique<Speculative<D, T, Overlapped>>(target, draft, pool, po);
            return;
          }
        s->pipeline_ = std::make_unique<Speculative<D, T>>(target, draft, pool, po);
      });
    });
    return s;
  }

  [[nodiscard]] const std::string& drafter() const noexcept { return drafter_; }
  template <class F>
  decltype(auto) visit(F&& f) {  // f(the pipeline)
    return std::visit([&](auto& p) -> decltype(auto) { return f(*p); }, pipeline_);
  }
  void begin(std::span<const std::int32_t> prompt) {
    visit([&](auto& p) { p.begin(prompt); });
  }
  void extend(std::span<const std::int32_t> tokens) {
    visit([&](auto& p) { p.extend(tokens); });
  }
  SpeculativeResult run(int n, const std::function<bool(std::int32_t)>& on_token) {
    return visit([&](auto& p) { return p.run(n, on_token); });
  }

 private:
  SpeculativeSession() = default;

  std::variant<std::unique_ptr<Speculative<OnCPU, OnCPU>>, std::unique_ptr<Speculative<OnGPU, OnCPU>>,
               std::unique_ptr<Speculative<OnCPU, OnGPU>>, std::unique_ptr<Speculative<OnGPU, OnGPU>>,
               std::unique_ptr<SelfSpeculative<OnCPU, OnCPU>>, std::unique_ptr<SelfSpeculative<OnGPU, OnCPU>>,
               std::unique_ptr<SelfSpeculative<OnCPU, OnGPU>>, std::unique_ptr<SelfSpeculative<OnGPU, OnGPU>>,
               std::unique_ptr<NGramSpeculative<OnCPU>>, std::unique_ptr<NGramSpeculative<OnGPU>>,
               std::unique_ptr<Speculative<OnGPU, OnCPU, Overlapped>>, std::unique_ptr<Speculative<OnCPU, OnGPU, Overlapped>>,
               std::unique_ptr<SelfSpeculative<OnGPU, OnCPU, Overlapped>>,
               std::unique_ptr<SelfSpeculative<OnCPU, OnGPU, Overlapped>>,
               std::unique_ptr<Speculative<OnCPU, Split<OnCPU, OnGPU>>>, std::unique_ptr<Speculative<OnCPU, Split<OnGPU, OnCPU>>>,
               std::unique_ptr<Speculative<OnGPU, Split<OnCPU, OnGPU>>>, std::unique_ptr<Speculative<OnGPU, Split<OnGPU, OnCPU>>>,
               std::unique_ptr<SelfSpeculative<OnCPU, Split<OnCPU, OnGPU>>>,
               std::unique_ptr<SelfSpeculative<OnCPU, Split<OnGPU, OnCPU>>>,
               std::unique_ptr<SelfSpeculative<OnGPU, Split<OnCPU, OnGPU>>>,
               std::unique_ptr<SelfSpeculative<OnGPU, Split<OnGPU, OnCPU>>>,
               std::unique_ptr<NGramSpeculative<Split<OnCPU, OnGPU>>>, std::unique_ptr<NGramSpeculative<Split<OnGPU, OnCPU>>>>
      pipeline_;
  std::string drafter_;
};

// --temp, --top-k, --top-p, --seed (default: greedy).
inline SamplingParams sampling_params(const Args& args) {
  SamplingParams sp;
  sp.temperature = args.num<float>("temp", 0.0f, 0.0f, 100.0f);
  sp.top_k = args.num<int>("top-k", 0, 0, 1 << 24);
  sp.top_p = args.num<float>("top-p", 1.0f, 1e-6f, 1.0f);
  sp.seed = args.num<std::uint64_t>("seed", 0, 0, ~std::uint64_t{0});
  return sp;
}

// --threads (default: every core).
inline int thread_count(const Args& args) {
  return args.num<int>("threads", static_cast<int>(std::max(1u, std::thread::hardware_concurrency())), 1, 1024);
}

// --model and its tokenizer (--tokenizer FILE, else the GGUF's own vocabulary), checked against each other.
inline std::pair<std::shared_ptr<const LlamaWeights>, Tokenizer> open_model(const Args& args) {
  auto weights = std::make_shared<const LlamaWeights>(load_weights(args.required("model")));
  Tokenizer tok = open_tokenizer(*weights, args.str("tokenizer"));
  ES_CHECK(tok.vocab().size() == weights->config.vocab_size, "tokenizer has ", tok.vocab().size(),
           " tokens but the model's vocabulary has ", weights->config.vocab_size);
  return {std::move(weights), std::move(tok)};
}

// The model's chat template: --chat-template NAME, else detected from the GGUF's tokenizer.chat_template.
inline ChatTemplate chat_template_for(const LlamaWeights& w, const Args& args) {
  std::optional<std::string> text;
  if (w.gguf != nullptr) text = w.gguf->find_string("tokenizer.chat_template");
  const std::string name = args.str("chat-template");
  return resolve_chat_template(text ? std::optional<std::string_view>(*text) : std::nullopt,
                               args.has("chat-template") ? std::optional<std::string_view>(name) : std::nullopt);
}

// Token ids of a formatted chat text: special tokens parsed (as llama.cpp always does for chat), BOS/EOS as the
// vocabulary asks when `first` (the start of a conversation).
inline std::vector<std::int32_t> chat_tokens(const Tokenizer& tok, std::string_view text, bool first) {
  return tok.encode(text, /*add_special=*/first, /*parse_special=*/true);
}

// The "stats" fields every generation reports, target-only or speculative.
inline std::string generation_stats_json(const GenerationStats& s) {
  return "\"prompt_tokens\": " + std::to_string(s.prompt_tokens) +
         ", \"generated_tokens\": " + std::to_string(s.generated_tokens) +
         ", \"prefill_seconds\": " + json_number(s.prefill_seconds) +
         ", \"decode_seconds\": " + json_number(s.decode_seconds) +
         ", \"sample_seconds\": " + json_number(s.sample_seconds) +
         ", \"prefill_tokens_per_second\": " + json_number(s.prefill_tokens_per_second()) +
         ", \"decode_tokens_per_second\": " + json_number(s.decode_tokens_per_second()) +
         ", \"tokens_per_second\": " + json_number(s.decode_tokens_per_second());
}

inline std::string json_doubles(const std::vector<double>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + json_number(v[i]);
  return s + "]";
}

inline std::string speculative_stats_json(const SpeculativeStats& s, const std::string& drafter) {
  return generation_stats_json(s.gen) + ", \"drafter\": " + json_string(drafter) +
         ", \"rounds\": " + std::to_string(s.rounds) + ", \"drafted\": " + std::to_string(s.drafted) +
         ", \"accepted\": " + std::to_string(s.accepted) + ", \"alpha\": " + json_number(s.acceptance_rate()) +
         ", \"alpha_per_trial\": " + json_number(s.acceptance_per_trial()) +
         ", \"acceptance_by_position\": " + json_doubles(s.acceptance_by_position()) +
         ", \"tokens_per_round\": " + json_number(s.tokens_per_round()) +
         ", \"draft_seconds\": " + json_number(s.draft_seconds) +
         ", \"verify_seconds\": " + json_number(s.verify_seconds) +
         ", \"overlapped_rounds\": " + std::to_string(s.overlapped_rounds) +
         ", \"discarded\": " + std::to_string(s.discarded) + ", \"device_seconds\": {\"cpu\": " +
         json_number(s.cpu_seconds) + ", \"gpu\": " + json_number(s.gpu_seconds) + "}" +
         ", \"handover_seconds\": " + json_number(s.handover_seconds);
}

inline std::string generation_stats_line(const GenerationStats& s) {
  return "prompt " + std::to_string(s.prompt_tokens) + " tokens, " + json_number(s.prefill_tokens_per_second()) +
         " tok/s prefill | " + std::to_string(s.generated_tokens) + " generated, " +
         json_number(s.decode_tokens_per_second()) + " tok/s decode";
}

inline std::string speculative_stats_line(const SpeculativeStats& s, const std::string& drafter) {
  return "prompt " + std::to_string(s.gen.prompt_tokens) + " tokens | " + std::to_string(s.gen.generated_tokens) +
         " generated, " + json_number(s.gen.decode_tokens_per_second()) + " tok/s | drafter " + drafter + ": " +
         std::to_string(s.rounds) + " rounds, alpha " + json_number(s.acceptance_rate()) + " (" +
         std::to_string(s.accepted) + "/" + std::to_string(s.drafted) + "), " + json_number(s.tokens_per_round()) +
         " tokens/round; draft " + json_number(s.draft_seconds * 1e3) + " ms, verify " +
         json_number(s.verify_seconds * 1e3) + " ms, sample " + json_number(s.sample_seconds * 1e3) + " ms";
}

}  // namespace edgespec::cli
