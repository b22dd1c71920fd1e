// Target-only (non-speculative) generation: prefill the prompt in one batched forward, then decode one token
// per forward. The speculative pipeline reports the same statistics plus its own.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "edgespec/model/transformer.hpp"
#include "edgespec/sampling/sampler.hpp"

namespace edgespec {

struct GenerationStats {
  int prompt_tokens = 0;
  int generated_tokens = 0;
  double prefill_seconds = 0.0;
  double decode_seconds = 0.0;  // generation after the prompt (the first token's sampling included)
  double sample_seconds = 0.0;

  [[nodiscard]] double prefill_tokens_per_second() const noexcept {
    return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0.0;
  }
  // Tokens produced per second of decode; the first token comes from the prefill's logits, so it is counted
  // over the decode forwards that followed it.
  [[nodiscard]] double decode_tokens_per_second() const noexcept {
    return decode_seconds > 0 ? generated_tokens / decode_seconds : 0.0;
  }
};

struct GenerationOptions {
  int n_tokens = 64;          // tokens to generate
  bool stop_at_eos = false;   // stop early when the model emits eos_id or one of eog_ids
  std::int32_t eos_id = -1;
  std::vector<std::int32_t> eog_ids;  // every end-of-generation token (Tokenizer::eog_ids(): EOS, EOT, <|im_end|>, ...)
  // false: start anew (reset the cache, prefill the prompt). true: continue after what the model's cache already
  // holds (a multi-turn chat): the prompt is appended. The last token of a previous generation was never fed to
  // the model, so a continuation's prompt starts with it.
  bool append = false;
  // Called with each generated token; return false to stop.
  std::function<bool(std::int32_t)> on_token;

  [[nodiscard]] bool stops_at(std::int32_t t) const noexcept {
    return stop_at_eos && (t == eos_id || std::find(eog_ids.begin(), eog_ids.end(), t) != eog_ids.end());
  }
};

struct GenerationResult {
  std::vector<std::int32_t> tokens;  // generated ids (prompt excluded)
  GenerationStats stats;
};

// Model: Transformer<Arch> (CPU) or opencl::DeviceTransformer<Arch> (OnGPU): anything with forward(tokens),
// position(), reset() and config().
template <class Model>
GenerationResult generate(Model& model, std::span<const std::int32_t> prompt, Sampler& sampler,
                          const GenerationOptions& opt) {
  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  ES_CHECK(!prompt.empty(), "generate: the prompt has no tokens (add BOS)");
  ES_CHECK(opt.n_tokens >= 0, "generate: n_tokens ", opt.n_tokens, " must be >= 0");
  const std::int64_t before = opt.append ? model.position() : 0;
  ES_CHECK(before + static_cast<std::int64_t>(prompt.size()) + opt.n_tokens <= model.config().max_seq,
           "generate: ", before > 0 ? std::to_string(before) + " cached tokens + " : std::string(), "prompt (",
           prompt.size(), " tokens) + ", opt.n_tokens, " new tokens exceed the context of ", model.config().max_seq);
  GenerationResult r;
  r.stats.prompt_tokens = static_cast<int>(prompt.size());
  if (!opt.append) model.reset();
  auto t0 = clock::now();
  std::span<const float> logits = model.forward(prompt, Logits::Last);
  auto t1 = clock::now();
  r.stats.prefill_seconds = seconds(t0, t1);
  r.tokens.reserve(static_cast<std::size_t>(opt.n_tokens));
  for (int i = 0; i < opt.n_tokens; ++i) {
    const auto ts = clock::now();
    const std::int32_t tok = sampler.sample(logits);
    r.stats.sample_seconds += seconds(ts, clock::now());
    r.tokens.push_back(tok);
    if (opt.on_token && !opt.on_token(tok)) break;
    if (opt.stops_at(tok)) break;
    if (i + 1 < opt.n_tokens) logits = model.forward(std::span<const std::int32_t>(&tok, 1), Logits::Last);
  }
  r.stats.generated_tokens = static_cast<int>(r.tokens.size());
  r.stats.decode_seconds = seconds(t1, clock::now());
  return r;
}

}  // namespace edgespec
